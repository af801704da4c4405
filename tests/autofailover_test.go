package tests

import (
	"context"
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/tests/lab"
)

// failoverKeys run the lab's pgquorums with automatic failover: the lab's
// 250 ms refresh, a grace of a second, Raft at half a second.
var failoverKeys = map[string]string{
	"failover.mode":                   "pgquorum",
	"failover.grace":                  "1s",
	"failover.cooldown":               "10s",
	"failover.command_timeout":        "20s",
	"failover.raft_heartbeat_timeout": "500ms",
	"failover.raft_election_timeout":  "500ms",
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

// waitEpoch waits until every node's /history has a decision of epoch at
// least epoch, and returns the latest one as node1 sees it... as the first
// node that answers sees it.
func waitDecision(t *testing.T, c *lab.Cluster, epoch uint64, timeout time.Duration) api.Decision {
	t.Helper()
	var d api.Decision
	err := lab.WaitFor(context.Background(), timeout, fmt.Sprintf("every node to hold a decision of epoch %d", epoch), func(ctx context.Context) error {
		for _, n := range c.Nodes {
			if n.QuorumPID() == 0 {
				continue
			}
			h, err := history(ctx, n)
			if err != nil {
				return err
			}
			if len(h.Decisions) == 0 || h.Decisions[0].Epoch < epoch {
				return fmt.Errorf("%s holds %+v", n.Name, h.Decisions)
			}
			d = h.Decisions[0]
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// killPostmaster sends SIGKILL to n's postmaster, as a crash would.
func killPostmaster(t *testing.T, n *lab.Node) {
	t.Helper()
	pid := n.PostmasterPID()
	p, err := os.FindProcess(pid)
	if err != nil || pid == 0 {
		t.Fatalf("postmaster of %s: pid %d, %v", n.Name, pid, err)
	}
	if err := p.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
}

func TestAutomaticFailoverOnPrimaryCrash(t *testing.T) {
	t.Parallel()
	c := startCluster(t, threeNodes("dc1"), failoverKeys)
	ctx := context.Background()
	n1 := c.Node("node1")
	waitSettled(t, c)
	adopted := waitDecision(t, c, 1, settle)
	if adopted.Primary != "node1" {
		t.Fatalf("epoch 1 adopted %s, want node1", adopted.Primary)
	}
	poller := watchStates(t, c)
	h := startHAProxyFromRepmgr(t, c)
	h.waitStatus(t, map[string]string{"postgres_rw/node1": "UP"})
	w := startWrites(t, n1, h)
	time.Sleep(500 * time.Millisecond)

	killPostmaster(t, n1)
	killed := time.Now()
	d := waitDecision(t, c, 2, 30*time.Second)
	if d.OldPrimary != "node1" || (d.Primary != "node2" && d.Primary != "node3") {
		t.Fatalf("epoch 2 = %+v, want node2 or node3 replacing node1", d)
	}
	newPrimary := c.Node(d.Primary)
	waitState(t, newPrimary, api.StatePrimary, 30*time.Second)
	first, _ := poller.FirstPrimary(d.Primary, killed)
	t.Logf("node1 killed; decision %d after %s (%s); %s answered 200 after %s", d.Epoch,
		d.At.Sub(killed).Round(time.Millisecond), d.Reason, d.Primary, first.Sub(killed).Round(time.Millisecond))
	err := lab.WaitFor(ctx, settle, "writes to reach the new primary", func(context.Context) error {
		if b := w.Backends(); len(b) < 2 || b[len(b)-1] != newPrimary.PGPort {
			return fmt.Errorf("backends %v", b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	outage, _ := w.LongestOutage()
	t.Logf("longest write outage through HAProxy: %s", outage.Round(time.Millisecond))
	w.Stop()
	checkWritesOnlyTo(t, w, n1, newPrimary)
	for _, n := range c.Nodes {
		if n == n1 || n == newPrimary {
			continue
		}
		waitVerdict(t, n, "a standby following "+d.Primary, func(status int, b api.StateBody) bool {
			return status == 202 && b.Failover != nil && b.Failover.State == "Following"
		})
	}
}
