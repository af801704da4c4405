package tests

// Fencing (issue 17): only a replaced primary is fenced. Rule 1: another
// committed primary runs, or has not been answering this node while the
// coordinator did not adopt it; rule 2: no coordinator heard for
// failover.fence_after while not the committed primary, or while too few of
// its standbys stream live from it. Never at a start, never for an outage of
// pgquorum alone; a stale pause, a crash-looping pgquorum and a new primary
// out of reach do not keep a replaced one running. Every test runs with
// failover.fence: stop, the /state poller (never two 200s) and the write
// prober.

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/internal/lab"
)

// fenceLine is how pgquorum logs a fence.
const fenceLine = `msg="fencing this node"`

// noFenceInHistory fails if n's /history records a fence, or a decision
// past the adoption.
func noFenceInHistory(t *testing.T, n *lab.Node) {
	t.Helper()
	h, err := history(context.Background(), n)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Fences) > 0 || len(h.Decisions) != 1 || h.Decisions[0].Epoch != 1 || h.Decisions[0].Primary != "node1" {
		t.Fatalf("%s /history: fences %+v, decisions %+v; want no fence and only the adoption of node1", n.Name, h.Fences, h.Decisions)
	}
}

// TestFenceNotAtStartup: a cluster started with fence: stop and
// fence_after as short as the refresh interval comes up with node1 as
// primary, the adoption its only decision, and nothing fenced, in either
// failover mode.
func TestFenceNotAtStartup(t *testing.T) {
	t.Parallel()
	for _, mode := range []api.FailoverMode{api.ModePgquorum, api.ModeRepmgrd} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			r := startFailoverRig(t, threeNodes("dc1"), withKeys(map[string]string{
				"failover.mode": string(mode), "failover.fence": api.FenceStop, "failover.fence_after": refresh.String()}))
			n1 := r.c.Node("node1")
			waitWritesOn(t, r.w, n1)
			// Past the quiet period (lease + router hold + refresh) and the window
			// of a live stream.
			holdUnfenced(t, r, 5*time.Second)
			noFenceInHistory(t, n1)
			r.w.Stop()
			checkWriteHistory(t, r.w)
		})
	}
}

// TestFenceNotOnAPgquorumOutage: every standby's pgquorum is stopped for 2
// × fence_after, one after the other, then both at once, while their
// databases stream from node1: nothing is fenced and nothing fails over.
// With both gone node1 answers 509 (no majority vouches for it), so writes
// through HAProxy pause, but its database keeps running, and pgquorum
// status says why no rule fires.
func TestFenceNotOnAPgquorumOutage(t *testing.T) {
	t.Parallel()
	const fenceAfter = 6 * time.Second // 2 × fence_after outlasts a live stream's window (15 s)
	r := startFailoverRig(t, threeNodes("dc1"), withKeys(map[string]string{
		"failover.fence": api.FenceStop, "failover.fence_after": fenceAfter.String()}))
	n1, n2, n3 := r.c.Node("node1"), r.c.Node("node2"), r.c.Node("node3")
	waitWritesOn(t, r.w, n1)
	for _, n := range []*lab.Node{n2, n3} {
		n.KillQuorum()
		holdUnfenced(t, r, 2*fenceAfter)
		if err := n.StartQuorum(); err != nil {
			t.Fatal(err)
		}
		waitState(t, n, api.StateStandby, settle)
		t.Logf("%s's pgquorum was down for 2 × fence_after: nothing fenced", n.Name)
	}
	n2.KillQuorum()
	n3.KillQuorum()
	holdUnfenced(t, r, 2*fenceAfter)
	var b api.StateBody
	if _, err := n1.GetJSON(context.Background(), api.PathState, &b); err != nil {
		t.Fatal(err)
	}
	if b.Failover == nil || !strings.Contains(b.Failover.Reason, "fence: none would fire") {
		t.Errorf("node1's failover status %+v, want it to say no fencing rule would fire", b.Failover)
	}
	out, _ := runPgquorum(t, "status", "--url", n1.QuorumURL())
	t.Logf("pgquorum status with both standbys' pgquorum down:\n%s", out)
	if !strings.Contains(out, "fence: none would fire: no coordinator for") {
		t.Errorf("pgquorum status does not say which rule would fire")
	}
	for _, n := range []*lab.Node{n2, n3} {
		if err := n.StartQuorum(); err != nil {
			t.Fatal(err)
		}
	}
	waitState(t, n1, api.StatePrimary, settle)
	waitWritesOn(t, r.w, n1)
	noFenceInHistory(t, n1)
	outage, at := r.w.LongestOutage()
	t.Logf("longest write outage through HAProxy: %s from %s (both standbys' pgquorum down)", outage.Round(time.Millisecond), at.Format("15:04:05.000"))
	r.w.Stop()
	checkWriteHistory(t, r.w)
}

// TestFenceDeposedPrimaryByRule1: node1's postmaster is killed, node2 or
// node3 replaces it; started again, node1 runs as primary on its old
// timeline, hears the coordinator and the committed primary running, and
// rule 1 stops it at once; the fence, with its rule, is in /history.
func TestFenceDeposedPrimaryByRule1(t *testing.T) {
	t.Parallel()
	r := startFailoverRig(t, threeNodes("dc1"), withKeys(map[string]string{
		"failover.fence": api.FenceStop, "failover.fence_after": "3s"}))
	n1 := r.c.Node("node1")
	waitWritesOn(t, r.w, n1)
	if err := n1.KillPostmaster(); err != nil {
		t.Fatal(err)
	}
	p := r.failedOver(t, 2, "node1", time.Now())
	r.writesMoveTo(t, p)
	// pg_ctl start -w fails when the fence stops the server before pg_ctl
	// saw it ready, on a busy machine; /history then shows the fence.
	if err := n1.StartPG(context.Background()); err != nil {
		t.Logf("node1's start: %v", err)
	}
	started := time.Now()
	waitPostmasterStopped(t, n1, settle)
	t.Logf("node1 fenced %s after it started again", time.Since(started).Round(time.Millisecond))
	waitFenceInHistory(t, p, "node1", "rule 1: runs as primary, but "+p.Name+" is the committed primary of epoch 2")
}

// TestFenceDeposedPrimaryOutOfReachByRule1: as above, but node1 cannot
// reach the new primary's database (a firewall drops what node1's
// processes send to its port): its probe of the committed primary fails,
// while it hears the coordinator. Rule 1 stops it once the coordinator has
// not adopted it for max(fence_after, the quiet period) (issue 17, review
// finding 1: before, it was never fenced).
func TestFenceDeposedPrimaryOutOfReachByRule1(t *testing.T) {
	t.Parallel()
	r := startFailoverRig(t, threeNodes("dc1"), withKeys(map[string]string{
		"failover.fence": api.FenceStop, "failover.fence_after": "3s"}))
	ctx := context.Background()
	n1 := r.c.Node("node1")
	waitWritesOn(t, r.w, n1)
	if err := n1.KillPostmaster(); err != nil {
		t.Fatal(err)
	}
	p := r.failedOver(t, 2, "node1", time.Now())
	r.writesMoveTo(t, p)
	if err := r.c.DropPort(ctx, n1, p, p.PGPort); err != nil {
		t.Fatal(err)
	}
	if err := n1.StartPG(ctx); err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	waitPostmasterStopped(t, n1, settle)
	t.Logf("node1, out of reach of %s's database, fenced %s after it started again", p.Name, time.Since(started).Round(time.Millisecond))
	if err := r.c.Heal(ctx); err != nil {
		t.Fatal(err)
	}
	waitFenceInHistory(t, p, "node1", "rule 1: runs as primary, but "+p.Name+" is the committed primary of epoch 2, and has not adopted this node for")
}

// TestFenceCutOffPausedPrimary: automatic failover is paused, node1 is
// cut off from both peers, and the majority resumes: it fails over. node1's
// log still says "paused", but a node that hears no coordinator cannot know
// the pause still holds: rule 2 stops it (review finding 2: before, a stale
// pause kept it from ever being fenced).
func TestFenceCutOffPausedPrimary(t *testing.T) {
	t.Parallel()
	const fenceAfter = 3 * time.Second
	const bound = fenceAfter + 15*time.Second + 5*time.Second // as TestFenceCutOffPrimaryByRule2's
	r := startFailoverRig(t, threeNodes("dc1"), withKeys(map[string]string{
		"failover.fence": api.FenceStop, "failover.fence_after": fenceAfter.String()}))
	ctx := context.Background()
	n1, n2, n3 := r.c.Node("node1"), r.c.Node("node2"), r.c.Node("node3")
	waitWritesOn(t, r.w, n1)
	if out, code := runPgquorum(t, "pause", "--reason", "fence test", "--url", n2.QuorumURL()); code != 0 {
		t.Fatalf("pause: exit %d: %s", code, out)
	}
	waitVerdict(t, n1, "the pause in node1's /state", func(_ int, b api.StateBody) bool {
		return b.Failover != nil && b.Failover.Paused
	})
	if err := r.c.Partition(ctx, []*lab.Node{n1}, []*lab.Node{n2, n3}); err != nil {
		t.Fatal(err)
	}
	// The majority side may first have to elect a Raft leader (node1 may
	// have led): the resume is refused until it has one.
	err := lab.WaitFor(ctx, settle, "the resume on the majority side", func(context.Context) error {
		if out, code := runPgquorum(t, "resume", "--url", n2.QuorumURL()); code != 0 {
			return fmt.Errorf("exit %d: %s", code, strings.TrimSpace(out))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	resumed := time.Now()
	p := r.failedOver(t, 2, "node1", resumed, n2, n3)
	waitPostmasterStopped(t, n1, bound-time.Since(resumed))
	t.Logf("node1, paused in its own log, fenced %s after the resume", time.Since(resumed).Round(time.Millisecond))
	r.writesMoveTo(t, p)
	if err := r.c.Heal(ctx); err != nil {
		t.Fatal(err)
	}
	waitFenceInHistory(t, p, "node1", "rule 2: no coordinator for")
}

// TestFenceCrashLoopingPgquorum: node1 is cut off from both peers and a
// failover follows, while node1's pgquorum is killed and started again as
// soon as it has taken its first step, again and again (a crash loop):
// every start begins a quiet period, which held rule 2's clock back for
// ever (review finding 6). The clock is kept in the Raft directory: node1
// is fenced within a bounded number of restarts.
func TestFenceCrashLoopingPgquorum(t *testing.T) {
	t.Parallel()
	const fenceAfter = 3 * time.Second
	const restarts = 20
	r := startFailoverRig(t, threeNodes("dc1"), withKeys(map[string]string{
		"failover.fence": api.FenceStop, "failover.fence_after": fenceAfter.String()}))
	ctx := context.Background()
	n1, n2, n3 := r.c.Node("node1"), r.c.Node("node2"), r.c.Node("node3")
	waitWritesOn(t, r.w, n1)
	if err := r.c.Partition(ctx, []*lab.Node{n1}, []*lab.Node{n2, n3}); err != nil {
		t.Fatal(err)
	}
	cut := time.Now()
	const stepLine = `msg="fence inputs changed"`
	restarted := 0
	for ; restarted < restarts && len(n1.LogLines(fenceLine)) == 0; restarted++ {
		n1.KillQuorum()
		seen := len(n1.LogLines(stepLine))
		if err := n1.StartQuorum(); err != nil {
			t.Fatal(err)
		}
		// Killed again once its fencer has taken a step: well within its
		// quiet period.
		err := lab.WaitFor(ctx, settle, "node1's fencer to step", func(context.Context) error {
			if len(n1.LogLines(stepLine)) == seen {
				return fmt.Errorf("no step yet")
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	lines := n1.LogLines(fenceLine)
	if len(lines) == 0 {
		t.Fatalf("node1 not fenced after %d restarts of its pgquorum, %s after the cut", restarted, time.Since(cut).Round(time.Millisecond))
	}
	t.Logf("node1 fenced after %d restarts of its pgquorum, %s after the cut: %s", restarted, time.Since(cut).Round(time.Millisecond), lines[0])
	if !strings.Contains(lines[0], "rule 2: no coordinator for") {
		t.Errorf("node1's fence: %s; want rule 2", lines[0])
	}
	waitPostmasterStopped(t, n1, settle)
	p := r.failedOver(t, 2, "node1", cut, n2, n3)
	r.writesMoveTo(t, p)
	if err := r.c.Heal(ctx); err != nil {
		t.Fatal(err)
	}
	// Recorded once healed, whichever of its runs made it.
	waitFenceInHistory(t, p, "node1", "rule 2: no coordinator for")
}

// TestFenceCutOffPrimaryByRule2: node1 is cut off from both peers. It hears
// no coordinator, its standbys leave its stream (one is promoted, the other
// follows it), and rule 2 stops it within fence_after plus a live stream's
// window; the fence, with its rule, is in /history once healed.
func TestFenceCutOffPrimaryByRule2(t *testing.T) {
	t.Parallel()
	const fenceAfter = 3 * time.Second
	// fence_after, the window of a live stream (1.5 × PostgreSQL's default
	// wal_receiver_status_interval), and the lease before node1 hears no
	// coordinator: a correctness bound, not a measure.
	const bound = fenceAfter + 15*time.Second + 5*time.Second
	r := startFailoverRig(t, threeNodes("dc1"), withKeys(map[string]string{
		"failover.fence": api.FenceStop, "failover.fence_after": fenceAfter.String()}))
	ctx := context.Background()
	n1, n2, n3 := r.c.Node("node1"), r.c.Node("node2"), r.c.Node("node3")
	waitWritesOn(t, r.w, n1)
	if err := r.c.Partition(ctx, []*lab.Node{n1}, []*lab.Node{n2, n3}); err != nil {
		t.Fatal(err)
	}
	cut := time.Now()
	p := r.failedOver(t, 2, "node1", cut, n2, n3)
	waitPostmasterStopped(t, n1, bound-time.Since(cut))
	t.Logf("node1 fenced %s after the cut", time.Since(cut).Round(time.Millisecond))
	r.writesMoveTo(t, p)
	if err := r.c.Heal(ctx); err != nil {
		t.Fatal(err)
	}
	waitFenceInHistory(t, p, "node1", "rule 2: no coordinator for")
	lost, err := lab.LostWrites(ctx, p, r.w.Acked())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("two-way cut with fence: stop: %d acknowledged writes lost", len(lost))
}

// TestFenceOneWayPartition: what node2 and node3 send to node1's address
// is dropped (lab.PartitionOneWay): they can no longer reach node1, nor
// acknowledge its WAL, while node1 still reaches them (issue 17's one-way
// partition). With fence: stop and fence_after 4s node1 is fenced by rule
// 2; the acknowledged writes lost are counted, not bounded: node1 answers
// 200 while its peers' votes last, and fencing stops it only after it lost
// them (its 509 ends HAProxy's writes first), so it cannot shorten what was
// lost before.
func TestFenceOneWayPartition(t *testing.T) {
	t.Parallel()
	const fenceAfter = 4 * time.Second
	const bound = fenceAfter + 15*time.Second + 5*time.Second // as TestFenceCutOffPrimaryByRule2's
	r := startFailoverRig(t, threeNodes("dc1"), withKeys(map[string]string{
		"failover.fence": api.FenceStop, "failover.fence_after": fenceAfter.String()}))
	ctx := context.Background()
	n1, n2, n3 := r.c.Node("node1"), r.c.Node("node2"), r.c.Node("node3")
	waitWritesOn(t, r.w, n1)
	if err := r.c.PartitionOneWay(ctx, []*lab.Node{n2, n3}, []*lab.Node{n1}); err != nil {
		t.Fatal(err)
	}
	cut := time.Now()
	p := r.failedOver(t, 2, "node1", cut, n2, n3)
	waitPostmasterStopped(t, n1, bound-time.Since(cut))
	t.Logf("node1 fenced %s after the one-way cut", time.Since(cut).Round(time.Millisecond))
	r.writesMoveTo(t, p)
	if err := r.c.Heal(ctx); err != nil {
		t.Fatal(err)
	}
	waitFenceInHistory(t, p, "node1", "rule 2: no coordinator for")
	lost, err := lab.LostWrites(ctx, p, r.w.Acked())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("one-way partition with fence: stop, fence_after %s: %d acknowledged writes lost", fenceAfter, len(lost))
}
