package tests

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/internal/lab"
)

// The cases the quorum rules exist for, on real clusters. In each, every
// node's /state is polled every 20 ms for the whole test, and the test fails
// if two nodes are ever seen answering 200 at once.

// pollEvery is how often the poller asks each node: the hand-over gap of
// the lab (10% of its 1 s cache TTL) is five times that.
const pollEvery = 20 * time.Millisecond

// watchStates polls every node of c until the test ends, then fails it if two
// nodes answered 200 at once.
func watchStates(t *testing.T, c *lab.Cluster) *lab.StatePoller {
	t.Helper()
	p := lab.StartStatePoller(c.Nodes, pollEvery)
	t.Cleanup(func() {
		p.Stop()
		checkNoTwoPrimaries(t, p)
	})
	return p
}

func checkNoTwoPrimaries(t *testing.T, p *lab.StatePoller) {
	t.Helper()
	answers, _ := p.Count()
	if answers == 0 {
		t.Error("the /state poller recorded no answer")
	}
	for _, o := range p.Overlaps() {
		t.Errorf("two primaries at once: %s", o)
	}
	t.Logf("/state poller: %s", p.Summary())
}

// startWrites creates the prober's table on primary and writes through
// HAProxy's read-write listener until the test ends.
func startWrites(t *testing.T, c *lab.Cluster, primary *lab.Node, h *labHAProxy) *lab.WriteProber {
	t.Helper()
	if err := c.CreateWriteTable(context.Background(), primary); err != nil {
		t.Fatal(err)
	}
	w := lab.StartWriteProber(h.rw, 20*time.Millisecond)
	t.Cleanup(w.Stop)
	return w
}

// checkWritesOnlyTo fails unless every acknowledged write reached one of
// want, in that order, with no going back.
func checkWritesOnlyTo(t *testing.T, w *lab.WriteProber, want ...*lab.Node) {
	t.Helper()
	var ports []int
	for _, n := range want {
		ports = append(ports, n.PGPort)
	}
	got := w.Backends()
	acked := len(w.Acked())
	if acked == 0 || !slices.Equal(got, ports[:min(len(got), len(ports))]) {
		t.Errorf("writes were acknowledged by ports %v (%d writes), want only %v in that order", got, acked, ports)
		return
	}
	t.Logf("%d of %d writes acknowledged, by ports %v", acked, len(w.Writes()), got)
}

// TestLoneSitePromotedByHandStaysUnknown: node3, alone in dc2, is promoted
// with pg_promote() outside repmgr. Its own metadata still names node1, so it
// has not even its own vote: 509, while node1 keeps 200 and every write.
func TestLoneSitePromotedByHandStaysUnknown(t *testing.T) {
	t.Parallel()
	c := startCluster(t, []lab.NodeSpec{{Name: "node1", Location: "dc1"}, {Name: "node2", Location: "dc1"}, {Name: "node3", Location: "dc2"}}, nil)
	ctx := context.Background()
	n1, n3 := c.Node("node1"), c.Node("node3")
	waitVerdict(t, n1, "200 with all 3 votes", func(status int, b api.StateBody) bool { return status == 200 && b.ClusterVotes == 3 })
	watchStates(t, c)
	h := startHAProxyFromRepmgr(t, c)
	h.waitStatus(t, map[string]string{"postgres_rw/node1": "UP", "postgres_rw/node3": "DOWN"})
	w := startWrites(t, c, n1, h)

	if err := n3.PromoteByHand(ctx); err != nil {
		t.Fatal(err)
	}
	waitVerdict(t, n3, "509 without even its own vote", func(status int, b api.StateBody) bool {
		return status == api.StatusUnknown && b.Votes == 0 && strings.Contains(b.Refusals["node3"], "my metadata names node1")
	})
	holdState(t, n3, api.StateUnknown, 8*refresh)
	// node1 keeps its majority: itself and node2; node3 now runs as primary
	// and vouches for nobody else.
	waitVerdict(t, n1, "200 with 2 votes, node3 refusing", func(status int, b api.StateBody) bool {
		return status == 200 && b.ClusterVotes == 2 && strings.Contains(b.Refusals["node3"], "I run as primary myself")
	})
	holdState(t, n1, api.StatePrimary, 4*refresh)
	checkWritesOnlyTo(t, w, n1)
}

// TestSecondSiteWithItsOwnPrimaryNeverConfirmed: dc1 holds three nodes, dc2
// two. node5 is made to stream from node4, node4 is promoted by hand and its
// metadata made to name it (as repmgr's promote would): dc2 has its whole
// location behind node4, but not the cluster. node1 keeps 200 and every write. Then dc2
// switches to scope site, node4 answers 200 too, and every node sees the
// split-brain without being asked.
func TestSecondSiteWithItsOwnPrimaryNeverConfirmed(t *testing.T) {
	t.Parallel()
	c := startCluster(t, []lab.NodeSpec{
		{Name: "node1", Location: "dc1"}, {Name: "node2", Location: "dc1"}, {Name: "node3", Location: "dc1"},
		{Name: "node4", Location: "dc2"}, {Name: "node5", Location: "dc2"},
	}, nil)
	ctx := context.Background()
	n1, n2, n4, n5 := c.Node("node1"), c.Node("node2"), c.Node("node4"), c.Node("node5")
	waitVerdict(t, n1, "200 with all 5 votes", func(status int, b api.StateBody) bool { return status == 200 && b.ClusterVotes == 5 })
	poller := lab.StartStatePoller(c.Nodes, pollEvery)
	defer poller.Stop()
	h := startHAProxyFromRepmgr(t, c)
	h.waitStatus(t, map[string]string{"postgres_rw/node1": "UP", "postgres_rw/node4": "DOWN"})
	w := startWrites(t, c, n1, h)

	if err := n5.Repoint(ctx, n4); err != nil {
		t.Fatal(err)
	}
	err := lab.WaitFor(ctx, settle, "node5 to stream from node4", func(ctx context.Context) error {
		if ok, err := n5.StreamsFrom(ctx, n4); !ok {
			return fmt.Errorf("not yet (%v)", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := n4.PromoteByHand(ctx); err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{
		"UPDATE repmgr.nodes SET active = false WHERE node_name = 'node1'",
		"UPDATE repmgr.nodes SET type = 'primary', upstream_node_id = NULL WHERE node_name = 'node4'",
		"UPDATE repmgr.nodes SET upstream_node_id = (SELECT node_id FROM repmgr.nodes WHERE node_name = 'node4') WHERE node_name = 'node5'",
	} {
		if err := n4.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	waitVerdict(t, n4, "509 with dc2 behind it but not the cluster", func(status int, b api.StateBody) bool {
		return status == api.StatusUnknown && b.Votes == 2 && b.Needed == 2 && b.ClusterVotes == 2 && b.ClusterNeeded == 3
	})
	holdState(t, n4, api.StateUnknown, 8*refresh)
	waitVerdict(t, n1, "200 with dc1's 3 votes", func(status int, b api.StateBody) bool { return status == 200 && b.ClusterVotes == 3 })
	poller.Stop()
	checkNoTwoPrimaries(t, poller)
	w.Stop()
	checkWritesOnlyTo(t, w, n1)

	// scope site, chosen on dc2's nodes: each location confirms its own.
	// node5 first, so that node4 keeps its location's vote once it has it.
	for _, n := range []*lab.Node{n5, n4} {
		if err := n.RestartQuorumWith(map[string]string{"consensus.scope": string(api.ScopeSite)}); err != nil {
			t.Fatal(err)
		}
	}
	waitState(t, n4, api.StatePrimary, settle)
	// node2 is asked nothing here: it learns of the split by its own survey.
	err = lab.WaitFor(ctx, settle, "node2 to report the split-brain", func(ctx context.Context) error {
		var cl api.ClusterBody
		if _, err := n2.GetJSON(ctx, api.PathCluster, &cl); err != nil {
			return err
		}
		metric, err := metricValue(ctx, n2, "pgquorum_split_brain")
		if err != nil {
			return err
		}
		if !cl.SplitBrain || !slices.Equal(cl.Claimants, []string{"node1", "node4"}) || metric != 1 {
			return fmt.Errorf("/cluster split_brain %v claimants %v, metric %v", cl.SplitBrain, cl.Claimants, metric)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if episodes, err := metricValue(ctx, n2, "pgquorum_split_brain_episodes_total"); err != nil || episodes != 1 {
		t.Errorf("node2 counted %v split-brain episodes (%v), want 1", episodes, err)
	}
	holdState(t, n4, api.StatePrimary, 4*refresh) // the episode goes on
	for _, n := range c.Nodes {
		if lines := n.LogLines(`level=ERROR msg="split-brain`); len(lines) != 1 {
			t.Errorf("%s logged the split-brain %d times, want once: %q", n.Name, len(lines), lines)
		}
	}
}

// clusterLabel is the cluster.name label every metric carries.
var clusterLabel = regexp.MustCompile(`cluster="[^"]*",?`)

// metricsText gets n's /metrics without the cluster label, so that tests
// name a series by the labels they are about.
func metricsText(ctx context.Context, n *lab.Node) (int, string, error) {
	status, body, err := n.Get(ctx, api.PathMetrics)
	text := clusterLabel.ReplaceAllString(string(body), "")
	text = strings.ReplaceAll(strings.ReplaceAll(text, ",}", "}"), "{}", "")
	return status, text, err
}

// metricValue reads one unlabelled metric from n's /metrics.
func metricValue(ctx context.Context, n *lab.Node, name string) (float64, error) {
	_, body, err := metricsText(ctx, n)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			var f float64
			_, err := fmt.Sscan(v, &f)
			return f, err
		}
	}
	return 0, fmt.Errorf("no metric %s in %s /metrics", name, n.Name)
}

// TestPeerAddressesLeadingBackHereAreNoVotes: node1's peers are down, and
// its addresses for them lead back to node1 itself, through consensus.peers
// or through peer_port. Its own answers must not count as theirs.
func TestPeerAddressesLeadingBackHereAreNoVotes(t *testing.T) {
	t.Parallel()
	c := startCluster(t, threeNodes("dc1"), nil)
	n1 := c.Node("node1")
	waitSettled(t, c)
	watchStates(t, c)
	stopQuorum(t, c.Node("node2"))
	stopQuorum(t, c.Node("node3"))
	self := fmt.Sprintf("127.0.0.1:%d", n1.QuorumPort)
	for _, tt := range []struct {
		name string
		keys map[string]string
	}{
		{"consensus.peers naming node1's own address", map[string]string{"consensus.peers": "node2=" + self + ",node3=" + self}},
		{"peer_port of node1's own pgquorum on the shared host", map[string]string{"consensus.peers": "", "consensus.peer_port": fmt.Sprint(n1.QuorumPort)}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := n1.RestartQuorumWith(tt.keys); err != nil {
				t.Fatal(err)
			}
			waitVerdict(t, n1, "509 with its own vote only, the others its own answers", func(status int, b api.StateBody) bool {
				return status == api.StatusUnknown && b.ClusterVotes == 1 &&
					strings.Contains(b.Refusals["node2"], "from this node itself") && strings.Contains(b.Refusals["node3"], "from this node itself")
			})
			holdState(t, n1, api.StateUnknown, 6*refresh)
		})
	}
}

// TestDSNReachingAnotherNodeIsDown: a pgquorum whose database.dsn reaches
// another node's database answers 503 and says what did not match, never
// that database's 200 or 202.
func TestDSNReachingAnotherNodeIsDown(t *testing.T) {
	t.Parallel()
	c := startCluster(t, threeNodes("dc1"), nil)
	n1, n2, n3 := c.Node("node1"), c.Node("node2"), c.Node("node3")
	waitSettled(t, c)
	watchStates(t, c)
	for _, tt := range []struct {
		node, reaches *lab.Node
		reason        string
	}{
		{n1, n2, fmt.Sprintf(`database.dsn reaches a server on port %d, but node "node1" is registered on port %d`, n2.PGPort, n1.PGPort)},
		{n3, n1, fmt.Sprintf(`database.dsn reaches a server on port %d, but node "node3" is registered on port %d`, n1.PGPort, n3.PGPort)},
	} {
		t.Run(tt.node.Name+" reaching "+tt.reaches.Name, func(t *testing.T) {
			if err := tt.node.RestartQuorumWith(map[string]string{"database.dsn": tt.reaches.Conninfo()}); err != nil {
				t.Fatal(err)
			}
			waitVerdict(t, tt.node, "503 naming the mismatch", func(status int, b api.StateBody) bool {
				return status == 503 && strings.Contains(b.Reason, tt.reason)
			})
			holdState(t, tt.node, api.StateDown, 4*refresh)
			var down api.DownBody
			if status, err := tt.node.GetJSON(context.Background(), api.PathPrimary, &down); err != nil || status != 503 || !strings.Contains(down.Reason, tt.reason) {
				t.Errorf("%s /primary = %d %+v %v, want 503 naming the mismatch", tt.node.Name, status, down, err)
			}
			if err := tt.node.RestartQuorumWith(nil); err != nil {
				t.Fatal(err)
			}
		})
	}
	waitState(t, n1, api.StatePrimary, settle)
	waitState(t, n3, api.StateStandby, settle)
}

// TestCascadingStandbyVotesThroughItsUpstream: node3 streams from node2,
// itself a standby of node1. It vouches for node1, the primary its metadata
// names, on the same timeline. After node1 dies and node2 is promoted,
// node3 follows the new timeline through its WAL receiver and vouches for
// node2 without any repmgr command.
func TestCascadingStandbyVotesThroughItsUpstream(t *testing.T) {
	t.Parallel()
	c := startCluster(t, []lab.NodeSpec{{Name: "node1", Location: "dc1"}, {Name: "node2", Location: "dc1"}, {Name: "node3", Location: "dc1", Upstream: "node2"}}, nil)
	ctx := context.Background()
	n1, n2, n3 := c.Node("node1"), c.Node("node2"), c.Node("node3")
	if ok, err := n3.StreamsFrom(ctx, n2); !ok || err != nil {
		t.Fatalf("node3 does not stream from node2 (%v)", err)
	}
	waitVerdict(t, n1, "200 with the cascaded standby's vote", func(status int, b api.StateBody) bool {
		return status == 200 && b.ClusterVotes == 3
	})
	watchStates(t, c)

	if err := n1.StopPG(ctx, "immediate"); err != nil {
		t.Fatal(err)
	}
	if err := n2.Promote(ctx); err != nil {
		t.Fatal(err)
	}
	waitVerdict(t, n2, "200 with node3's vote, node3 never re-pointed", func(status int, b api.StateBody) bool {
		return status == 200 && slices.Contains(b.Voters, "node3")
	})
	var b api.StateBody
	if _, err := n3.GetJSON(ctx, api.PathState, &b); err != nil || b.Timeline != 2 {
		t.Errorf("node3 /state timeline = %d (%v), want 2 after following node2's promotion", b.Timeline, err)
	}
}
