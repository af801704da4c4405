package tests

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/internal/lab"
)

// patroniWait bounds a change of HAProxy's view under Patroni's template
// timings (inter 3s fall 3 rise 2): fall × inter = 9 s to take a server out,
// rise × inter = 6 s to bring one in, plus the checks' own time and a
// refresh of pgquorum's verdict.
const patroniWait = 30 * time.Second

// patroniTemplate is Patroni's HAProxy template (haproxy.cfg in the Patroni
// repository, as docs/patroni.md quotes it) with only what docs/patroni.md
// changes: the check port (Patroni's 8008 → each node's pgquorum port) and
// the write check's path (/primary → /read-write). The lab adds the admin
// socket its helpers read, and binds on loopback ports. The listener
// primary_unchanged keeps Patroni's "OPTIONS /primary": the trap the
// warning is about, run by the same HAProxy.
func patroniTemplate(c *lab.Cluster, socket string, primary, replicas, unchanged, stats int) string {
	const timing = "inter 3s fall 3 rise 2"
	return checkListeners(c, socket, stats,
		checkListener{"primary", primary, "OPTIONS " + api.PathReadWrite, timing},
		checkListener{"replicas", replicas, "OPTIONS " + api.PathReplica, timing},
		checkListener{"primary_unchanged", unchanged, "OPTIONS " + api.PathPrimary, timing})
}

// checkListener is a listen section of checkListeners: every node a server,
// checked with "option httpchk <check>" expecting 200.
type checkListener struct {
	name   string
	port   int
	check  string // "OPTIONS /read-write"
	timing string // of default-server: "inter 3s fall 3 rise 2"
}

// checkListeners is an haproxy.cfg in the shape of Patroni's template: its
// global and defaults sections, a stats listener, and the listeners given.
func checkListeners(c *lab.Cluster, socket string, stats int, listeners ...checkListener) string {
	var b strings.Builder
	fmt.Fprintf(&b, `global
    maxconn 100
    stats socket %s mode 600 level admin

defaults
    log global
    mode tcp
    retries 2
    timeout client 30m
    timeout connect 4s
    timeout server 30m
    timeout check 5s

listen stats
    mode http
    bind 127.0.0.1:%d
    stats enable
    stats uri /
`, socket, stats)
	for _, l := range listeners {
		fmt.Fprintf(&b, "\nlisten %s\n    bind 127.0.0.1:%d\n    option httpchk %s\n    http-check expect status 200\n"+
			"    default-server %s on-marked-down shutdown-sessions\n", l.name, l.port, l.check, l.timing)
		for _, n := range c.Nodes {
			fmt.Fprintf(&b, "    server %s %s:%d maxconn 100 check port %d\n", n.Name, n.Host, n.PGPort, n.QuorumPort)
		}
	}
	return b.String()
}

// TestPatroniTemplateThroughHAProxy runs Patroni's HAProxy template, changed
// as docs/patroni.md says, through real HAProxy in front of a three-node
// cluster failing over by itself: exactly one write server UP, the
// confirmed primary, before and after a kill -9 of its postmaster. The
// unchanged "OPTIONS /primary" check passes every node, as the issue
// reported, and each standby's pgquorum warns about it once and counts it.
func TestPatroniTemplateThroughHAProxy(t *testing.T) {
	t.Parallel()
	c := startClusterWith(t, lab.Options{Nodes: threeNodes("dc1"), Quorum: failoverKeys, OwnAddresses: true})
	n1, n2, n3 := c.Node("node1"), c.Node("node2"), c.Node("node3")
	waitState(t, n1, api.StatePrimary, settle)
	if d := waitDecision(t, c, 1, settle); d.Primary != "node1" {
		t.Fatalf("epoch 1 adopted %s, want node1", d.Primary)
	}
	ports := make([]int, 4)
	for i := range ports {
		p, err := lab.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = p
	}
	_, socket := c.HAProxyPaths()
	cfg := patroniTemplate(c, socket, ports[0], ports[1], ports[2], ports[3])
	t.Logf("haproxy.cfg:\n%s", cfg)
	h := startHAProxy(t, c, cfg, ports[0], ports[1])

	waitOnlyUp(t, h, "primary", n1)
	waitOnlyUp(t, h, "replicas", n2, n3)
	assertAllLandOn(t, h.rw, 5, readSQL, n1)

	t.Run("Patroni's unchanged /primary check passes every node, and the standbys warn once", func(t *testing.T) {
		waitOnlyUp(t, h, "primary_unchanged", n1, n2, n3)
		for _, n := range []*lab.Node{n2, n3} {
			primaryCheckWarned(t, n)
		}
		// node1 warns only while it is not the confirmed primary. On a
		// loaded machine its verdict can drop before the kill (its votes or
		// its probe timing out), and a warning is then due: each names the
		// state node1 answered in.
		for _, l := range n1.LogLines("option httpchk OPTIONS /primary") {
			if strings.Contains(l, " state=Primary ") {
				t.Errorf("node1 warned about its /primary check while the confirmed primary: %s", l)
			} else {
				t.Logf("node1 warned while its verdict was not Primary: %s", l)
			}
		}
	})

	if err := n1.KillPostmaster(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	d := waitDecision(t, c, 2, primaryBudget, n2, n3)
	p := c.Node(d.Primary)
	if d.OldPrimary != "node1" || p == n1 {
		t.Fatalf("epoch 2 = %+v, want a node replacing node1", d)
	}
	waitState(t, p, api.StatePrimary, primaryBudget)
	waitOnlyUp(t, h, "primary", p)
	t.Logf("%s is the only write server UP %s after node1's postmaster was killed", p.Name, time.Since(killed).Round(time.Millisecond))
	assertAllLandOn(t, h.rw, 5, readSQL, p)
}

// checksCounted reads pgquorum_patroni_primary_checks_total{method} from
// n's /metrics.
var checksCounted = regexp.MustCompile(`(?m)^pgquorum_patroni_primary_checks_total\{method="OPTIONS"\} (\d+)$`)

// primaryCheckWarned waits until n's pgquorum has counted at least three
// of HAProxy's OPTIONS /primary checks, then asserts it logged exactly one
// warning naming the template line and its replacement.
func primaryCheckWarned(t *testing.T, n *lab.Node) {
	t.Helper()
	var counted int
	err := lab.WaitFor(context.Background(), patroniWait, n.Name+" to count three /primary health checks", func(ctx context.Context) error {
		status, text, err := metricsText(ctx, n)
		if err != nil || status != http.StatusOK {
			return fmt.Errorf("/metrics: %d %v", status, err)
		}
		body := []byte(text)
		m := checksCounted.FindSubmatch(body)
		if m == nil {
			return fmt.Errorf("no pgquorum_patroni_primary_checks_total{method=\"OPTIONS\"}")
		}
		counted, _ = strconv.Atoi(string(m[1]))
		if counted < 3 {
			return fmt.Errorf("counted %d", counted)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	lines := n.LogLines("option httpchk OPTIONS /primary")
	if len(lines) != 1 || !strings.Contains(lines[0], "option httpchk OPTIONS /read-write") {
		t.Fatalf("%s counted %d checks and logged %d warnings, want exactly one naming /read-write: %v", n.Name, counted, len(lines), lines)
	}
	t.Logf("%s counted %d checks of /primary, warned once: %s", n.Name, counted, lines[0])
}
