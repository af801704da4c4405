package tests

import (
	"context"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/internal/lab"
)

// TestFailoverByRepmgrAndOldPrimaryReturning walks the split-brain scenario
// pgquorum exists for: the primary dies, repmgr promotes node2 and node3
// follows it, then the old primary comes back still believing it is primary.
func TestFailoverByRepmgrAndOldPrimaryReturning(t *testing.T) {
	t.Parallel()
	c := startCluster(t, threeNodes("dc1"), nil)
	ctx := context.Background()
	n1, n2, n3 := c.Node("node1"), c.Node("node2"), c.Node("node3")
	waitSettled(t, c)
	watchStates(t, c)

	if err := n1.StopPG(ctx, "immediate"); err != nil {
		t.Fatal(err)
	}
	waitState(t, n1, api.StateDown, settle)
	if err := n2.Promote(ctx); err != nil {
		t.Fatal(err)
	}
	// Until node3 follows, its metadata (replicated from the dead primary)
	// still names node1: node2 has 1 vote of 2 needed.
	waitVerdict(t, n2, "509 with 1 of 2 votes before node3 follows", func(status int, b api.StateBody) bool {
		return status == api.StatusUnknown && b.Votes == 1 && b.Needed == 2
	})
	if err := n3.Follow(ctx); err != nil {
		t.Fatal(err)
	}
	followed := time.Now()
	waitState(t, n2, api.StatePrimary, settle)
	t.Logf("node2 answered 200 %s after repmgr standby follow returned", time.Since(followed).Round(time.Millisecond))
	waitState(t, n3, api.StateStandby, settle)
	waitRealPrimary(t, n3, "node2")

	// The old primary restarts on its old timeline; its own metadata still
	// names itself, but its site does not.
	if err := n1.StartPG(ctx); err != nil {
		t.Fatal(err)
	}
	waitState(t, n1, api.StateUnknown, settle)
	if status, name := namedPrimary(t, n1); status != 200 || name != "node1" {
		t.Errorf("old primary's /primary = %d %q, want its stale metadata naming node1", status, name)
	}
	status, b := getState(t, n1)
	if b.Votes != 1 || b.Needed != 2 {
		t.Errorf("old primary /state = %d %+v, want 1 of 2 votes", status, b)
	}
	for _, n := range c.Nodes {
		waitRealPrimary(t, n, "node2")
	}

	// repmgr node rejoin rewinds it into a standby of node2.
	if err := n1.StopPG(ctx, "fast"); err != nil {
		t.Fatal(err)
	}
	if err := n1.Rejoin(ctx, n2); err != nil {
		t.Fatal(err)
	}
	waitState(t, n1, api.StateStandby, settle)
	waitVerdict(t, n2, "200 with all 3 votes after the rejoin", func(status int, b api.StateBody) bool {
		return status == 200 && b.Votes == 3
	})
}

// TestTwoSitesNeedTheirSiteAndTheCluster runs a 3 + 2 layout with scope
// cluster: the primary needs a majority of its own location and of all five.
func TestTwoSitesNeedTheirSiteAndTheCluster(t *testing.T) {
	t.Parallel()
	c := startCluster(t, []lab.NodeSpec{
		{Name: "node1", Location: "dc1"}, {Name: "node2", Location: "dc1"}, {Name: "node3", Location: "dc1"},
		{Name: "node4", Location: "dc2"}, {Name: "node5", Location: "dc2"},
	}, nil)
	n1, n4 := c.Node("node1"), c.Node("node4")
	waitVerdict(t, n1, "200 with 3 of 2 votes in dc1, 5 of 3 in the cluster", func(status int, b api.StateBody) bool {
		return status == 200 && b.Votes == 3 && b.Needed == 2 && b.Location == "dc1" && b.ClusterVotes == 5 && b.ClusterNeeded == 3
	})
	if status, b := getState(t, n4); status != 202 || b.Location != "dc2" || b.Needed != 2 {
		t.Errorf("node4 /state = %d %+v, want 202 in dc2 with a site of 2", status, b)
	}

	// Losing the whole other site leaves dc1's three: a cluster majority.
	stopQuorum(t, c.Node("node4"))
	stopQuorum(t, c.Node("node5"))
	waitVerdict(t, n1, "still 200 with dc2 gone", func(status int, b api.StateBody) bool {
		return status == 200 && b.Votes == 3 && b.ClusterVotes == 3
	})
	for _, n := range []string{"node4", "node5"} {
		if err := c.Node(n).StartQuorum(); err != nil {
			t.Fatal(err)
		}
	}

	// Losing its own site's peers loses the majority of dc1, though dc2
	// vouches for node1 and the cluster count (3 of 5) would suffice.
	stopQuorum(t, c.Node("node2"))
	stopQuorum(t, c.Node("node3"))
	waitVerdict(t, n1, "509 with 1 of 2 votes in dc1 and 3 in the cluster", func(status int, b api.StateBody) bool {
		return status == api.StatusUnknown && b.Votes == 1 && b.Needed == 2 && b.ClusterVotes == 3
	})
	for _, n := range []string{"node4", "node5"} {
		if status, name := namedPrimary(t, c.Node(n)); status != 200 || name != "node1" {
			t.Errorf("%s /primary = %d %q, want node1 (votes that do not suffice alone)", n, status, name)
		}
	}
}
