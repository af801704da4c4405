package repmgr

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// SyncNames sets synchronous_standby_names on the local primary (or on a
// standby about to be promoted). The pools
// of Local are read-only and bounded by statement_timeout: ALTER SYSTEM
// needs a session of its own that may write, so each change opens one
// connection, as the user of database.dsn (repmgr's superuser), runs the
// two statements and closes it.
type SyncNames struct {
	DSN     string
	Timeout time.Duration // bound on the connection and on each statement
}

// Set writes value with ALTER SYSTEM (allowed in recovery too) and reloads
// the configuration; it returns the WAL position read after the reload.
func (s SyncNames) Set(ctx context.Context, value string) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()
	cfg, err := pgx.ParseConfig(s.DSN)
	if err != nil {
		return 0, fmt.Errorf("set synchronous_standby_names: parse DSN: %w", err)
	}
	ms := strconv.FormatInt(s.Timeout.Milliseconds(), 10)
	cfg.ConnectTimeout = s.Timeout
	// ALTER SYSTEM runs outside any transaction block: the simple protocol
	// sends it as it is.
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	rp := cfg.RuntimeParams
	rp["application_name"] = "pgquorum"
	rp["statement_timeout"] = ms
	rp["lock_timeout"] = ms
	rp["default_transaction_read_only"] = "off"
	rp["search_path"] = "pg_catalog"
	// This session's own commits must never wait for a standby.
	rp["synchronous_commit"] = "local"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return 0, fmt.Errorf("set synchronous_standby_names: connect: %w", err)
	}
	defer conn.Close(context.Background()) //nolint:contextcheck // closing must not be cut short by an expired ctx
	if _, err := conn.Exec(ctx, "ALTER SYSTEM SET synchronous_standby_names = "+QuoteLiteral(value)); err != nil {
		return 0, fmt.Errorf("set synchronous_standby_names to %q: %w", value, err)
	}
	var lsn int64
	// A standby about to be promoted (strict mode) is set too: in recovery
	// the position is what it received.
	const pos = "CASE WHEN pg_is_in_recovery() THEN coalesce(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn(), '0/0') ELSE pg_current_wal_lsn() END"
	if err := conn.QueryRow(ctx, "SELECT pg_reload_conf(), pg_wal_lsn_diff("+pos+", '0/0')::bigint").Scan(nil, &lsn); err != nil {
		return 0, fmt.Errorf("reload after setting synchronous_standby_names: %w", err)
	}
	return lsn, nil
}

// QuoteLiteral quotes s as an SQL string literal (standard_conforming_strings
// on, PostgreSQL's default since 9.1).
func QuoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}
