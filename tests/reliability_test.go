package tests

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/internal/lab"
)

// TestFailoverSoonAfterASwitchover: a planned switchover from node1 to
// node2, then automatic failover paused, node2's PostgreSQL killed, and
// failover resumed, all within failover.cooldown (10 minutes here). The
// cooldown counts from the last failover's promotion, not a switchover's:
// node2 is replaced at once.
func TestFailoverSoonAfterASwitchover(t *testing.T) {
	t.Parallel()
	r := startFailoverRig(t, threeNodes("dc1"), withKeys(map[string]string{"failover.cooldown": "10m"}))
	n2, n3 := r.c.Node("node2"), r.c.Node("node3")
	// The busy machine may be between two Raft leaders: a refusal for want
	// of a coordinator is asked again.
	err := lab.WaitFor(context.Background(), settle, "a switchover to node2", func(context.Context) error {
		out, code := runPgquorum(t, "switchover", "--to", "node2", "--wait", "60s", "--url", n3.QuorumURL())
		if code != 0 && strings.Contains(out, "no coordinator") {
			return fmt.Errorf("exit %d: %s", code, out)
		}
		if code != 0 {
			t.Fatalf("switchover exit %d:\n%s", code, out)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, n2, api.StatePrimary, settle)
	if out, code := runPgquorum(t, "pause", "--reason", "before the kill", "--url", n3.QuorumURL()); code != 0 {
		t.Fatalf("pause: exit %d: %s", code, out)
	}
	for _, n := range r.c.Nodes {
		waitVerdict(t, n, "the pause in /state", func(_ int, b api.StateBody) bool { return b.Failover != nil && b.Failover.Paused })
	}
	if err := n2.KillPostmaster(); err != nil {
		t.Fatal(err)
	}
	holdEpoch(t, r.c, 2, 2*time.Second) // paused: nothing follows
	resumed := time.Now()
	if out, code := runPgquorum(t, "resume", "--url", n3.QuorumURL()); code != 0 {
		t.Fatalf("resume: exit %d: %s", code, out)
	}
	p := r.failedOver(t, 3, "node2", resumed)
	r.writesMoveTo(t, p)
}

// TestFailoverWithAStandbysPgquorumDown (issue 13): with the default
// profile, node3's pgquorum is stopped, then node1's PostgreSQL killed.
// node2 is committed and promoted; its majority is its own vote and node1's
// pgquorum, whose database is down and which therefore vouches for the
// primary the Raft log commits, and only for it. The new primary answers
// 200 within 10 s of the kill (before, it stayed 509 for good: node1's
// pgquorum vouched for nobody).
func TestFailoverWithAStandbysPgquorumDown(t *testing.T) {
	t.Parallel()
	defaults := map[string]string{"failover.mode": string(api.ModePgquorum),
		"consensus.refresh_interval": lab.Unset, "consensus.cache_ttl": lab.Unset,
		"consensus.peer_timeout": lab.Unset, "database.timeout": lab.Unset}
	r := startFailoverRig(t, threeNodes("dc1"), defaults)
	n1, n2, n3 := r.c.Node("node1"), r.c.Node("node2"), r.c.Node("node3")
	waitWritesOn(t, r.w, n1)
	n3.KillQuorum()
	if err := n1.KillPostmaster(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	d := waitDecision(t, r.c, 2, primaryBudget, n1, n2)
	if d.Primary != "node2" || d.OldPrimary != "node1" {
		t.Fatalf("epoch 2 = %+v, want node2 replacing node1 (node3's pgquorum is down)", d)
	}
	waitState(t, n2, api.StatePrimary, primaryBudget)
	first := waitPolledPrimary(t, r.poller, "node2", killed, primaryBudget)
	t.Logf("node2 decided %s and confirmed %s after the kill: %s", d.At.Sub(killed).Round(time.Millisecond),
		first.Sub(killed).Round(time.Millisecond), d.Reason)
	if took := first.Sub(killed); took > 10*time.Second {
		t.Errorf("node2's first 200 came %s after the kill, want within 10s (default profile)", took.Round(time.Millisecond))
	}
	r.writesMoveTo(t, n2)
}
