package repmgr

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Options configure the connection to the local node.
type Options struct {
	DSN      string        // libpq conninfo or URI of the local node
	MaxConns int32         // pool ceiling; pgquorum needs one for the probe and two for operator views
	Timeout  time.Duration // bound on connect and on every statement
}

// Local is the local PostgreSQL node, reached through a small pool.
type Local struct {
	pool    *pgxpool.Pool
	timeout time.Duration
}

// Open prepares the pool. It does not connect: a node whose database is down
// must still start and answer "Down".
func Open(opts Options) (*Local, error) {
	cfg, err := PoolConfig(opts)
	if err != nil {
		return nil, err
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		return nil, fmt.Errorf("create pool: %w", err)
	}
	return &Local{pool: pool, timeout: opts.Timeout}, nil
}

// PoolConfig builds a safe management-session profile: few connections, an
// application_name operators can spot in pg_stat_activity, server-side
// timeouts so a stuck query cannot outlive its caller, read-only sessions and
// a pinned search_path so no user object can shadow what we query.
func PoolConfig(opts Options) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(opts.DSN)
	if err != nil {
		return nil, fmt.Errorf("parse DSN: %w", err)
	}
	ms := strconv.FormatInt(opts.Timeout.Milliseconds(), 10)
	cfg.MaxConns = opts.MaxConns
	cfg.MinConns = 0
	cfg.MaxConnIdleTime = time.Minute
	cfg.HealthCheckPeriod = 15 * time.Second
	cfg.ConnConfig.ConnectTimeout = opts.Timeout
	rp := cfg.ConnConfig.RuntimeParams
	rp["application_name"] = "pgquorum"
	rp["statement_timeout"] = ms
	rp["lock_timeout"] = ms
	rp["idle_in_transaction_session_timeout"] = strconv.FormatInt(10*opts.Timeout.Milliseconds(), 10)
	rp["default_transaction_read_only"] = "on"
	rp["search_path"] = "pg_catalog"
	return cfg, nil
}

// Close releases every connection.
func (l *Local) Close() { l.pool.Close() }

// probeSQL reads everything a verdict needs in one round trip, so each refresh
// costs the node one statement. repmgr.nodes is folded into JSON so the row
// exists even when the table is empty. pg_stat_wal_receiver.latest_end_lsn is
// the upstream's WAL end from its last message: the standby's lag is known
// without asking the primary.
const probeSQL = `
WITH r AS (SELECT status, received_tli, latest_end_lsn FROM pg_stat_wal_receiver)
SELECT pg_is_in_recovery(),
       pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn()
                            ELSE pg_current_wal_lsn() END, '0/0')::bigint,
       pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0')::bigint,
       (SELECT pg_wal_lsn_diff(latest_end_lsn, '0/0')::bigint FROM r),
       CASE WHEN NOT pg_is_in_recovery() THEN NULL
            WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
            ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 END,
       (SELECT status FROM r),
       (SELECT received_tli FROM r),
       (SELECT coalesce(json_agg(json_build_object(
                 'id', node_id, 'name', node_name, 'type', type, 'location', location,
                 'active', active, 'priority', priority, 'conninfo', conninfo,
                 'upstream_id', upstream_node_id) ORDER BY node_id), '[]')
          FROM repmgr.nodes)`

// Probe reads pg_is_in_recovery(), the WAL positions and repmgr.nodes. Any
// error means the caller must treat the node as down.
func (l *Local) Probe(ctx context.Context) (Facts, error) {
	var f Facts
	err := l.retry(ctx, func(ctx context.Context) error {
		var nodesJSON []byte
		var status *string
		w := &f.WAL
		err := l.pool.QueryRow(ctx, probeSQL).Scan(&f.InRecovery, &w.Position, &w.Replayed,
			&w.PrimaryPosition, &w.ReplayDelay, &status, &w.ReceivedTimeline, &nodesJSON)
		if err != nil {
			return err
		}
		if status != nil {
			w.ReceiverStatus = *status
		}
		if err := json.Unmarshal(nodesJSON, &f.Nodes); err != nil {
			return fmt.Errorf("decode repmgr.nodes: %w", err)
		}
		return nil
	})
	if err != nil {
		return Facts{}, fmt.Errorf("probe local node: %w", err)
	}
	return f, nil
}

// retry runs fn under the probe timeout, once more if the first attempt failed
// on a pooled connection that died (a restarted server leaves those behind)
// rather than on a server-side error. Both attempts share one deadline:
// ctx's, capped at l.timeout.
func (l *Local) retry(ctx context.Context, fn func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	err := fn(ctx)
	var pgErr *pgconn.PgError
	if err == nil || errors.As(err, &pgErr) || ctx.Err() != nil {
		return err
	}
	return fn(ctx)
}
