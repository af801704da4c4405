package tests

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/internal/lab"
	"github.com/pgquorum/pgquorum/repmgr"
)

// Tests of issue 8: switchover, pause, fencing and rejoin, and the gate for
// repmgrd, on real clusters behind real HAProxy.

// TestSwitchoverUnderWriteLoad: "pgquorum switchover --to node2" while
// writes go through HAProxy every 20 ms. Every step is printed; node2 is
// the primary, node1 and node3 its standbys; no two nodes answer 200 at
// once; no acknowledged write is lost; the outage is logged.
func TestSwitchoverUnderWriteLoad(t *testing.T) {
	t.Parallel()
	r := startFailoverRig(t, threeNodes("dc1"), failoverKeys)
	n1, n2, n3 := r.c.Node("node1"), r.c.Node("node2"), r.c.Node("node3")
	waitWritesOn(t, r.w, n1)
	start := time.Now()
	out, code := runPgquorum(t, "switchover", "--to", "node2", "--wait", "60s", "--url", n3.QuorumURL())
	t.Logf("pgquorum switchover (asked on node3), %s:\n%s", time.Since(start).Round(time.Millisecond), out)
	if code != 0 {
		t.Fatalf("switchover exit %d", code)
	}
	for _, step := range []string{"checked", "node1 stepped down and stopped cleanly", "committed node2 as the primary of epoch 2",
		"node2 runs as primary", "node1 is a standby of node2", "switchover done"} {
		if !strings.Contains(out, step) {
			t.Errorf("the output lacks the step %q", step)
		}
	}
	waitState(t, n2, api.StatePrimary, settle)
	standbyOf(t, n1, n2, settle)
	standbyOf(t, n3, n2, settle)
	r.writesMoveTo(t, n2)
	lost, err := lab.LostWrites(context.Background(), n2, r.w.Acked())
	if err != nil {
		t.Fatal(err)
	}
	if len(lost) > 0 {
		t.Errorf("%d acknowledged writes are not on node2: %v", len(lost), lost)
	}
	h, err := history(context.Background(), n1)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Switchovers) != 1 || h.Switchovers[0].Phase != api.PhaseDone || h.Switchovers[0].Error != "" {
		t.Fatalf("switchovers in node1's /history: %+v", h.Switchovers)
	}
	if d := h.Decisions[0]; d.Epoch != 2 || d.Primary != "node2" || !strings.Contains(d.Reason, "switchover") {
		t.Fatalf("epoch 2: %+v", d)
	}
}

// TestSwitchoverRefused: an unknown target, a target lagging further than
// failover.switchover_max_lag (its WAL receiver stopped while the primary
// writes), and a target that does not stream: each refused with why, exit
// 1, and the primary untouched.
func TestSwitchoverRefused(t *testing.T) {
	t.Parallel()
	r := startFailoverRig(t, threeNodes("dc1"), withKeys(map[string]string{"failover.switchover_max_lag": "64kB"}))
	ctx := context.Background()
	n1, n3 := r.c.Node("node1"), r.c.Node("node3")
	refuse := func(to, why string) {
		t.Helper()
		out, code := runPgquorum(t, "switchover", "--to", to, "--url", n1.QuorumURL())
		if code != 1 || !strings.Contains(out, why) {
			t.Fatalf("switchover --to %s: exit %d, %q; want exit 1 saying %q", to, code, out, why)
		}
		t.Logf("switchover --to %s refused: %s", to, strings.TrimSpace(out))
	}
	refuse("node9", `"node9" is not registered`)

	// node3's WAL receiver, stopped, still says "streaming" while the
	// primary writes 1 MB more than node3 has.
	pid, err := n3.QueryInt(ctx, "SELECT pid FROM pg_stat_wal_receiver")
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(int(pid), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(int(pid), syscall.SIGCONT) })
	if err := n1.Exec(ctx, "CREATE TABLE ballast AS SELECT g, repeat('x', 1000) AS pad FROM generate_series(1, 2000) g"); err != nil {
		t.Fatal(err)
	}
	waitReports(t, "node3 more than 64kB behind node1", func(r map[string]api.Report) error {
		if lag := r["node1"].ReceivedLSN - r["node3"].ReceivedLSN; lag <= 65536 {
			return fmt.Errorf("node3 %d bytes behind", lag)
		}
		return nil
	}, n1, n3)
	refuse("node3", "more than failover.switchover_max_lag (65536)")
	if err := syscall.Kill(int(pid), syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}

	// node3 stops streaming altogether.
	if err := n3.Exec(ctx, "ALTER SYSTEM SET primary_conninfo = ''"); err != nil {
		t.Fatal(err)
	}
	if err := n3.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
		t.Fatal(err)
	}
	err = lab.WaitFor(ctx, settle, "node3's WAL receiver to stop", func(ctx context.Context) error {
		if n, err := n3.QueryInt(ctx, "SELECT count(*) FROM pg_stat_wal_receiver"); err != nil || n != 0 {
			return fmt.Errorf("receivers %d, %v", n, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	waitReports(t, "node3 not streaming from node1", func(r map[string]api.Report) error {
		if n3 := r["node3"]; n3.Upstream == "node1" && n3.Receiver == repmgr.StreamingState {
			return fmt.Errorf("node3 reports %q from %q", n3.Receiver, n3.Upstream)
		}
		return nil
	}, n3)
	refuse("node3", "does not stream from node1")
	holdState(t, n1, api.StatePrimary, fewChecks)
	h, err := history(ctx, n1)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Switchovers) != 0 || h.Decisions[0].Epoch != 1 {
		t.Fatalf("a refused switchover left %+v, %+v", h.Switchovers, h.Decisions)
	}
}

// TestPauseThenKillThePrimary: while paused, the primary's postmaster is
// killed and nothing fails over; every check keeps answering, and /state,
// /cluster and status show the pause. After resume, the failover happens.
func TestPauseThenKillThePrimary(t *testing.T) {
	t.Parallel()
	r := startFailoverRig(t, threeNodes("dc1"), failoverKeys)
	n1, n2 := r.c.Node("node1"), r.c.Node("node2")
	if out, code := runPgquorum(t, "pause", "--reason", "test maintenance", "--url", n2.QuorumURL()); code != 0 {
		t.Fatalf("pause: exit %d: %s", code, out)
	}
	for _, n := range r.c.Nodes {
		waitVerdict(t, n, "the pause in /state", func(_ int, b api.StateBody) bool {
			return b.Failover != nil && b.Failover.Paused && b.Failover.PauseReason == "test maintenance"
		})
	}
	out, _ := runPgquorum(t, "status", "--url", n2.QuorumURL())
	if !strings.Contains(out, "PAUSED") {
		t.Errorf("status does not show the pause:\n%s", out)
	}
	fault := time.Now()
	if err := n1.KillPostmaster(); err != nil {
		t.Fatal(err)
	}
	// Three graces and more: a failover would have been decided by now.
	holdEpoch(t, r.c, 1, 4*time.Second)
	for _, n := range r.c.Nodes[1:] {
		status, b := getState(t, n)
		if status != api.StateStandby.HTTPStatus() || b.Failover == nil || b.Failover.State != api.FailoverPaused {
			t.Errorf("%s while paused: %d %+v", n.Name, status, b.Failover)
		}
	}
	// The primary has been down longer than the grace: the failover
	// follows the resume at once, within the budgets counted from it.
	resumed := time.Now()
	if out, code := runPgquorum(t, "resume", "--url", n2.QuorumURL()); code != 0 {
		t.Fatalf("resume: exit %d: %s", code, out)
	}
	p := r.failedOver(t, 2, "node1", resumed)
	t.Logf("the fault was %s before the resume", resumed.Sub(fault).Round(time.Millisecond))
	r.writesMoveTo(t, p)
}

// TestStalePrimaryFencedThenRejoined: the primary is cut off from its
// peers; the others fail over; it hears no coordinator and its standbys no
// longer stream from it, and, after failover.fence_after (and the window of
// a live stream), it stops its database (failover.fence: stop). Once
// the partition heals, failover.auto_rejoin brings it back as a standby of
// the new primary; the fence is in /history.
func TestStalePrimaryFencedThenRejoined(t *testing.T) {
	t.Parallel()
	r := startFailoverRig(t, threeNodes("dc1"), withKeys(map[string]string{
		"failover.fence": api.FenceStop, "failover.fence_after": "3s", "failover.auto_rejoin": "true"}))
	ctx := context.Background()
	n1 := r.c.Node("node1")
	fault := time.Now()
	if err := r.c.Partition(ctx, []*lab.Node{n1}, r.c.Nodes[1:]); err != nil {
		t.Fatal(err)
	}
	p := r.failedOver(t, 2, "node1", fault, r.c.Nodes[1:]...)
	err := lab.WaitFor(ctx, 15*time.Second, "node1's postmaster to stop (fenced)", func(context.Context) error {
		if pid := n1.PostmasterPID(); pid != 0 {
			return fmt.Errorf("postmaster.pid still names %d", pid)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("node1 fenced %s after the partition", time.Since(fault).Round(time.Millisecond))
	// Rule 2: it hears no coordinator, and its standbys left its stream.
	if lines := n1.LogLines(`msg="fencing this node"`); len(lines) == 0 || !strings.Contains(lines[0], "rule 2: no coordinator") {
		t.Errorf("node1's log: %q, want a fence by rule 2", lines)
	}
	if err := r.c.Heal(ctx); err != nil {
		t.Fatal(err)
	}
	standbyOf(t, n1, p, 60*time.Second)
	err = lab.WaitFor(ctx, settle, "the fence in /history", func(ctx context.Context) error {
		h, err := history(ctx, p)
		if err != nil {
			return err
		}
		for _, f := range h.Fences {
			if f.Node == "node1" {
				return nil
			}
		}
		return fmt.Errorf("fences %+v", h.Fences)
	})
	if err != nil {
		t.Fatal(err)
	}
	r.writesMoveTo(t, p)
}

// TestRepmgrdGatedByFailoverCheck: failover.mode repmgrd, repmgrd on every
// node with "pgquorum failover-check" as its failover_validation_command.
// The primary's postmaster is killed: repmgrd promotes exactly the node the
// Raft group committed, once; failover-check then refuses the other standby
// and refuses the same node a second time.
func TestRepmgrdGatedByFailoverCheck(t *testing.T) {
	t.Parallel()
	keys := withKeys(map[string]string{"failover.mode": string(api.ModeRepmgrd)})
	c := startClusterWith(t, lab.Options{Nodes: threeNodes("dc1"), Quorum: keys, OwnAddresses: true,
		Repmgrd: &lab.RepmgrdOptions{ReconnectAttempts: 2, ReconnectInterval: 1,
			// Each node asks its own pgquorum.
			ValidationCommand: "{pgquorum-bin} failover-check --timeout 10s --url {pgquorum}"}})
	for _, n := range c.Nodes {
		if err := n.StartRepmgrd(); err != nil {
			t.Fatal(err)
		}
	}
	waitSettled(t, c)
	waitDecision(t, c, 1, settle)
	watchStates(t, c)
	if err := c.Node("node1").KillPostmaster(); err != nil {
		t.Fatal(err)
	}
	d := waitDecision(t, c, 2, 60*time.Second, c.Nodes[1:]...)
	if d.OldPrimary != "node1" || strings.Contains(d.Reason, "adopted") {
		t.Fatalf("epoch 2 = %+v, want the coordinator's decision", d)
	}
	p := c.Node(d.Primary)
	waitState(t, p, api.StatePrimary, 60*time.Second)
	h, err := history(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	if top := h.Decisions[0]; top.Epoch != 2 || top.AllowedAt == nil {
		t.Fatalf("epoch 2 in /history: %+v, want it allowed once", top)
	}
	other := c.Node("node2")
	if p == other {
		other = c.Node("node3")
	}
	for _, n := range []*lab.Node{other, p} {
		out, code := runPgquorum(t, "failover-check", "--timeout", "3s", "--url", n.QuorumURL())
		t.Logf("failover-check on %s: exit %d: %s", n.Name, code, strings.TrimSpace(out))
		if code != 1 || !strings.HasPrefix(out, "refused: ") {
			t.Errorf("failover-check on %s: exit %d %q, want refused", n.Name, code, out)
		}
	}
	promoted := 0
	for _, n := range c.Nodes[1:] {
		for _, l := range n.LogLines(`msg=failover-check`) {
			if strings.Contains(l, "allowed=true") {
				promoted++
			}
		}
	}
	if promoted != 1 {
		t.Errorf("failover-check allowed %d times, want once", promoted)
	}
}

// TestFailoverActionsNeedTheToken: with server.admin_token, pause,
// resume and switchover are refused without it (401, nothing paused) and
// taken with --config, which reads it from the node's own file.
func TestFailoverActionsNeedTheToken(t *testing.T) {
	t.Parallel()
	r := startFailoverRig(t, threeNodes("dc1"), withKeys(map[string]string{"server.admin_token": adminToken}))
	n2 := r.c.Node("node2")
	config := filepath.Join(n2.Dir, "pgquorum.yaml")
	paused := func() bool {
		_, b := getState(t, n2)
		return b.Failover != nil && b.Failover.Paused
	}
	if out, code := runPgquorum(t, "pause", "--url", n2.QuorumURL()); code != 1 || !strings.Contains(out, "401") {
		t.Fatalf("pause without the token: exit %d: %s; want 1 and a 401", code, out)
	}
	if out, code := runPgquorum(t, "switchover", "--to", "node3", "--url", n2.QuorumURL()); code != 1 || !strings.Contains(out, "401") {
		t.Fatalf("switchover without the token: exit %d: %s; want 1 and a 401", code, out)
	}
	hold(t, 3*refresh, func() error {
		if paused() {
			return errors.New("a refused pause paused the cluster")
		}
		return nil
	})
	if h, err := history(context.Background(), n2); err != nil || len(h.Switchovers) != 0 {
		t.Fatalf("a refused switchover left %+v (%v)", h.Switchovers, err)
	}
	if out, code := runPgquorum(t, "pause", "--reason", "with the token", "--config", config); code != 0 {
		t.Fatalf("pause --config: exit %d: %s", code, out)
	}
	waitVerdict(t, n2, "the pause", func(_ int, b api.StateBody) bool { return b.Failover != nil && b.Failover.Paused })
	if out, code := runPgquorum(t, "resume", "--config", config); code != 0 {
		t.Fatalf("resume --config: exit %d: %s", code, out)
	}
	waitVerdict(t, n2, "the resume", func(_ int, b api.StateBody) bool { return b.Failover != nil && !b.Failover.Paused })
}
