package repmgr

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
)

// connect opens a connection of its own to the local node, for an action:
// the pools stay the probe's and the views'.
func (l *Local) connect(ctx context.Context) (*pgx.Conn, error) {
	cfg := l.probe.Config().ConnConfig.Copy()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to the local node: %w", err)
	}
	return conn, nil
}

// Repoint makes the local standby stream from the server of
// primaryConninfo, by ALTER SYSTEM and a reload: PostgreSQL restarts its WAL
// receiver, the server keeps running. It streams without a replication slot
// until "repmgr standby follow" sets up the one repmgr manages.
func (l *Local) Repoint(ctx context.Context, primaryConninfo string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*l.timeout)
	defer cancel()
	conn, err := l.connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for _, sql := range []string{
		"ALTER SYSTEM SET primary_conninfo = " + quoteLiteral(primaryConninfo),
		"ALTER SYSTEM SET primary_slot_name = ''",
		"SELECT pg_reload_conf()",
	} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			return fmt.Errorf("re-point the standby: %w", err)
		}
	}
	return nil
}

// Checkpoint runs a CHECKPOINT (superuser or pg_checkpoint), bounded by ctx
// alone: it takes as long as the dirty buffers need.
func (l *Local) Checkpoint(ctx context.Context) error {
	conn, err := l.connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "CHECKPOINT"); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return nil
}

// quoteLiteral quotes s as an SQL string literal (standard_conforming_strings).
func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// ReplicationConninfo is the primary_conninfo a standby called self uses to
// stream from upstream: upstream's registered conninfo, without its
// database, as upstream's replication user, under self's name (what repmgr
// writes and what pg_stat_replication shows).
func ReplicationConninfo(upstream Node, self string) (string, error) {
	kv, err := ParseConninfo(upstream.Conninfo)
	if err != nil {
		return "", fmt.Errorf("conninfo of %s: %w", upstream.Name, err)
	}
	delete(kv, "dbname")
	delete(kv, "options")
	if upstream.Repluser != "" {
		kv["user"] = upstream.Repluser
	}
	kv["application_name"] = self
	keys := make([]string, 0, len(kv))
	for k := range kv {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + quoteConninfo(kv[k])
	}
	return strings.Join(parts, " "), nil
}

// InRecovery asks another node's database whether it is in recovery: a
// connection and one statement, bounded by ctx. An error is a direct probe
// that failed.
func InRecovery(ctx context.Context, conninfo string) (bool, error) {
	conn, err := connectTo(ctx, conninfo)
	if err != nil {
		return false, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var inRecovery bool
	err = conn.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery)
	return inRecovery, err
}

// CheckpointAt runs a CHECKPOINT on the server of conninfo. A primary
// promoted without one still has the old timeline in its control file, and
// pg_rewind against it concludes that no rewind is needed: repmgr node
// rejoin then starts a former primary whose WAL forked off, and it never
// attaches.
func CheckpointAt(ctx context.Context, conninfo string) error {
	conn, err := connectTo(ctx, conninfo)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "CHECKPOINT"); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return nil
}

func connectTo(ctx context.Context, conninfo string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(conninfo)
	if err != nil {
		return nil, fmt.Errorf("parse conninfo: %w", err)
	}
	cfg.RuntimeParams["application_name"] = "pgquorum"
	return pgx.ConnectConfig(ctx, cfg)
}
