package tests

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/internal/lab"
)

// failoverKeys run the lab's pgquorums with automatic failover: the lab's
// 250 ms refresh, a grace of a second, Raft at half a second.
var failoverKeys = map[string]string{
	"failover.mode":                   string(api.ModePgquorum),
	"failover.grace":                  "1s",
	"failover.cooldown":               "10s",
	"failover.command_timeout":        "20s",
	"failover.raft_heartbeat_timeout": "500ms",
	"failover.raft_election_timeout":  "500ms",
}

// Budgets of a failover with failoverKeys, from the fault to the decision
// and to the new primary's 200: correctness bounds, far above what is
// measured (bench-failover measures).
//
// A decision first deposes the lost primary, then waits until a majority
// of voters are bound to it no more (issue 13, item 1): at most a lease
// (the lab's cache_ttl, 1s, plus a tenth) and the default profile's
// consensus.router_hold (2.5s) after the deposition; depositionWait is
// that, on top of what the budgets allowed before.
const (
	depositionWait = 1100*time.Millisecond + 2500*time.Millisecond
	decisionBudget = 8*time.Second + depositionWait
	primaryBudget  = 15*time.Second + depositionWait
)

// withKeys returns failoverKeys with more.
func withKeys(more map[string]string) map[string]string {
	keys := maps.Clone(failoverKeys)
	maps.Copy(keys, more)
	return keys
}

// failoverRig is a cluster failing over by itself, watched: every node's
// /state polled, writes going through HAProxy.
type failoverRig struct {
	c      *lab.Cluster
	poller *lab.StatePoller
	h      *labHAProxy
	w      *lab.WriteProber
}

// startFailoverRig starts the cluster with keys, waits for node1 to be the
// adopted primary of epoch 1, and starts watching.
func startFailoverRig(t *testing.T, nodes []lab.NodeSpec, keys map[string]string) *failoverRig {
	t.Helper()
	c := startClusterWith(t, lab.Options{Nodes: nodes, Quorum: keys, OwnAddresses: true})
	waitState(t, c.Node("node1"), api.StatePrimary, settle)
	if d := waitDecision(t, c, 1, settle); d.Primary != "node1" {
		t.Fatalf("epoch 1 adopted %s, want node1", d.Primary)
	}
	r := &failoverRig{c: c, poller: watchStates(t, c)}
	r.h = startHAProxyFromRepmgr(t, c)
	r.h.waitStatus(t, map[string]string{"postgres_rw/node1": "UP"})
	r.w = startWrites(t, c, c.Node("node1"), r.h)
	return r
}

// history asks n for /history.
func history(ctx context.Context, n *lab.Node) (api.HistoryBody, error) {
	var h api.HistoryBody
	status, err := n.GetJSON(ctx, api.PathHistory, &h)
	if err == nil && status != 200 {
		err = fmt.Errorf("%s /history answered %d", n.Name, status)
	}
	return h, err
}

// failedOver waits for the decision of epoch replacing old (as every
// running node, or only those given, holds it), then for its primary's 200,
// within the budgets from the fault, and returns it.
func (r *failoverRig) failedOver(t *testing.T, epoch uint64, old string, fault time.Time, only ...*lab.Node) *lab.Node {
	t.Helper()
	d := waitDecision(t, r.c, epoch, primaryBudget, only...)
	if d.OldPrimary != old || d.Primary == old {
		t.Fatalf("epoch %d = %+v, want a node replacing %s", epoch, d, old)
	}
	p := r.c.Node(d.Primary)
	waitState(t, p, api.StatePrimary, primaryBudget)
	first := waitPolledPrimary(t, r.poller, d.Primary, fault, primaryBudget)
	t.Logf("epoch %d: %s replaces %s, decided %s after the fault, 200 after %s: %s", d.Epoch, d.Primary, old,
		d.At.Sub(fault).Round(time.Millisecond), first.Sub(fault).Round(time.Millisecond), d.Reason)
	if took := d.At.Sub(fault); took > decisionBudget {
		t.Errorf("decision %s after the fault, budget %s", took, decisionBudget)
	}
	if took := first.Sub(fault); took > primaryBudget {
		t.Errorf("new primary's 200 %s after the fault, budget %s", took, primaryBudget)
	}
	return p
}

// writesMoveTo waits until writes through HAProxy land on p, stops the
// prober and checks the history of the writes: one primary per timeline,
// timelines in order, never back to an earlier primary.
func (r *failoverRig) writesMoveTo(t *testing.T, p *lab.Node) {
	t.Helper()
	err := lab.WaitFor(context.Background(), settle, "writes to reach "+p.Name, func(context.Context) error {
		if b := r.w.Backends(); b[len(b)-1] != p.PGPort {
			return fmt.Errorf("backends %v", b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	outage, at := r.w.LongestOutage()
	t.Logf("longest write outage through HAProxy: %s from %s", outage.Round(time.Millisecond), at.Format("15:04:05.000"))
	r.w.Stop()
	checkWriteHistory(t, r.w)
}

// checkWriteHistory fails unless the acknowledged writes, in the order they
// were acknowledged, went to one server per timeline, with timelines only
// growing: no write acknowledged by a primary once another took over.
func checkWriteHistory(t *testing.T, w *lab.WriteProber) {
	t.Helper()
	acked := w.Acked()
	slices.SortFunc(acked, func(a, b lab.Write) int { return a.Done.Compare(b.Done) })
	portOf := map[int]int{}
	for i, x := range acked {
		if p, ok := portOf[x.Timeline]; ok && p != x.Port {
			t.Errorf("timeline %d acknowledged by ports %d and %d", x.Timeline, p, x.Port)
		}
		portOf[x.Timeline] = x.Port
		if i > 0 && x.Timeline < acked[i-1].Timeline {
			t.Errorf("write %d acknowledged on timeline %d after write %d on timeline %d", x.Seq, x.Timeline, acked[i-1].Seq, acked[i-1].Timeline)
		}
	}
	if len(acked) == 0 {
		t.Error("no write acknowledged")
	}
	t.Logf("%d of %d writes acknowledged; timeline → port: %v; backends in order %v", len(acked), len(w.Writes()), portOf, w.Backends())
}

// oldPrimaryReturns starts old's PostgreSQL again: it runs as primary on its
// old timeline and must answer 509, Deposed, and take no write.
func (r *failoverRig) oldPrimaryReturns(t *testing.T, old *lab.Node) {
	t.Helper()
	if err := old.StartPG(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitVerdict(t, old, "509, Deposed", func(status int, b api.StateBody) bool {
		return status == api.StatusUnknown && b.Failover != nil && b.Failover.State == api.FailoverDeposed
	})
	holdState(t, old, api.StateUnknown, 4*refresh)
}

func TestFailoverWhenThePostmasterIsKilled(t *testing.T) {
	t.Parallel()
	r := startFailoverRig(t, threeNodes("dc1"), failoverKeys)
	n1 := r.c.Node("node1")
	waitWritesOn(t, r.w, n1)
	if err := n1.KillPostmaster(); err != nil {
		t.Fatal(err)
	}
	p := r.failedOver(t, 2, "node1", time.Now())
	r.writesMoveTo(t, p)
	for _, n := range r.c.Nodes {
		if n != n1 && n != p {
			waitVerdict(t, n, "a standby following "+p.Name, func(status int, b api.StateBody) bool {
				return status == 202 && b.Failover != nil && b.Failover.State == api.FailoverFollowing && b.Failover.Primary == p.Name
			})
		}
	}
	r.oldPrimaryReturns(t, n1)
}

func TestFailoverWhenTheWholePrimaryNodeIsLost(t *testing.T) {
	t.Parallel()
	r := startFailoverRig(t, threeNodes("dc1"), failoverKeys)
	n1 := r.c.Node("node1")
	waitWritesOn(t, r.w, n1)
	n1.KillQuorum()
	if err := n1.KillPostmaster(); err != nil {
		t.Fatal(err)
	}
	p := r.failedOver(t, 2, "node1", time.Now())
	if d := waitDecision(t, r.c, 2, settle); !containsAll(d.Reason, "silent", "direct probes") {
		t.Errorf("decision reason %q, want the silent pgquorum and the failed direct probes", d.Reason)
	}
	r.writesMoveTo(t, p)
}

// TestNoFailoverWhenPgquorumAloneDies: the primary's PostgreSQL runs on; its
// pgquorum is killed and comes back. Its database answers the others'
// direct probes, so nothing is decided.
func TestNoFailoverWhenPgquorumAloneDies(t *testing.T) {
	t.Parallel()
	r := startFailoverRig(t, threeNodes("dc1"), failoverKeys)
	n1 := r.c.Node("node1")
	n1.KillQuorum()
	holdEpoch(t, r.c, 1, 3*time.Second+4*refresh)
	if err := n1.StartQuorum(); err != nil {
		t.Fatal(err)
	}
	took := waitState(t, n1, api.StatePrimary, settle)
	t.Logf("node1's pgquorum back: 200 after %s (its vote lease restored from consensus.state_dir)", took)
	holdEpoch(t, r.c, 1, 2*time.Second)
	r.w.Stop()
	checkWriteHistory(t, r.w)
}

// TestFailoverWhenThePrimaryIsCutOff: nftables drops every packet between
// node1 and its peers (HAProxy still reaches everyone). node1 loses its
// votes and answers 509; the others elect a successor; healed, node1 is
// Deposed.
func TestFailoverWhenThePrimaryIsCutOff(t *testing.T) {
	t.Parallel()
	r := startFailoverRig(t, threeNodes("dc1"), failoverKeys)
	n1, n2, n3 := r.c.Node("node1"), r.c.Node("node2"), r.c.Node("node3")
	waitWritesOn(t, r.w, n1)
	if err := r.c.Partition(context.Background(), []*lab.Node{n1}, []*lab.Node{n2, n3}); err != nil {
		t.Fatal(err)
	}
	cut := time.Now()
	waitState(t, n1, api.StateUnknown, settle)
	p := r.failedOver(t, 2, "node1", cut, n2, n3) // node1 cannot hear of it yet
	r.writesMoveTo(t, p)
	if err := r.c.Heal(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitVerdict(t, n1, "509, Deposed once it hears of epoch 2", func(status int, b api.StateBody) bool {
		return status == api.StatusUnknown && b.Failover != nil && b.Failover.State == api.FailoverDeposed && b.Failover.Epoch == 2
	})
}

// TestNoFailoverOnAOneSecondStall: with the fast profile, every process of
// the primary's PostgreSQL is stopped for one second. The primary answers
// 503 meanwhile, but no failover follows.
func TestNoFailoverOnAOneSecondStall(t *testing.T) {
	t.Parallel()
	keys := withKeys(map[string]string{"failover.profile": "fast", "failover.grace": lab.Unset,
		"failover.raft_heartbeat_timeout": lab.Unset, "failover.raft_election_timeout": lab.Unset,
		"consensus.refresh_interval": lab.Unset, "consensus.cache_ttl": lab.Unset,
		"consensus.peer_timeout": lab.Unset, "database.timeout": lab.Unset})
	r := startFailoverRig(t, threeNodes("dc1"), keys)
	n1 := r.c.Node("node1")
	for i := range 3 {
		if err := n1.StallInstance(time.Second); err != nil {
			t.Fatal(err)
		}
		waitState(t, n1, api.StatePrimary, settle)
		t.Logf("stall %d over", i+1)
	}
	holdEpoch(t, r.c, 1, 2*time.Second)
	r.w.Stop()
	checkWriteHistory(t, r.w)
}

// TestFailoverPromoteCommandFailsOrHangs: node2, the best candidate, has a
// promote command that fails, or that hangs past failover.command_timeout.
// The coordinator gives it up and commits node3 instead.
func TestFailoverPromoteCommandFailsOrHangs(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ name, command string }{
		{"fails", "echo refusing to promote >&2; exit 3"},
		{"hangs", "sleep 600"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := startFailoverRig(t, threeNodes("dc1"), withKeys(map[string]string{"failover.command_timeout": "3s"}))
			n1, n2 := r.c.Node("node1"), r.c.Node("node2")
			if err := n2.RestartQuorumWith(map[string]string{"failover.promote_command": tt.command}); err != nil {
				t.Fatal(err)
			}
			waitState(t, n1, api.StatePrimary, settle)
			if err := n1.KillPostmaster(); err != nil {
				t.Fatal(err)
			}
			killed := time.Now()
			d := waitDecision(t, r.c, 2, primaryBudget)
			if d.Primary != "node2" {
				t.Skipf("epoch 2 chose %s, not node2 whose command %s", d.Primary, tt.name)
			}
			d3 := waitDecision(t, r.c, 3, 3*primaryBudget)
			if d3.Primary != "node3" || d3.OldPrimary != "node2" {
				t.Fatalf("epoch 3 = %+v, want node3 in place of node2", d3)
			}
			waitState(t, r.c.Node("node3"), api.StatePrimary, primaryBudget)
			t.Logf("epoch 3 after %s: %s", d3.At.Sub(killed).Round(time.Millisecond), d3.Reason)
			r.writesMoveTo(t, r.c.Node("node3"))
		})
	}
}

// TestFailoverCandidateDiesMidPromotion: node2's promote command waits, then
// promotes; while it waits, node2's PostgreSQL is killed. Its promotion never
// comes: node3 is committed in its place. node3 alone is no majority of
// three: once node2's PostgreSQL is back, still a standby, pgquorum points it
// at node3, whose votes are then complete.
func TestFailoverCandidateDiesMidPromotion(t *testing.T) {
	t.Parallel()
	r := startFailoverRig(t, threeNodes("dc1"), failoverKeys)
	n1, n2, n3 := r.c.Node("node1"), r.c.Node("node2"), r.c.Node("node3")
	marker := n2.Dir + "/promoting"
	cmd := fmt.Sprintf("touch %s; sleep 2; repmgr -f %s standby promote", marker, n2.RepmgrConf())
	if err := n2.RestartQuorumWith(map[string]string{"failover.promote_command": cmd}); err != nil {
		t.Fatal(err)
	}
	waitState(t, n1, api.StatePrimary, settle)
	if err := n1.KillPostmaster(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	if d := waitDecision(t, r.c, 2, primaryBudget); d.Primary != "node2" {
		t.Skipf("epoch 2 chose %s, not node2", d.Primary)
	}
	err := lab.WaitFor(context.Background(), settle, "node2's promote command to start", func(context.Context) error {
		return fileExists(marker)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := n2.KillPostmaster(); err != nil {
		t.Fatal(err)
	}
	d3 := waitDecision(t, r.c, 3, 3*primaryBudget)
	if d3.Primary != "node3" {
		t.Fatalf("epoch 3 = %+v, want node3", d3)
	}
	// node1's and node2's databases are down, but their pgquorum still
	// vouch for the committed primary (issue 13, item 9): node3 is
	// confirmed without waiting for a database to come back.
	waitVerdict(t, n3, "the committed primary, confirmed by voters whose database is down", func(status int, b api.StateBody) bool {
		return status == 200 && slices.Contains(b.Voters, "node1") && slices.Contains(b.Voters, "node2")
	})
	if err := n2.StartPG(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitState(t, n3, api.StatePrimary, primaryBudget)
	waitVerdict(t, n2, "a standby following node3", func(status int, b api.StateBody) bool {
		return status == 202 && b.Failover != nil && b.Failover.State == api.FailoverFollowing && b.Failover.Primary == "node3"
	})
	t.Logf("epoch 3 after %s: %s", d3.At.Sub(killed).Round(time.Millisecond), d3.Reason)
	r.writesMoveTo(t, n3)
}

// TestFailoverAcrossTwoSites: dc1 holds node1 (primary), node2 and node3,
// dc2 node4 and node5. Losing all of dc2 changes nothing. Losing node1
// promotes a standby of dc1, never one of dc2.
func TestFailoverAcrossTwoSites(t *testing.T) {
	t.Parallel()
	r := startFailoverRig(t, []lab.NodeSpec{
		{Name: "node1", Location: "dc1"}, {Name: "node2", Location: "dc1"}, {Name: "node3", Location: "dc1"},
		{Name: "node4", Location: "dc2"}, {Name: "node5", Location: "dc2"},
	}, failoverKeys)
	ctx := context.Background()
	n1, n4, n5 := r.c.Node("node1"), r.c.Node("node4"), r.c.Node("node5")
	for _, n := range []*lab.Node{n4, n5} {
		n.KillQuorum()
		if err := n.KillPostmaster(); err != nil {
			t.Fatal(err)
		}
	}
	holdEpoch(t, r.c, 1, 3*time.Second)
	holdState(t, n1, api.StatePrimary, 2*refresh)
	for _, n := range []*lab.Node{n4, n5} {
		if err := n.StartPG(ctx); err != nil {
			t.Fatal(err)
		}
		if err := n.StartQuorum(); err != nil {
			t.Fatal(err)
		}
	}
	waitVerdict(t, n1, "200 with all 5 votes again", func(status int, b api.StateBody) bool { return status == 200 && b.ClusterVotes == 5 })
	if err := n1.KillPostmaster(); err != nil {
		t.Fatal(err)
	}
	p := r.failedOver(t, 2, "node1", time.Now())
	if p.Location != "dc1" {
		t.Errorf("%s of %s promoted in place of dc1's primary", p.Name, p.Location)
	}
	r.writesMoveTo(t, p)
}

// TestPgquorumStandsBackWhileRepmgrdRuns: repmgrd runs on every node with
// automatic failover (2 attempts × 1 s) and pgquorum with failover.mode
// pgquorum. When node1 dies, pgquorum sees the loss first but refuses to act,
// saying why; repmgrd promotes, and pgquorum adopts what repmgrd did as the
// next epoch without running any command of its own.
func TestPgquorumStandsBackWhileRepmgrdRuns(t *testing.T) {
	t.Parallel()
	c := startClusterWith(t, lab.Options{Nodes: threeNodes("dc1"), Quorum: failoverKeys,
		Repmgrd: &lab.RepmgrdOptions{ReconnectAttempts: 2, ReconnectInterval: 1}})
	for _, n := range c.Nodes {
		if err := n.StartRepmgrd(); err != nil {
			t.Fatal(err)
		}
	}
	waitSettled(t, c)
	waitDecision(t, c, 1, settle)
	watchStates(t, c)
	ctx := context.Background()
	n1 := c.Node("node1")
	if err := n1.KillPostmaster(); err != nil {
		t.Fatal(err)
	}
	err := lab.WaitFor(ctx, primaryBudget, "a node to say pgquorum is blocked by repmgrd", func(ctx context.Context) error {
		for _, n := range c.Nodes[1:] {
			var b api.StateBody
			if _, err := n.GetJSON(ctx, api.PathState, &b); err == nil && b.Failover != nil &&
				b.Failover.State == api.FailoverBlocked && containsAll(b.Failover.Reason, "repmgrd runs with automatic failover unpaused") {
				t.Logf("%s: %s", n.Name, b.Failover.Reason)
				return nil
			}
		}
		return fmt.Errorf("not yet")
	})
	if err != nil {
		t.Fatal(err)
	}
	d := waitDecision(t, c, 2, 60*time.Second)
	if !containsAll(d.Reason, "adopted", "promoted outside pgquorum") || d.OldPrimary != "node1" {
		t.Fatalf("epoch 2 = %+v, want what repmgrd did, adopted", d)
	}
	waitState(t, c.Node(d.Primary), api.StatePrimary, settle)
	for _, n := range c.Nodes {
		if lines := n.LogLines(`msg="promote command"`); len(lines) > 0 {
			t.Errorf("%s: pgquorum ran a promote command while repmgrd runs: %q", n.Name, lines)
		}
	}
}

// TestNoFailoverWhenTheMajoritySiteIsLost: dc1 (node1, primary, node2,
// node3) is lost whole. dc2's two nodes are no majority of the five, of Raft
// or of the votes: they promote nothing and nobody answers 200, by design
// (docs/quorum.md, availability).
func TestNoFailoverWhenTheMajoritySiteIsLost(t *testing.T) {
	t.Parallel()
	r := startFailoverRig(t, []lab.NodeSpec{
		{Name: "node1", Location: "dc1"}, {Name: "node2", Location: "dc1"}, {Name: "node3", Location: "dc1"},
		{Name: "node4", Location: "dc2"}, {Name: "node5", Location: "dc2"},
	}, withKeys(map[string]string{"failover.locations": "dc2"}))
	for _, n := range r.c.Nodes[:3] {
		n.KillQuorum()
		if err := n.KillPostmaster(); err != nil {
			t.Fatal(err)
		}
	}
	n4, n5 := r.c.Node("node4"), r.c.Node("node5")
	holdEpoch(t, r.c, 1, 4*time.Second)
	for _, n := range []*lab.Node{n4, n5} {
		holdState(t, n, api.StateStandby, 2*refresh)
		var b api.StateBody
		if _, err := n.GetJSON(context.Background(), api.PathState, &b); err != nil || b.Failover == nil || b.Failover.Primary != "node1" {
			t.Errorf("%s /state failover = %+v (%v), want node1 still the committed primary", n.Name, b.Failover, err)
		}
	}
}
