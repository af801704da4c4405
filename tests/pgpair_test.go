package tests

import (
	"context"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgquorum/pgquorum/repmgr"
)

// The version matrix's harness: a primary and a streaming standby of any
// PostgreSQL major, made without repmgr (which Debian packages for 15 only)
// and without client tools (the npm packages ship initdb, pg_ctl and
// postgres alone). The standby is cloned with the low-level backup API, as
// pg_basebackup does, and repmgr's schema is created from repmgr's own SQL.

// repmgrSQL is the extension script of repmgr 5.3 as Debian installs it; its
// tables and views need no repmgr.so, only its functions do.
const repmgrSQL = "/usr/share/postgresql/15/extension/repmgr--5.3.sql"

// pgServer is one PostgreSQL instance run from binDir as the postgres OS user.
type pgServer struct {
	Name   string
	ID     int
	Port   int
	Dir    string // holds data/ and postgres.log
	binDir string
	run    repmgr.Runner
	logf   func(string, ...any)
}

func (s *pgServer) DataDir() string { return filepath.Join(s.Dir, "data") }
func (s *pgServer) logFile() string { return filepath.Join(s.Dir, "postgres.log") }

// Conninfo is how pgquorum and repmgr would reach the server.
func (s *pgServer) Conninfo() string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=repmgr dbname=repmgr connect_timeout=2", s.Port)
}

func (s *pgServer) tool(ctx context.Context, name string, args ...string) error {
	out, err := s.run.Run(ctx, filepath.Join(s.binDir, name), args...)
	s.logf("%s: %s %s\n%s", s.Name, name, strings.Join(args, " "), strings.TrimSpace(out))
	if err != nil {
		return fmt.Errorf("%s: %w", s.Name, err)
	}
	return nil
}

// Start starts the server and waits until it accepts connections.
func (s *pgServer) Start(ctx context.Context) error {
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1", s.Port, s.Dir)
	return s.tool(ctx, "pg_ctl", "-D", s.DataDir(), "-l", s.logFile(), "-o", opts, "-w", "-t", "30", "start")
}

// Stop stops the server with pg_ctl's mode ("fast", "immediate").
func (s *pgServer) Stop(ctx context.Context, mode string) error {
	return s.tool(ctx, "pg_ctl", "-D", s.DataDir(), "-m", mode, "-w", "-t", "30", "stop")
}

// Exec runs statements (several, with no arguments) on database db as user.
func (s *pgServer) Exec(ctx context.Context, user, db, sql string, args ...any) error {
	conn, err := pgx.Connect(ctx, fmt.Sprintf("host=127.0.0.1 port=%d user=%s dbname=%s", s.Port, user, db))
	if err != nil {
		return fmt.Errorf("%s: %w", s.Name, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		return fmt.Errorf("%s: %w", s.Name, err)
	}
	return nil
}

// matrixConf is the lab's postgresql.conf without repmgr's library.
const matrixConf = `
max_connections = 30
shared_buffers = 16MB
fsync = off
synchronous_commit = off
wal_level = replica
wal_log_hints = on
max_wal_senders = 10
max_replication_slots = 10
wal_keep_size = 64MB
hot_standby = on
wal_retrieve_retry_interval = 200ms
log_line_prefix = '%m [%p] '
`

const matrixHBA = `local all all trust
local replication all trust
host all all 127.0.0.1/32 trust
host replication all 127.0.0.1/32 trust
`

// pgPair is a primary (node1) and its standby (node2), both registered in
// repmgr.nodes as repmgr would register them.
type pgPair struct {
	Major            int
	Primary, Standby *pgServer
}

// startPair builds and starts a pair of binDir's PostgreSQL under a new
// directory, and stops and removes it when t ends.
func startPair(t *testing.T, major int, binDir string) *pgPair {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	owner, err := user.Lookup("postgres")
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", fmt.Sprintf("pgq-pg%d-", major))
	if err != nil {
		t.Fatal(err)
	}
	p := &pgPair{Major: major}
	t.Cleanup(func() {
		for _, s := range []*pgServer{p.Standby, p.Primary} {
			if s != nil {
				_ = s.Stop(context.Background(), "immediate")
			}
		}
		if t.Failed() {
			for _, s := range []*pgServer{p.Primary, p.Standby} {
				if s != nil {
					logTail(t, s.Name+"'s postgres.log", s.logFile(), 40)
				}
			}
		}
		if t.Failed() || os.Getenv("PGQ_LAB_KEEP") != "" {
			t.Logf("kept %s for a post-mortem", dir)
			return
		}
		_ = os.RemoveAll(dir) // a temporary directory; a leftover harms nothing
	})
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := chownPath(owner, dir); err != nil {
		t.Fatal(err)
	}
	run := repmgr.Runner{User: owner.Username, Dir: dir, Env: []string{
		"PATH=" + binDir + ":/usr/bin:/bin", "LD_LIBRARY_PATH=" + filepath.Join(filepath.Dir(binDir), "lib"), "LC_ALL=C"}}
	newServer := func(name string, id int) *pgServer {
		port, err := freeLoopbackPort()
		if err != nil {
			t.Fatal(err)
		}
		s := &pgServer{Name: name, ID: id, Port: port, Dir: filepath.Join(dir, name), binDir: binDir, run: run, logf: t.Logf}
		if err := os.Mkdir(s.Dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := chownPath(owner, s.Dir); err != nil {
			t.Fatal(err)
		}
		return s
	}
	p.Primary = newServer("node1", 1)
	if err := p.initPrimary(ctx, owner); err != nil {
		t.Fatal(err)
	}
	p.Standby = newServer("node2", 2)
	if err := p.cloneStandby(ctx, owner); err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *pgPair) initPrimary(ctx context.Context, owner *user.User) error {
	s := p.Primary
	if err := s.tool(ctx, "initdb", "-D", s.DataDir(), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C"); err != nil {
		return err
	}
	conf := matrixConf
	if p.Major >= 17 {
		// Slot synchronization to the standby needs logical WAL.
		conf += "wal_level = logical\n"
	}
	if err := appendFile(filepath.Join(s.DataDir(), "postgresql.conf"), conf); err != nil {
		return err
	}
	if err := writeOwned(owner, filepath.Join(s.DataDir(), "pg_hba.conf"), matrixHBA); err != nil {
		return err
	}
	if err := s.Start(ctx); err != nil {
		return err
	}
	if err := s.Exec(ctx, "postgres", "postgres", "CREATE USER repmgr SUPERUSER REPLICATION"); err != nil {
		return err
	}
	if err := s.Exec(ctx, "postgres", "postgres", "CREATE DATABASE repmgr OWNER repmgr"); err != nil {
		return err
	}
	schema, err := repmgrSchema()
	if err != nil {
		return err
	}
	if err := s.Exec(ctx, "repmgr", "repmgr", "CREATE SCHEMA repmgr; SET search_path = repmgr, pg_catalog;\n"+schema); err != nil {
		return fmt.Errorf("create the repmgr schema from %s: %w", repmgrSQL, err)
	}
	// What "repmgr primary register" writes, with use_replication_slots.
	return p.register(ctx, s, "primary", nil)
}

// register inserts s's row of repmgr.nodes and its event on the primary,
// as "repmgr primary register" and "repmgr standby register" do.
func (p *pgPair) register(ctx context.Context, s *pgServer, typ string, upstream *int) error {
	err := p.Primary.Exec(ctx, "repmgr", "repmgr", `
INSERT INTO repmgr.nodes (node_id, upstream_node_id, active, node_name, type, location, priority, conninfo, repluser, slot_name, config_file)
VALUES ($1, $2, true, $3, $4, 'default', 100, $5, 'repmgr', $6, $7)`,
		s.ID, upstream, s.Name, typ, s.Conninfo(), fmt.Sprintf("repmgr_slot_%d", s.ID), filepath.Join(s.Dir, "repmgr.conf"))
	if err != nil {
		return err
	}
	return p.Primary.Exec(ctx, "repmgr", "repmgr", `
INSERT INTO repmgr.events (node_id, event, successful, details) VALUES ($1, $2, true, $3)`,
		s.ID, typ+"_register", fmt.Sprintf("%s registration", typ))
}

// repmgrSchema is the part of repmgr's extension script that creates its
// tables and views: everything before its C functions, without the calls
// that only CREATE EXTENSION may make.
func repmgrSchema() (string, error) {
	b, err := os.ReadFile(repmgrSQL)
	if err != nil {
		return "", fmt.Errorf("repmgr's SQL (apt-get install postgresql-15-repmgr): %w", err)
	}
	head, _, found := strings.Cut(string(b), "/* repmgrd functions */")
	if !found {
		return "", fmt.Errorf("%s: no repmgrd functions banner: another repmgr version?", repmgrSQL)
	}
	var keep []string
	for _, line := range strings.Split(head, "\n") {
		if strings.HasPrefix(line, `\echo`) || strings.Contains(line, "pg_extension_config_dump") || strings.HasPrefix(line, "/* ===") {
			continue
		}
		keep = append(keep, line)
	}
	return strings.Join(keep, "\n"), nil
}
