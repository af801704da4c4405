package repmgr

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Options configure the connection to the local node.
type Options struct {
	DSN string // libpq conninfo or URI of the local node
	// MaxConns is the ceiling of connections, 1 to 3: one is the probe's
	// alone, the others serve operator views (none when MaxConns is 1).
	MaxConns int32
	Timeout  time.Duration // bound on connect and on every statement
}

// probeConnLifetime bounds how long the probe reuses one connection. A
// postmaster that accepts no new connections (stopped, out of slots) leaves
// pooled connections working: the probe connects anew this often, so that it
// notices within a few seconds.
const probeConnLifetime = 3 * time.Second

// ErrNoViewConnections is returned by operator views when database.max_conns
// leaves every connection to the probe.
var ErrNoViewConnections = errors.New("database.max_conns is 1: the only connection is kept for the probe")

// Local is the local PostgreSQL node, reached through two small pools: one
// connection for the probe that operator views can never take, and the rest
// for the views.
type Local struct {
	probe   *pgxpool.Pool
	views   *pgxpool.Pool // nil when MaxConns is 1
	timeout time.Duration
	// noRepmgrd is set once the database proved to lack repmgr's
	// functions: the probe reads no repmgrd status from then on.
	noRepmgrd atomic.Bool
}

// Open prepares the pools. It does not connect: a node whose database is down
// must still start and answer "Down".
func Open(opts Options) (*Local, error) {
	probeCfg, err := PoolConfig(opts)
	if err != nil {
		return nil, err
	}
	probeCfg.MaxConns = 1
	probeCfg.MaxConnLifetime = probeConnLifetime
	probeCfg.MaxConnLifetimeJitter = 0
	l := &Local{timeout: opts.Timeout}
	if l.probe, err = pgxpool.NewWithConfig(context.Background(), probeCfg); err != nil {
		return nil, fmt.Errorf("create probe pool: %w", err)
	}
	if opts.MaxConns > 1 {
		viewsCfg, _ := PoolConfig(opts) // parsed above already
		viewsCfg.MaxConns = opts.MaxConns - 1
		if l.views, err = pgxpool.NewWithConfig(context.Background(), viewsCfg); err != nil {
			l.probe.Close()
			return nil, fmt.Errorf("create views pool: %w", err)
		}
	}
	return l, nil
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
	// One round trip per statement, even on a fresh connection: nothing to
	// prepare first.
	cfg.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeExec
	rp := cfg.ConnConfig.RuntimeParams
	rp["application_name"] = "pgquorum"
	rp["statement_timeout"] = ms
	rp["lock_timeout"] = ms
	rp["idle_in_transaction_session_timeout"] = strconv.FormatInt(10*opts.Timeout.Milliseconds(), 10)
	rp["default_transaction_read_only"] = "on"
	rp["search_path"] = "pg_catalog"
	// A health checker's query must not take the server's parallel workers.
	rp["max_parallel_workers_per_gather"] = "0"
	return cfg, nil
}

// Close releases every connection.
func (l *Local) Close() {
	l.probe.Close()
	if l.views != nil {
		l.views.Close()
	}
}

// PoolConns is the number of connections open in both pools: at most
// Options.MaxConns.
func (l *Local) PoolConns() int {
	n := l.probe.Stat().TotalConns()
	if l.views != nil {
		n += l.views.Stat().TotalConns()
	}
	return int(n)
}

// probeSQL reads everything a verdict needs in one round trip, so each refresh
// costs the node one statement. pg_is_in_recovery() is read once, so the row
// is consistent even if a promotion completes while it runs. repmgr.nodes is
// folded into JSON so the row exists even when the table is empty.
// pg_stat_wal_receiver.latest_end_lsn is the upstream's WAL end from its last
// message: the standby's lag is known without asking the primary. On a
// primary, each walsender's reply age and flush position are what tell a
// live stream from a receiver that only says "streaming" (the fencer's
// evidence that its standbys still follow it).
//
// The timeline: a primary's is in the name of its current WAL file. A
// standby's is not exposed directly (pg_control_checkpoint() lags until the
// next restartpoint), so it is the newest of what it shows: its WAL
// receiver's, its control file's, and its newest history file where the role
// may list pg_wal.
const probeSQL = probeHead + "repmgr.repmgrd_is_running(), repmgr.repmgrd_is_paused()," + probeTail

// probeSQLNoRepmgrd is probeSQL for a database with repmgr's tables but not
// its functions: repmgr's schema without its library (an extension script
// copied by hand, or the version matrix's servers, which have no repmgr).
// A function that does not exist fails the whole statement when it is
// parsed (42883), whatever a CASE around its call says; repmgrd is then
// reported neither running nor paused, as when repmgr is not preloaded.
const probeSQLNoRepmgrd = probeHead + "NULL::bool, NULL::bool," + probeTail

const probeHead = `
WITH r AS (SELECT status, received_tli, latest_end_lsn, sender_host, sender_port, conninfo FROM pg_stat_wal_receiver),
     s AS (SELECT pg_is_in_recovery() AS in_recovery)
SELECT s.in_recovery,
       pg_wal_lsn_diff(CASE WHEN s.in_recovery THEN pg_last_wal_receive_lsn()
                            ELSE pg_current_wal_lsn() END, '0/0')::bigint,
       pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0')::bigint,
       (SELECT pg_wal_lsn_diff(latest_end_lsn, '0/0')::bigint FROM r),
       CASE WHEN NOT s.in_recovery THEN NULL
            WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
            ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 END,
       (SELECT status FROM r),
       (SELECT received_tli FROM r),
       (SELECT sender_host FROM r),
       (SELECT sender_port FROM r),
       (SELECT conninfo FROM r),
       (SELECT system_identifier::text FROM pg_control_system()),
       CASE WHEN s.in_recovery THEN greatest(
                 (SELECT received_tli FROM r),
                 (SELECT timeline_id FROM pg_control_checkpoint()),
                 (SELECT min_recovery_end_timeline FROM pg_control_recovery()),
                 CASE WHEN has_function_privilege('pg_ls_waldir()', 'execute') THEN
                      (SELECT max(('x' || substr(name, 1, 8))::bit(32)::int) FROM pg_ls_waldir()
                        WHERE name ~ '^[0-9A-F]{8}\.history$') END)
            ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END,
       current_setting('port')::int,
       (SELECT setting FROM pg_settings WHERE name = 'data_directory'),
       current_setting('synchronous_standby_names'), current_setting('synchronous_commit'),
       (SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep')::int,
       (SELECT setting::bigint FROM pg_settings WHERE name = 'recovery_min_apply_delay'),
       (SELECT coalesce(json_agg(json_build_object(
                 'name', application_name, 'state', state,
                 'reply_age', extract(epoch FROM now() - reply_time)::float8,
                 'reply', extract(epoch FROM reply_time)::float8,
                 'flush', pg_wal_lsn_diff(flush_lsn, '0/0')::bigint) ORDER BY application_name), '[]')
          FROM pg_stat_replication),
       `

// probeTail follows what repmgr's extension knows of the local repmgrd.
const probeTail = `
       (SELECT coalesce(json_agg(json_build_object(
                 'id', node_id, 'name', node_name, 'type', type, 'location', location,
                 'active', active, 'priority', priority, 'conninfo', conninfo,
                 'upstream_id', upstream_node_id, 'repluser', repluser) ORDER BY node_id), '[]')
          FROM repmgr.nodes)
  FROM s`

// Probe reads the role, WAL positions, identity and timeline of the local
// database and repmgr.nodes. Any error means the caller must treat the node
// as down.
func (l *Local) Probe(ctx context.Context) (Facts, error) {
	var f Facts
	err := l.retry(ctx, func(ctx context.Context) error {
		f = Facts{}
		var nodesJSON, downstreams []byte
		var status, senderHost, conninfo, dataDir *string
		var senderPort *int32
		var repmgrdRunning, repmgrdPaused *bool
		w, sv := &f.WAL, &f.Server
		sql := probeSQL
		if l.noRepmgrd.Load() {
			sql = probeSQLNoRepmgrd
		}
		err := l.probe.QueryRow(ctx, sql).Scan(&f.InRecovery, &w.Position, &w.Replayed,
			&w.PrimaryPosition, &w.ReplayDelay, &status, &w.ReceivedTimeline, &senderHost, &senderPort, &conninfo,
			&sv.SystemID, &sv.Timeline, &sv.Port, &dataDir, &sv.Sync.StandbyNames, &sv.Sync.Commit, &sv.Sync.Waits, &sv.Sync.ApplyDelayMS, &downstreams, &repmgrdRunning, &repmgrdPaused, &nodesJSON)
		if missingRepmgrdFunction(err) {
			l.noRepmgrd.Store(true) // the retry reads without them
		}
		if err != nil {
			return err
		}
		w.ReceiverStatus, w.SenderHost, w.ReceiverConninfo, sv.DataDir = deref(status), deref(senderHost), deref(conninfo), deref(dataDir)
		if senderPort != nil {
			w.SenderPort = int(*senderPort)
		}
		f.Repmgrd.Running = repmgrdRunning != nil && *repmgrdRunning
		f.Repmgrd.Paused = repmgrdPaused != nil && *repmgrdPaused
		if sv.Streams, sv.Downstreams, err = decodeStreams(downstreams); err != nil {
			return err
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

// decodeStreams decodes the probe's walsenders (pg_stat_replication), and
// lists their names.
func decodeStreams(b []byte) ([]Stream, []string, error) {
	var streams []Stream
	if err := json.Unmarshal(b, &streams); err != nil {
		return nil, nil, fmt.Errorf("decode pg_stat_replication: %w", err)
	}
	names := make([]string, len(streams))
	for i, s := range streams {
		names[i] = s.Name
	}
	return streams, names, nil
}

// missingRepmgrdFunction tells whether err is the parse error of a probe
// naming repmgr's functions in a database that lacks them.
func missingRepmgrdFunction(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "42883" && strings.Contains(pgErr.Message, "repmgr.repmgrd_is_")
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// retry runs fn under the probe timeout, and once more on any error while
// time is left: after a restart of PostgreSQL, the pooled connection fails
// with an I/O error or with 57P01 (terminated by the administrator), and the
// first refresh after the server accepts connections again must report the
// truth, not that stale connection. The pool discards a connection that
// broke, so the second attempt connects anew. Both attempts share one deadline: ctx's,
// capped at l.timeout.
func (l *Local) retry(ctx context.Context, fn func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	err := fn(ctx)
	if err == nil || ctx.Err() != nil {
		return err
	}
	return fn(ctx)
}
