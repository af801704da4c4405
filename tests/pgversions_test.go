package tests

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgquorum/pgquorum/internal/lab"
	"github.com/pgquorum/pgquorum/repmgr"
)

// pgMajor is one PostgreSQL major of the version matrix and where its
// server binaries are.
type pgMajor struct {
	Major  int
	BinDir string
	Source string // where the binaries come from, for the skip or failure message
}

// matrixMajors are the majors the probe is tested against: Debian's 15 (the
// one the repmgr integration tests run), and 16 to 18 as scripts/fetch-pg.sh
// installs them.
func matrixMajors() []pgMajor {
	cache := os.Getenv("PGQUORUM_PG_CACHE")
	if cache == "" {
		cache = "/var/cache/pgquorum/pg"
	}
	majors := []pgMajor{{Major: 15, BinDir: lab.DefaultPGBin, Source: "apt-get install postgresql-15"}}
	for _, m := range []int{16, 17, 18} {
		majors = append(majors, pgMajor{Major: m, BinDir: filepath.Join(cache, fmt.Sprint(m), "bin"), Source: fmt.Sprintf("scripts/fetch-pg.sh %d", m)})
	}
	return majors
}

// requireMajor skips a major whose binaries are missing, except in CI,
// where a matrix that silently shrinks proves nothing.
func requireMajor(t *testing.T, m pgMajor) {
	t.Helper()
	for _, tool := range []string{"initdb", "pg_ctl", "postgres"} {
		if _, err := os.Stat(filepath.Join(m.BinDir, tool)); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("PostgreSQL %d missing in CI (%s): %v", m.Major, m.Source, err)
			}
			t.Skipf("PostgreSQL %d not installed (%s): %v", m.Major, m.Source, err)
		}
	}
	if _, err := os.Stat(repmgrSQL); err != nil {
		t.Fatalf("repmgr's SQL, which creates the repmgr schema, is missing: %v", err)
	}
}

// TestPostgresVersions runs pgquorum's probe, identity checks and vote rule
// against a real primary and streaming standby of each PostgreSQL major,
// with repmgr's schema but not its library: the facts, the checks and the
// votes must be the same on every major. Then the standby's upstream goes
// silent (stopped, its port held by a listener that never answers): the
// probe must still succeed and say "not streaming", whatever the major
// shows of a WAL receiver that is connecting. Last, the standby is promoted
// by hand, outside repmgr: a primary on timeline 2 that its own metadata
// does not name, which must get no vote.
func TestPostgresVersions(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("integration test: needs PostgreSQL servers and root (run scripts/test.sh)")
	}
	if os.Geteuid() != 0 {
		t.Fatal("runs PostgreSQL as the postgres OS user and must run as root (or use -short)")
	}
	for _, m := range matrixMajors() {
		t.Run(fmt.Sprintf("PG%d", m.Major), func(t *testing.T) {
			t.Parallel()
			requireMajor(t, m)
			start := time.Now()
			p := startPair(t, m.Major, m.BinDir)
			t.Logf("PostgreSQL %d primary and standby up in %s", m.Major, time.Since(start).Round(time.Millisecond))
			primary, standby := openLocal(t, p.Primary), openLocal(t, p.Standby)

			pf := probeUntil(t, primary, "the primary's facts", func(f repmgr.Facts) error { return nil })
			sf := probeUntil(t, standby, "the standby streaming, with both nodes registered", func(f repmgr.Facts) error {
				if !f.WAL.Streaming() || len(f.Nodes) != 2 {
					return fmt.Errorf("receiver %q, %d nodes", f.WAL.ReceiverStatus, len(f.Nodes))
				}
				return nil
			})
			checkServerMajor(t, p, m.Major)
			if m.Major >= 17 {
				pf = checkSlotSyncSession(t, p, primary)
			}
			checkPrimaryFacts(t, p, pf)
			checkStandbyFacts(t, p, pf, sf)
			checkIdentities(t, p, pf, sf)
			checkVotes(t, p, pf, sf)
			checkEvents(t, primary)
			q2 := checkDaemons(t, p)
			checkSilentUpstream(t, p, standby, pf, q2)
			checkPromotedByHand(t, p, standby, pf, q2)
		})
	}
}

func openLocal(t *testing.T, s *pgServer) *repmgr.Local {
	t.Helper()
	l, err := repmgr.Open(repmgr.Options{DSN: s.Conninfo(), MaxConns: 2, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	return l
}

// probeUntil probes l until the facts pass ok, and returns them.
func probeUntil(t *testing.T, l *repmgr.Local, what string, ok func(repmgr.Facts) error) repmgr.Facts {
	t.Helper()
	var f repmgr.Facts
	err := lab.WaitFor(context.Background(), 30*time.Second, what, func(ctx context.Context) error {
		var err error
		if f, err = l.Probe(ctx); err != nil {
			return err
		}
		return ok(f)
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// checkServerMajor makes sure the binaries are the major the subtest names.
func checkServerMajor(t *testing.T, p *pgPair, major int) {
	t.Helper()
	for _, s := range []*pgServer{p.Primary, p.Standby} {
		conn, err := pgx.Connect(context.Background(), s.Conninfo())
		if err != nil {
			t.Fatal(err)
		}
		var v int
		err = conn.QueryRow(context.Background(), "SELECT current_setting('server_version_num')::int / 10000").Scan(&v)
		conn.Close(context.Background())
		if err != nil || v != major {
			t.Fatalf("%s runs PostgreSQL %d (%v), want %d", s.Name, v, err, major)
		}
	}
}

// checkSlotSyncSession waits for the standby's slot sync worker (17+) to
// hold its session on the primary, and returns the primary's facts then:
// that session, a client backend named like the standby's walsender, must
// not be taken for a downstream node.
func checkSlotSyncSession(t *testing.T, p *pgPair, primary *repmgr.Local) repmgr.Facts {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, p.Primary.Conninfo())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var session string
	err = lab.WaitFor(ctx, 30*time.Second, "the slot sync worker's session on the primary", func(ctx context.Context) error {
		// It connects as a client backend of primary_conninfo's dbname,
		// under its application_name: the standby's node name.
		return conn.QueryRow(ctx, `SELECT format('%s (%s, database %s)', application_name, backend_type, datname)
			FROM pg_stat_activity WHERE backend_type = 'client backend' AND application_name = $1 AND datname = 'repmgr'`,
			p.Standby.Name).Scan(&session)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("primary: slot sync session %s", session)
	return probeUntil(t, primary, "the primary's facts", func(repmgr.Facts) error { return nil })
}

func checkPrimaryFacts(t *testing.T, p *pgPair, f repmgr.Facts) {
	t.Helper()
	w, sv := f.WAL, f.Server
	switch {
	case f.InRecovery:
		t.Error("primary: in recovery")
	case w.Position == nil || *w.Position <= 0:
		t.Errorf("primary: WAL position %v", w.Position)
	case w.ReceiverStatus != "" || w.SenderHost != "" || w.ReceivedTimeline != nil:
		t.Errorf("primary: a WAL receiver: %+v", w)
	case sv.Timeline != 1 || sv.Port != p.Primary.Port || !sameFile(sv.DataDir, p.Primary.DataDir()):
		t.Errorf("primary: timeline %d, port %d, data directory %q", sv.Timeline, sv.Port, sv.DataDir)
	case sv.SystemID == "" || sv.SystemID == "0":
		t.Errorf("primary: system identifier %q", sv.SystemID)
	case !slices.Equal(sv.Downstreams, []string{p.Standby.Name}):
		t.Errorf("primary: downstreams %q, want [%s]", sv.Downstreams, p.Standby.Name)
	case f.Repmgrd.Running || f.Repmgrd.Paused:
		t.Errorf("primary: repmgrd %+v without repmgr's library", f.Repmgrd)
	}
	if named, ok := repmgr.NamedPrimary(f.Nodes); !ok || named.Name != p.Primary.Name {
		t.Errorf("primary: metadata names %q (%v), want %s", named.Name, ok, p.Primary.Name)
	}
}

func checkStandbyFacts(t *testing.T, p *pgPair, pf, f repmgr.Facts) {
	t.Helper()
	w, sv := f.WAL, f.Server
	lag, lagKnown := w.LagBytes()
	switch {
	case !f.InRecovery:
		t.Error("standby: not in recovery")
	case w.Position == nil || w.Replayed == nil || w.PrimaryPosition == nil || w.ReplayDelay == nil:
		t.Errorf("standby: WAL positions %+v", w)
	case !lagKnown || lag < 0:
		t.Errorf("standby: lag %d (%v)", lag, lagKnown)
	case w.ReceivedTimeline == nil || *w.ReceivedTimeline != 1:
		t.Errorf("standby: received timeline %v", w.ReceivedTimeline)
	case w.SenderHost != "127.0.0.1" || w.SenderPort != p.Primary.Port:
		t.Errorf("standby: streams from %s:%d, want 127.0.0.1:%d", w.SenderHost, w.SenderPort, p.Primary.Port)
	case receiverApp(w.ReceiverConninfo) != p.Standby.Name:
		t.Errorf("standby: receiver conninfo %q, want application_name=%s", w.ReceiverConninfo, p.Standby.Name)
	case sv.Timeline != 1 || sv.Port != p.Standby.Port || !sameFile(sv.DataDir, p.Standby.DataDir()):
		t.Errorf("standby: timeline %d, port %d, data directory %q", sv.Timeline, sv.Port, sv.DataDir)
	case sv.SystemID != pf.Server.SystemID:
		t.Errorf("standby: system identifier %q, the primary's %q", sv.SystemID, pf.Server.SystemID)
	case len(sv.Downstreams) != 0:
		t.Errorf("standby: downstreams %q", sv.Downstreams)
	}
	t.Logf("standby: receiver %s from %s:%d on timeline %d, conninfo %q, lag %d bytes",
		w.ReceiverStatus, w.SenderHost, w.SenderPort, *w.ReceivedTimeline, w.ReceiverConninfo, lag)
}
