package tests

import (
	"context"
	"fmt"
	"maps"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/consensus"
	"github.com/pgquorum/pgquorum/repmgr"
)

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
			r.ReceivedLSN <= 0 || r.ReplayedLSN <= 0 || r.Receiver != repmgr.StreamingState || r.Upstream != p.Primary.Name || r.Named != p.Primary.Name {
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
		if !r.DBUp || !r.InRecovery || r.Receiver == repmgr.StreamingState || r.Upstream != "" || r.Timeline != 1 {
			return fmt.Errorf("report %+v", r)
		}
		return nil
	})
}

// checkPromotedByHand promotes the standby with pg_promote(), as an operator
// might outside repmgr: it runs as primary on timeline 2, read from its WAL
// file names, but its metadata still names node1, so it vouches for nobody,
// itself included, and its pgquorum answers 509.
func checkPromotedByHand(t *testing.T, p *pgPair, standby *repmgr.Local, pf repmgr.Facts, q2 *pairQuorum) {
	t.Helper()
	if err := p.Standby.Exec(context.Background(), "repmgr", "repmgr", "SELECT pg_promote(true, 30)"); err != nil {
		t.Fatal(err)
	}
	f := probeUntil(t, standby, "node2 promoted", func(f repmgr.Facts) error {
		if f.InRecovery {
			return fmt.Errorf("still in recovery")
		}
		return nil
	})
	if f.Server.Timeline != 2 || f.WAL.ReceiverStatus != "" || f.Server.SystemID != pf.Server.SystemID {
		t.Errorf("node2 promoted: timeline %d, receiver %q, system identifier %s; want 2, none, %s",
			f.Server.Timeline, f.WAL.ReceiverStatus, f.Server.SystemID, pf.Server.SystemID)
	}
	me2, _ := repmgr.ByName(f.Nodes, p.Standby.Name)
	req := api.VoteRequest{Protocol: api.VoteProtocol, Candidate: p.Standby.Name, CandidateID: p.Standby.ID,
		SystemID: f.Server.SystemID, Timeline: f.Server.Timeline}
	if ok, why := consensus.Vouch(me2, f, req); ok || !strings.Contains(why, "names node1") {
		t.Errorf("node2's own vote after a promotion by hand: %v, %q; want refused, its metadata naming node1", ok, why)
	}
	q2.waitState(t, "509 after a promotion by hand", func(status int, b api.StateBody) bool {
		return status == api.StatusUnknown && b.Timeline == 2
	})
	q2.waitReport(t, "reporting itself a primary on timeline 2", func(r api.Report) error {
		if !r.DBUp || r.InRecovery || r.Timeline != 2 || r.Named != p.Primary.Name || r.Receiver != "" {
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
