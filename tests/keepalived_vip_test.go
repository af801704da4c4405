package tests

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/internal/lab"
)

const (
	vip = "127.0.0.100"
	// vrrpSettle bounds a VIP move: fall/rise 2 × interval 1 s of the
	// sample's checks, plus keepalived's master-down timer (3 × advert_int
	// 1 s + skew), plus slack for a loaded machine.
	vrrpSettle = 30 * time.Second
	// vrrpHold is how long a VIP must stay put to count as settled: more
	// than the master-down timer (3 × 1 s + skew) plus a fall/rise of 2 s.
	vrrpHold = 6 * time.Second
)

// vrrpHost is one HAProxy host of the test: a network namespace running a
// real keepalived with the sample configuration and a real HAProxy.
type vrrpHost struct {
	lab.VRRPHost
	dir     string // notify log, hook output, pid files
	haproxy *lab.Proc
}

func (h *vrrpHost) notifyLog() string { return filepath.Join(h.dir, "notify.log") }
func (h *vrrpHost) hookOut() string   { return filepath.Join(h.dir, "hook.args") }

// TestKeepalivedMovesVIPWithThePrimary runs two real keepalived processes,
// each in a network namespace of its own, with the configuration rendered
// from keepalived.conf.sample, against a real cluster:
//
//   - host A (priority 101) asks node1's pgquorum only, host B (100) asks
//     every node: both see node1 as primary, A holds the VIP;
//   - node1 dies and repmgr promotes node2: A no longer sees a primary
//     (101-20 = 81), B does (100), so the VIP moves to B;
//   - B's HAProxy stops: B goes to FAULT and the VIP comes back to A.
//
// The checks run inside the namespaces, which cannot reach the cluster on
// 127.0.0.1 of this test's namespace; keepalived runs them through
// "nsenter --net=/proc/<this test>/ns/net", so they ask the real pgquorum.
func TestKeepalivedMovesVIPWithThePrimary(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"keepalived", "haproxy", "nsenter", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s missing: %v", tool, err)
		}
	}
	c := startCluster(t, threeNodes("dc1"), nil)
	ctx := context.Background()
	n1, n2, n3 := c.Node("node1"), c.Node("node2"), c.Node("node3")
	waitState(t, n1, api.StatePrimary, settle)

	pair, err := lab.NewVRRPPair(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := pair.Close(); err != nil {
			t.Error(err)
		}
	})
	scripts := installScripts(t)
	a := startVRRPHost(t, pair.A, pair.B, scripts, "priority 101", n1.QuorumURL())
	b := startVRRPHost(t, pair.B, pair.A, scripts, "priority 100", n1.QuorumURL(), n2.QuorumURL(), n3.QuorumURL())
	checkNamespaceIsolation(t, a, scripts, n1)

	t.Log("phase 1: both hosts see node1 as primary; A wins on priority")
	waitVIP(t, a, b)
	aMaster := waitNotified(t, a, "MASTER", 0)
	waitNotified(t, b, "BACKUP", 0)
	assertNotNotified(t, b, "MASTER", 0)

	t.Log("phase 2: node1 dies, node2 is promoted; only B sees a primary")
	start := time.Now()
	if err := n1.StopPG(ctx, "immediate"); err != nil {
		t.Fatal(err)
	}
	waitState(t, n1, api.StateDown, settle)
	if err := n2.Promote(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n3.Follow(ctx); err != nil {
		t.Fatal(err)
	}
	waitState(t, n2, api.StatePrimary, settle)
	// Until now neither host could see a primary: both lost 20 points and
	// the VIP must not have moved (B needs 2 passing checks, then a
	// master-down timer, to preempt: seconds after node2's first 200).
	if on, err := a.HasAddr(ctx, vip); err != nil || !on {
		t.Errorf("VIP left A while no host could see a primary (err %v)", err)
	}
	assertNotNotified(t, b, "MASTER", 0)
	moved := waitVIP(t, b, a)
	t.Logf("VIP on B %s after node1 was stopped", moved.Sub(start).Round(time.Millisecond))
	bMaster := waitNotified(t, b, "MASTER", 0)
	waitNotified(t, a, "BACKUP", aMaster)

	t.Log("phase 3: B's HAProxy stops; B goes to FAULT and A takes the VIP back")
	if err := b.haproxy.Stop(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	waitVIP(t, a, b)
	waitNotified(t, b, "FAULT", bMaster)
	waitNotified(t, a, "MASTER", aMaster)
}

// startVRRPHost starts host h's HAProxy and keepalived; peer is the other host.
func startVRRPHost(t *testing.T, h, peer lab.VRRPHost, scripts, priority string, urls ...string) *vrrpHost {
	t.Helper()
	ctx := context.Background()
	host := &vrrpHost{VRRPHost: h, dir: filepath.Join(t.TempDir(), h.NS)}
	if err := os.Mkdir(host.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// HAProxy runs in this test's namespace: only its liveness, read from
	// its pid file, is under test.
	hap, pidfile, err := lab.StartHAProxy(ctx, host.dir, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	host.haproxy = hap
	t.Cleanup(func() {
		if err := hap.Stop(5 * time.Second); err != nil {
			t.Error(err)
		}
	})
	hook := filepath.Join(host.dir, "hook")
	writeExecutable(t, hook, "#!/bin/sh\necho \"$*\" >> \"$HOOK_OUT\"\n")
	conf := filepath.Join(host.dir, "keepalived.conf")
	writeFile(t, conf, renderSample(t, h, peer, scripts, pidfile, priority, urls))

	cmd := lab.KeepalivedCmd(h.NS, conf, host.dir)
	cmd.Env = []string{
		"PATH=/usr/sbin:/usr/bin:/sbin:/bin",
		"PGQUORUM_BIN=" + pgquorumBin,
		"PGQUORUM_NOTIFY_LOG=" + host.notifyLog(),
		"PGQUORUM_NOTIFY_HOOK=" + hook,
		"HOOK_OUT=" + host.hookOut(),
	}
	ka, err := lab.StartProc("keepalived "+h.NS, cmd, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := ka.Stop(10 * time.Second); err != nil {
			t.Error(err)
		}
		lab.KillVRRPChild(host.dir)
	})
	return host
}

// renderSample turns keepalived.conf.sample (haproxy1's) into h's config.
// Every replaced text must be in the sample, and no placeholder may remain:
// the test runs the sample itself, not a look-alike.
func renderSample(t *testing.T, h, peer lab.VRRPHost, scripts, pidfile, priority string, urls []string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(keepalivedScripts, "keepalived.conf.sample"))
	if err != nil {
		t.Fatal(err)
	}
	nsenter, _ := exec.LookPath("nsenter")
	conf := string(b)
	for _, r := range [][2]string{
		{"router_id haproxy1", "router_id " + h.NS},
		// nsenter, which the checks need here, requires root.
		{"script_user keepalived_script", "script_user root"},
		{"/etc/keepalived/pgquorum/check_haproxy.sh /run/haproxy.pid", scripts + "/check_haproxy.sh " + pidfile},
		{"/etc/keepalived/pgquorum/check_primary.sh http://192.0.2.11:5999 http://192.0.2.12:5999 http://192.0.2.13:5999",
			fmt.Sprintf("%s --net=/proc/%d/ns/net %s/check_primary.sh %s", nsenter, os.Getpid(), scripts, strings.Join(urls, " "))},
		{"notify /etc/keepalived/pgquorum/notify.sh", "notify " + scripts + "/notify.sh"},
		{"interface eth0", "interface " + h.Iface},
		{"192.0.2.100/24 dev eth0", vip + "/32 dev " + h.Iface},
		{"unicast_src_ip 192.0.2.21", "unicast_src_ip " + h.Addr},
		{"        192.0.2.22\n", "        " + peer.Addr + "\n"},
		{"priority 101", priority},
	} {
		if !strings.Contains(conf, r[0]) {
			t.Fatalf("keepalived.conf.sample no longer contains %q", r[0])
		}
		conf = strings.ReplaceAll(conf, r[0], r[1])
	}
	for _, line := range strings.Split(conf, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "!") {
			continue // comments may name the placeholders
		}
		for _, left := range []string{"192.0.2.", "/etc/keepalived", "eth0"} {
			if strings.Contains(line, left) {
				t.Fatalf("rendered config still contains %q: %q", left, line)
			}
		}
	}
	return conf
}

// checkNamespaceIsolation proves that the nsenter hop is what lets a check
// reach pgquorum: without it, from inside the host's namespace, the same
// script gets no verdict.
func checkNamespaceIsolation(t *testing.T, h *vrrpHost, scripts string, n *lab.Node) {
	t.Helper()
	env := []string{"PGQUORUM_BIN=" + pgquorumBin}
	script := filepath.Join(scripts, "check_primary.sh")
	code, out := runTool(t, env, "ip", "netns", "exec", h.NS, script, n.QuorumURL())
	if code != 2 {
		t.Errorf("inside %s without nsenter: exit %d (%s), want 2: unreachable", h.NS, code, out)
	}
	code, out = runTool(t, env, "ip", "netns", "exec", h.NS, "nsenter", fmt.Sprintf("--net=/proc/%d/ns/net", os.Getpid()), script, n.QuorumURL())
	if code != 0 || !strings.Contains(out, "primary: "+n.Name+" is Primary") {
		t.Errorf("inside %s through nsenter: exit %d (%s), want 0 from the real pgquorum", h.NS, code, out)
	}
}

func assertNotNotified(t *testing.T, h *vrrpHost, state string, skip int) {
	t.Helper()
	lines := readLines(h.notifyLog())
	for _, l := range lines[min(skip, len(lines)):] {
		if strings.Contains(l, " is now "+state+" ") {
			t.Errorf("%s was notified %s: %q", h.NS, state, l)
		}
	}
}

func readLines(path string) []string {
	b, err := os.ReadFile(path)
	if err != nil || len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimRight(string(b), "\n"), "\n")
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
