package tests

import (
	"context"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/consensus"
	"github.com/pgquorum/pgquorum/repmgr"
	"github.com/pgquorum/pgquorum/tests/lab"
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
// shows of a WAL receiver that is connecting.
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

// checkIdentities runs the identity checks each node's pgquorum runs on its
// own facts, and the same checks across: a DSN that reached the other
// node's database must be refused.
func checkIdentities(t *testing.T, p *pgPair, pf, sf repmgr.Facts) {
	t.Helper()
	id1 := consensus.Identity{Name: p.Primary.Name, NodeID: p.Primary.ID, DataDir: p.Primary.DataDir()}
	id2 := consensus.Identity{Name: p.Standby.Name, NodeID: p.Standby.ID, DataDir: p.Standby.DataDir()}
	if err := consensus.CheckIdentity(id1, pf); err != nil {
		t.Errorf("node1's identity on its own database: %v", err)
	}
	if err := consensus.CheckIdentity(id2, sf); err != nil {
		t.Errorf("node2's identity on its own database: %v", err)
	}
	if err := consensus.CheckIdentity(id2, pf); err == nil {
		t.Error("node2's identity passed on node1's database")
	}
	if err := consensus.CheckIdentity(id1, sf); err == nil {
		t.Error("node1's identity passed on node2's database")
	}
	// Without repmgr.conf, only the name is known: the walsender streaming
	// to node2 still gives node1's database away.
	if err := consensus.CheckIdentity(consensus.Identity{Name: p.Standby.Name}, pf); err == nil {
		t.Error("node2's name alone passed on node1's database, which streams to node2")
	}
}

// checkVotes: the standby vouches for the primary because it streams from
// it, and the primary for itself because its metadata names it.
func checkVotes(t *testing.T, p *pgPair, pf, sf repmgr.Facts) {
	t.Helper()
	me1, _ := repmgr.ByName(pf.Nodes, p.Primary.Name)
	me2, _ := repmgr.ByName(sf.Nodes, p.Standby.Name)
	req := api.VoteRequest{Protocol: api.VoteProtocol, Candidate: p.Primary.Name, CandidateID: p.Primary.ID,
		SystemID: pf.Server.SystemID, Timeline: pf.Server.Timeline}
	if up, ok := consensus.Upstream(sf); !ok || up.Name != p.Primary.Name {
		t.Errorf("standby's upstream: %q (%v), want %s", up.Name, ok, p.Primary.Name)
	}
	if ok, why := consensus.Vouch(me2, sf, req); !ok || !strings.Contains(why, "I stream from it on timeline 1") {
		t.Errorf("standby's vote for the primary: %v, %q", ok, why)
	}
	if ok, why := consensus.Vouch(me1, pf, req); !ok {
		t.Errorf("primary's vote for itself: %v, %q", ok, why)
	}
	older := req
	older.Timeline = 0
	if ok, why := consensus.Vouch(me2, sf, older); ok {
		t.Errorf("standby vouched for a candidate on an older timeline: %q", why)
	}
	other := req
	other.SystemID = "1" + pf.Server.SystemID
	if ok, why := consensus.Vouch(me2, sf, other); ok {
		t.Errorf("standby vouched for another cluster's candidate: %q", why)
	}
}

// checkEvents reads repmgr.events through the operator view's query.
func checkEvents(t *testing.T, l *repmgr.Local) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	events, err := l.Events(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range events {
		names = append(names, e.NodeName+":"+e.Event)
	}
	slices.Sort(names)
	if want := []string{"node1:primary_register", "node2:standby_register"}; !slices.Equal(names, want) {
		t.Errorf("repmgr.events: %q, want %q", names, want)
	}
}

// checkDaemons runs the pgquorum daemon beside each server: the primary
// answers 200 with both votes, the standby 202, streaming, and each reports
// its facts to the failover coordinator.
func checkDaemons(t *testing.T, p *pgPair) (standby *pairQuorum) {
	t.Helper()
	q1, q2 := startPairQuorums(t, p)
	b := q1.waitState(t, "200 with both votes", func(status int, b api.StateBody) bool { return status == 200 && b.Votes == 2 })
	if b.State != api.StatePrimary || b.Node != p.Primary.Name || b.Needed != 2 || b.Timeline != 1 ||
		!slices.Equal(b.Voters, []string{p.Primary.Name, p.Standby.Name}) {
		t.Errorf("%s /state: %+v, want Primary with votes of node1 and node2 on timeline 1", p.Primary.Name, b)
	}
	b = q2.waitState(t, "202", func(status int, b api.StateBody) bool { return status == 202 })
	if b.Streaming == nil || !*b.Streaming || b.LagBytes == nil {
		t.Errorf("%s /state: %+v, want streaming with a known lag", p.Standby.Name, b)
	}
	q1.waitReport(t, "reporting itself the primary", func(r api.Report) error {
		if !r.DBUp || r.InRecovery || r.NodeID != p.Primary.ID || r.Type != repmgr.TypePrimary || r.Timeline != 1 ||
			r.ReceivedLSN <= 0 || r.Receiver != "" || r.Upstream != "" || r.Named != p.Primary.Name || r.State != api.StatePrimary {
			return fmt.Errorf("report %+v", r)
		}
		return nil
	})
	q2.waitReport(t, "reporting a standby streaming from node1", func(r api.Report) error {
		if !r.DBUp || !r.InRecovery || r.NodeID != p.Standby.ID || r.Type != repmgr.TypeStandby || r.Timeline != 1 ||
			r.ReceivedLSN <= 0 || r.ReplayedLSN <= 0 || r.Receiver != "streaming" || r.Upstream != p.Primary.Name || r.Named != p.Primary.Name {
			return fmt.Errorf("report %+v", r)
		}
		return nil
	})
	return q2
}

// checkSilentUpstream stops the primary and holds its port with a listener
// that accepts and never answers, as a hung primary would: the standby's
// WAL receiver reconnects to it and waits. The standby's facts must say it
// streams from nobody, its vote must rest on its metadata alone, and its
// pgquorum must say, in /state and in its report, that it does not stream.
func checkSilentUpstream(t *testing.T, p *pgPair, standby *repmgr.Local, pf repmgr.Facts, q2 *pairQuorum) {
	t.Helper()
	ctx := context.Background()
	if err := p.Primary.Stop(ctx, "fast"); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p.Primary.Port))
	if err != nil {
		t.Fatalf("hold the stopped primary's port: %v", err)
	}
	accepted, held := holdConnections(l)
	t.Cleanup(func() { l.Close(); <-held })
	select {
	case <-accepted:
	case <-time.After(30 * time.Second):
		t.Fatal("the standby's WAL receiver never connected to its silent primary")
	}

	seen := map[string]bool{}
	f := probeUntil(t, standby, "the standby's receiver connecting to the silent primary", func(f repmgr.Facts) error {
		seen[fmt.Sprintf("%q tli=%v sender=%s:%d", f.WAL.ReceiverStatus, deref(f.WAL.ReceivedTimeline), f.WAL.SenderHost, f.WAL.SenderPort)] = true
		if f.WAL.Streaming() {
			return fmt.Errorf("still streaming")
		}
		return nil
	})
	t.Logf("standby's receiver while its primary is silent: %v", slices.Sorted(maps.Keys(seen)))
	if up, ok := consensus.Upstream(f); ok {
		t.Errorf("standby's upstream: %s, although its receiver is %q", up.Name, f.WAL.ReceiverStatus)
	}
	if f.Server.Timeline != 1 {
		t.Errorf("standby's timeline: %d, want 1 (from its control file)", f.Server.Timeline)
	}
	me2, _ := repmgr.ByName(f.Nodes, p.Standby.Name)
	req := api.VoteRequest{Protocol: api.VoteProtocol, Candidate: p.Primary.Name, CandidateID: p.Primary.ID,
		SystemID: pf.Server.SystemID, Timeline: 1}
	if ok, why := consensus.Vouch(me2, f, req); strings.Contains(why, "stream") {
		t.Errorf("standby's vote rests on a receiver that does not stream: %v, %q", ok, why)
	}
	q2.waitState(t, "202, not streaming", func(status int, b api.StateBody) bool {
		return status == 202 && b.Streaming != nil && !*b.Streaming
	})
	q2.waitReport(t, "reporting a standby that streams from nobody", func(r api.Report) error {
		if !r.DBUp || !r.InRecovery || r.Receiver == "streaming" || r.Upstream != "" || r.Timeline != 1 {
			return fmt.Errorf("report %+v", r)
		}
		return nil
	})
}

// holdConnections accepts connections on l and never answers them, until l
// is closed. accepted is closed at the first connection, done once every
// connection is closed.
func holdConnections(l net.Listener) (accepted, done <-chan struct{}) {
	first, closed := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(closed)
		var conns []net.Conn
		for {
			c, err := l.Accept()
			if err != nil {
				break
			}
			if conns = append(conns, c); len(conns) == 1 {
				close(first)
			}
		}
		for _, c := range conns {
			c.Close()
		}
	}()
	return first, closed
}

func receiverApp(conninfo string) string {
	kv, err := repmgr.ParseConninfo(conninfo)
	if err != nil {
		return ""
	}
	return kv["application_name"]
}

func sameFile(a, b string) bool {
	sa, errA := os.Stat(a)
	sb, errB := os.Stat(b)
	return errA == nil && errB == nil && os.SameFile(sa, sb)
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}
