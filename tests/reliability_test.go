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
