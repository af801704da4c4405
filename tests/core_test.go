package tests

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/internal/lab"
)

// The lab runs pgquorum with a 250ms refresh; "a few refreshes" is bounded
// here, and every wait logs how long it really took.
const (
	refresh   = 250 * time.Millisecond
	fewChecks = 8 * refresh
	settle    = 15 * time.Second // first verdicts, repmgr operations
)

func getState(t *testing.T, n *lab.Node) (int, api.StateBody) {
	t.Helper()
	var b api.StateBody
	status, err := n.GetJSON(context.Background(), api.PathState, &b)
	if err != nil {
		t.Fatal(err)
	}
	return status, b
}

func realPrimary(t *testing.T, n *lab.Node) (int, api.RealPrimaryBody) {
	t.Helper()
	var b api.RealPrimaryBody
	status, err := n.GetJSON(context.Background(), api.PathRealPrimary, &b)
	if err != nil {
		t.Fatal(err)
	}
	return status, b
}

func namedPrimary(t *testing.T, n *lab.Node) (int, string) {
	t.Helper()
	var b api.PrimaryBody
	status, err := n.GetJSON(context.Background(), api.PathPrimary, &b)
	if err != nil {
		t.Fatal(err)
	}
	if b.Primary == nil {
		return status, ""
	}
	return status, *b.Primary
}

func TestThreeNodeSiteAnswers200And202(t *testing.T) {
	t.Parallel()
	c := startCluster(t, threeNodes("dc1"), nil)
	n1 := c.Node("node1")
	waitSettled(t, c)
	// A pgquorum that has just started vouches for nobody for one lease.
	waitVerdict(t, n1, "200 with every vote", func(status int, b api.StateBody) bool { return status == 200 && b.Votes == 3 })

	status, b := getState(t, n1)
	if status != 200 || b.State != api.StatePrimary || b.Node != "node1" || b.Location != "dc1" || b.Votes != 3 || b.Needed != 2 ||
		b.ClusterVotes != 3 || b.ClusterNeeded != 2 || b.Scope != api.ScopeCluster || b.Timeline != 1 {
		t.Errorf("node1 /state = %d %+v, want 200 Primary node1 dc1 votes 3 needed 2, the same cluster-wide, timeline 1", status, b)
	}
	if age := time.Since(b.CheckedAt); age > 3*time.Second || age < -time.Second {
		t.Errorf("node1 checked_at %s is %s old", b.CheckedAt, age)
	}
	for _, n := range c.Nodes {
		if status, name := namedPrimary(t, n); status != 200 || name != "node1" {
			t.Errorf("%s /primary = %d %q, want 200 node1", n.Name, status, name)
		}
		// Every node surveys the cluster once per refresh.
		waitRealPrimary(t, n, "node1")
	}
	for _, method := range []string{http.MethodHead, http.MethodOptions} {
		for path, want := range map[string]map[string]int{
			api.PathState:   {"node1": 200, "node2": 202},
			api.PathRoot:    {"node1": 200, "node2": 202},
			api.PathPrimary: {"node1": 200, "node2": 200},
		} {
			for node, code := range want {
				req, _ := http.NewRequest(method, c.Node(node).QuorumURL()+path, nil)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != code {
					t.Errorf("%s %s on %s = %d, want %d", method, path, node, resp.StatusCode, code)
				}
			}
		}
	}
}

func TestLocalDatabaseStoppedAnswers503(t *testing.T) {
	t.Parallel()
	c := startCluster(t, threeNodes("dc1"), nil)
	ctx := context.Background()
	n1, n2 := c.Node("node1"), c.Node("node2")
	waitState(t, n1, api.StatePrimary, settle)
	waitState(t, n2, api.StateStandby, settle)

	if err := n2.StopPG(ctx, "fast"); err != nil {
		t.Fatal(err)
	}
	if took := waitState(t, n2, api.StateDown, settle); took > fewChecks {
		t.Errorf("standby with its database stopped took %s to answer 503", took)
	}
	var down api.DownBody
	if status, err := n2.GetJSON(ctx, api.PathPrimary, &down); err != nil || status != 503 || down.State != api.StateDown {
		t.Errorf("node2 /primary with DB down = %d %+v %v, want 503 Down", status, down, err)
	}
	// node1 keeps its majority: itself and node3 out of three.
	waitVerdict(t, n1, "200 with 2 of 2 votes", func(status int, b api.StateBody) bool {
		return status == 200 && b.Votes == 2 && b.Needed == 2
	})

	if err := n1.StopPG(ctx, "immediate"); err != nil {
		t.Fatal(err)
	}
	if took := waitState(t, n1, api.StateDown, settle); took > fewChecks {
		t.Errorf("primary with its database killed took %s to answer 503", took)
	}
	err := lab.WaitFor(ctx, settle, "node3 /realPrimary 503 null", func(context.Context) error {
		if status, b := realPrimary(t, c.Node("node3")); status != 503 || b.RealPrimary != nil {
			return fmt.Errorf("got %d %+v", status, b)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}

func TestPrimaryCutOffFromPeersAnswers509(t *testing.T) {
	t.Parallel()
	c := startCluster(t, threeNodes("dc1"), nil)
	n1 := c.Node("node1")
	waitState(t, n1, api.StatePrimary, settle)

	stopQuorum(t, c.Node("node2"))
	stopQuorum(t, c.Node("node3"))
	if took := waitState(t, n1, api.StateUnknown, settle); took > fewChecks {
		t.Errorf("isolated primary took %s to answer 509, want within %s", took, fewChecks)
	}
	status, b := getState(t, n1)
	if status != api.StatusUnknown || b.Votes != 1 || b.Needed != 2 {
		t.Errorf("isolated node1 = %d %+v, want 509 with 1 of 2 votes", status, b)
	}
	err := lab.WaitFor(context.Background(), settle, "/realPrimary 503 with 2 unreachable", func(context.Context) error {
		if status, rp := realPrimary(t, n1); status != 503 || len(rp.Unreachable) != 2 {
			return fmt.Errorf("got %d %+v", status, rp)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}

	if err := c.Node("node3").StartQuorum(); err != nil {
		t.Fatal(err)
	}
	waitState(t, n1, api.StatePrimary, settle)
}
