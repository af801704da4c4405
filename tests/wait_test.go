package tests

// The integration tests wait and hold with these helpers (and lab.WaitFor,
// which they are built on). A wait polls something the test can observe (an
// answer, a counter, a socket, a log line) until it is as wanted, within a
// deadline; a hold checks an invariant throughout a duration, not once at
// its end. Kept elsewhere: the soak's own waits, in soak_test.go (its build
// tag compiles their callers only), and waitDOM, in ui_test.go, which polls
// /cluster at the pace of the views' rate limit that the page under test
// shares.
//
// No test sleeps to wait for something to happen. The bare sleeps left are
// lengths, not waits: runFor (soak_test.go) and faultFor (chaos_test.go),
// how long a load or a fault lasts; the offset after which the operator
// acts in TestRejoinWhileTheOperatorStartsTheOldPrimary (rejoin_test.go),
// which is the scenario; the pace of a poll (waitDOM, screenshot in
// ui_test.go; the /state watcher of quorum_db_test.go).

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/internal/lab"
)

// holdEvery is how often a hold checks its invariant.
const holdEvery = 50 * time.Millisecond

// hold checks cond at once, then every holdEvery until d has passed, and
// fails t at its first error.
func hold(t *testing.T, d time.Duration, cond func() error) {
	t.Helper()
	tick := time.NewTicker(holdEvery)
	defer tick.Stop()
	for end := time.Now().Add(d); ; <-tick.C {
		if err := cond(); err != nil {
			t.Fatal(err)
		}
		if !time.Now().Before(end) {
			return
		}
	}
}

// waitState waits until n's /state answers want and returns how long it took.
func waitState(t *testing.T, n *lab.Node, want api.State, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	if err := n.WaitStatus(context.Background(), api.PathState, want.HTTPStatus(), timeout); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	t.Logf("%s is %s after %s", n.Name, want, took.Round(time.Millisecond))
	return took
}

// waitPolledPrimary waits until the poller has seen node answer 200 after
// the instant after, and returns the first such instant. waitState asks the
// node itself; the poller samples, so it may not have seen the 200 yet, and
// a budget checked against its answer before then compares nothing.
func waitPolledPrimary(t *testing.T, p *lab.StatePoller, node string, after time.Time, timeout time.Duration) time.Time {
	t.Helper()
	var first time.Time
	err := lab.WaitFor(context.Background(), timeout, "the poller to see "+node+"'s 200", func(context.Context) error {
		var seen bool
		if first, seen = p.FirstPrimary(node, after); !seen {
			return fmt.Errorf("no 200 from %s since %s", node, after.Format("15:04:05.000"))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return first
}

// waitSettled waits until a fresh three-node site answers as it should:
// node1 Primary, node2 and node3 Standby.
func waitSettled(t *testing.T, c *lab.Cluster) {
	t.Helper()
	waitState(t, c.Node("node1"), api.StatePrimary, settle)
	waitState(t, c.Node("node2"), api.StateStandby, settle)
	waitState(t, c.Node("node3"), api.StateStandby, settle)
}

// waitVerdict waits until n's /state satisfies ok.
func waitVerdict(t *testing.T, n *lab.Node, what string, ok func(int, api.StateBody) bool) {
	t.Helper()
	err := lab.WaitFor(context.Background(), settle, n.Name+" /state "+what, func(ctx context.Context) error {
		var b api.StateBody
		status, err := n.GetJSON(ctx, api.PathState, &b)
		if err != nil {
			return err
		}
		if !ok(status, b) {
			return fmt.Errorf("got %d %+v", status, b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// waitPath waits until n answers want on path.
func waitPath(t *testing.T, n *lab.Node, path string, want int) {
	t.Helper()
	if err := n.WaitStatus(context.Background(), path, want, settle); err != nil {
		t.Fatal(err)
	}
}

// waitRealPrimary waits until n's /realPrimary names want.
func waitRealPrimary(t *testing.T, n *lab.Node, want string) {
	t.Helper()
	err := lab.WaitFor(context.Background(), settle, n.Name+" /realPrimary = "+want, func(context.Context) error {
		status, b := realPrimary(t, n)
		if status != 200 || b.RealPrimary == nil || *b.RealPrimary != want {
			return fmt.Errorf("got %d %+v", status, b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// holdState asserts that n answers want (and nothing else) for d.
func holdState(t *testing.T, n *lab.Node, want api.State, d time.Duration) {
	t.Helper()
	hold(t, d, func() error {
		if status, b := getState(t, n); status != want.HTTPStatus() {
			return fmt.Errorf("%s /state = %d %+v while it must stay %s", n.Name, status, b, want)
		}
		return nil
	})
}

// standbyOf waits until n answers 202 and streams from primary, as /cluster
// on n says.
func standbyOf(t *testing.T, n, primary *lab.Node, timeout time.Duration) {
	t.Helper()
	err := lab.WaitFor(context.Background(), timeout, n.Name+" to be a standby of "+primary.Name, func(ctx context.Context) error {
		var b api.ClusterBody
		if _, err := n.GetJSON(ctx, api.PathCluster, &b); err != nil {
			return err
		}
		for _, cn := range b.Nodes {
			if cn.Name != n.Name {
				continue
			}
			if cn.Status != api.StateStandby.HTTPStatus() || cn.Upstream != primary.Name {
				return fmt.Errorf("%s answers %d, upstream %q", n.Name, cn.Status, cn.Upstream)
			}
			return nil
		}
		return fmt.Errorf("%s not in its own /cluster", n.Name)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// waitStatus waits until each "proxy/server" shows its status.
func (h *labHAProxy) waitStatus(t *testing.T, want map[string]string) time.Duration {
	t.Helper()
	start := time.Now()
	for key, status := range want {
		proxy, server, _ := strings.Cut(key, "/")
		if err := h.WaitStatus(context.Background(), proxy, server, status, hapWait); err != nil {
			t.Fatal(err)
		}
	}
	return time.Since(start)
}

// waitOnlyUp waits until, of proxy's servers, exactly the nodes of want are
// UP (checked, not merely assumed at start) and every other one is DOWN.
func waitOnlyUp(t *testing.T, h *labHAProxy, proxy string, want ...*lab.Node) {
	t.Helper()
	start := time.Now()
	var names []string
	for _, n := range want {
		names = append(names, n.Name)
	}
	err := lab.WaitFor(context.Background(), patroniWait, fmt.Sprintf("haproxy %s: exactly %v UP", proxy, names), func(ctx context.Context) error {
		stats, err := h.Stats(ctx)
		if err != nil {
			return err
		}
		var up, seen []string
		for key, s := range stats {
			p, server, _ := strings.Cut(key, "/")
			if p != proxy {
				continue
			}
			seen = append(seen, fmt.Sprintf("%s %q (%s %d)", server, s.Status, s.CheckStatus, s.CheckCode))
			switch {
			case strings.HasPrefix(s.Status, "UP") && s.CheckStatus == "L7OK":
				up = append(up, server)
			case strings.HasPrefix(s.Status, "UP"):
				return fmt.Errorf("%s is UP without a passed check yet: %v", server, seen)
			}
		}
		slices.Sort(up)
		slices.Sort(seen)
		if !slices.Equal(up, names) {
			return fmt.Errorf("UP %v, want %v: %v", up, names, seen)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("haproxy %s: exactly %v UP after %s", proxy, names, time.Since(start).Round(time.Millisecond))
}

// waitDecision waits until every running pgquorum (or every one of only,
// when given) holds a decision of at least epoch, and returns the latest.
func waitDecision(t *testing.T, c *lab.Cluster, epoch uint64, timeout time.Duration, only ...*lab.Node) api.Decision {
	t.Helper()
	nodes := c.Nodes
	if len(only) > 0 {
		nodes = only
	}
	var d api.Decision
	err := lab.WaitFor(context.Background(), timeout, fmt.Sprintf("every node to hold a decision of epoch %d", epoch), func(ctx context.Context) error {
		for _, n := range nodes {
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

// holdEpoch asserts that no node commits a decision past epoch for d.
func holdEpoch(t *testing.T, c *lab.Cluster, epoch uint64, d time.Duration) {
	t.Helper()
	hold(t, d, func() error {
		for _, n := range c.Nodes {
			if n.QuorumPID() == 0 {
				continue
			}
			h, err := history(context.Background(), n)
			if err == nil && len(h.Decisions) > 0 && h.Decisions[0].Epoch > epoch {
				return fmt.Errorf("%s committed %+v: a failover that must not happen", n.Name, h.Decisions[0])
			}
		}
		return nil
	})
}

// holdUnknownRefusing asserts that n never answers 200 for at least d, and
// until it answered 509 refusing peer's vote for why. A 503 under load (a
// slow probe of the local database) is no error here: the property is that
// no unproven vote ever makes a primary.
func holdUnknownRefusing(t *testing.T, n *lab.Node, peer string, d time.Duration, why string) {
	t.Helper()
	start := time.Now()
	var last api.StateBody
	saw := false
	tick := time.NewTicker(holdEvery)
	defer tick.Stop()
	for ; time.Since(start) < d || (!saw && time.Since(start) < settle); <-tick.C {
		status, b := getState(t, n)
		if status == http.StatusOK {
			t.Fatalf("%s answered 200 on a vote it could not verify: %+v", n.Name, b)
		}
		if status == api.StatusUnknown && containsAll(b.Refusals[peer], why) {
			saw = true
		}
		last = b
	}
	if !saw {
		t.Errorf("%s never refused %s's vote for %q; last answer %+v", n.Name, peer, why, last)
	}
}

// waitVIP waits until the VIP is on holder's interface and not on other's,
// then checks that it stays so for vrrpHold: a higher-priority peer would
// preempt within that time, so a VIP that merely passes by does not count.
// It returns when the VIP was first seen in place.
func waitVIP(t *testing.T, holder, other *vrrpHost) time.Time {
	t.Helper()
	start := time.Now()
	where := func(ctx context.Context) error {
		on, err := holder.HasAddr(ctx, vip)
		if err != nil || !on {
			return fmt.Errorf("not on %s (%v)", holder.NS, err)
		}
		if on, err := other.HasAddr(ctx, vip); err != nil || on {
			return fmt.Errorf("also on %s (%v)", other.NS, err)
		}
		return nil
	}
	if err := lab.WaitFor(context.Background(), vrrpSettle, "VIP on "+holder.NS+" only", where); err != nil {
		t.Fatal(err)
	}
	arrived := time.Since(start)
	t.Logf("VIP on %s after %s", holder.NS, arrived.Round(time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), vrrpHold)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return start.Add(arrived)
		case <-tick.C:
		}
		if err := where(ctx); err != nil && ctx.Err() == nil {
			t.Fatalf("VIP left %s %s after it arrived: %v", holder.NS, (time.Since(start) - arrived).Round(time.Millisecond), err)
		}
	}
}

// waitNotified waits until h's notify log has, after its first skip lines,
// a transition to state and the hook has received the same arguments; it
// returns the number of log lines up to that one.
func waitNotified(t *testing.T, h *vrrpHost, state string, skip int) int {
	t.Helper()
	var at int
	err := lab.WaitFor(context.Background(), vrrpSettle, h.NS+" notified "+state, func(context.Context) error {
		lines := readLines(h.notifyLog())
		for i := skip; i < len(lines); i++ {
			_, prio, ok := strings.Cut(lines[i], "pgquorum-keepalived: INSTANCE VI_PGQ is now "+state+" (priority ")
			if !ok {
				continue
			}
			want := "INSTANCE VI_PGQ " + state + " " + strings.TrimSuffix(prio, ")")
			for _, l := range readLines(h.hookOut()) {
				if l == want {
					at = i + 1
					return nil
				}
			}
			return fmt.Errorf("logged %q, but the hook did not receive %q", lines[i], want)
		}
		return fmt.Errorf("notify log: %q", lines)
	})
	if err != nil {
		t.Fatal(err)
	}
	return at
}

// waitRSS waits until pid's RSS is at most bound, or timeout passes, and
// returns the last reading and whether it got there.
func waitRSS(pid int, bound int64, timeout time.Duration) (int64, bool) {
	var rss int64
	err := lab.WaitFor(context.Background(), timeout, fmt.Sprintf("RSS of %d at most %s", pid, mib(bound)), func(context.Context) error {
		r, err := readVmStatus(pid, "VmRSS")
		if err != nil {
			return err
		}
		if rss = r; r > bound {
			return fmt.Errorf("RSS %s", mib(r))
		}
		return nil
	})
	return rss, err == nil
}

// waitWritesOn waits until a write through HAProxy has been acknowledged by
// n: a test that moves the primary away needs writes on the old one first.
func waitWritesOn(t *testing.T, w *lab.WriteProber, n *lab.Node) {
	t.Helper()
	err := lab.WaitFor(context.Background(), settle, "a write acknowledged by "+n.Name, func(context.Context) error {
		if b := w.Backends(); len(b) == 0 || b[len(b)-1] != n.PGPort {
			return fmt.Errorf("writes acknowledged by %v (ports)", b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// ownReport asks n for the report the failover coordinator gathers, naming
// no coordinator, so that n takes note of nothing.
func ownReport(ctx context.Context, n *lab.Node) (api.Report, error) {
	return lab.Report(ctx, n.Quorum())
}

// waitReports waits until the reports of nodes, as the coordinator would
// gather them now, satisfy ok.
func waitReports(t *testing.T, what string, ok func(map[string]api.Report) error, nodes ...*lab.Node) {
	t.Helper()
	err := lab.WaitFor(context.Background(), settle, "reports: "+what, func(ctx context.Context) error {
		reports := map[string]api.Report{}
		for _, n := range nodes {
			r, err := ownReport(ctx, n)
			if err != nil {
				return err
			}
			reports[n.Name] = r
		}
		return ok(reports)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// waitStatsFlushed waits until the statistics counter that query reads on
// n moves past from, its reading at the end of a load, and returns the new
// reading. A backend flushes its table statistics at the end of a
// transaction at most once a second (an idle one ten seconds later), so a
// reading just after the load may lack its last second; the first move
// after the load is a flush, which carries everything the backend did
// before it. poke, when not nil, gives the backend work to end in a flush.
func waitStatsFlushed(t *testing.T, n *lab.Node, query string, from int64, poke func(context.Context)) int64 {
	t.Helper()
	var now int64
	err := lab.WaitFor(context.Background(), settle, n.Name+" statistics flushed after the load", func(ctx context.Context) error {
		if poke != nil {
			poke(ctx)
		}
		v, err := n.QueryInt(ctx, query)
		if err != nil {
			return err
		}
		if now = v; v <= from {
			return fmt.Errorf("counter still %d", v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return now
}

// waitLog waits until n's pgquorum has logged substr at least count times,
// and returns when it saw it.
func waitLog(t *testing.T, n *lab.Node, substr string, count int, timeout time.Duration) time.Time {
	t.Helper()
	err := lab.WaitFor(context.Background(), timeout, fmt.Sprintf("%s to log %s %d times", n.Name, substr, count), func(context.Context) error {
		if got := len(n.LogLines(substr)); got < count {
			return fmt.Errorf("%d times", got)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return time.Now()
}

// waitPromotionRecorded waits until p's /history records the promotion of
// epoch's primary.
func waitPromotionRecorded(t *testing.T, p *lab.Node, epoch uint64) {
	t.Helper()
	err := lab.WaitFor(context.Background(), settle, fmt.Sprintf("the promotion of epoch %d in /history", epoch), func(ctx context.Context) error {
		h, err := history(ctx, p)
		if err != nil {
			return err
		}
		if len(h.Decisions) == 0 || h.Decisions[0].Epoch != epoch || h.Decisions[0].PromotedAt == nil {
			return fmt.Errorf("decisions %+v", h.Decisions)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// waitSync waits until n's /state failover.synchronous satisfies ok.
func waitSync(t *testing.T, n *lab.Node, what string, ok func(*api.SyncStatus) bool) *api.SyncStatus {
	t.Helper()
	var got *api.SyncStatus
	err := lab.WaitFor(context.Background(), syncBudget, n.Name+" /state synchronous: "+what, func(ctx context.Context) error {
		var b api.StateBody
		if _, err := n.GetJSON(ctx, api.PathState, &b); err != nil {
			return err
		}
		if b.Failover == nil || b.Failover.Synchronous == nil {
			return fmt.Errorf("no synchronous object: %+v", b.Failover)
		}
		if got = b.Failover.Synchronous; !ok(got) {
			return fmt.Errorf("got %+v", *got)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s synchronous: %s %v, synchronous_standby_names %q, %s", n.Name, got.Mode, got.Set, got.StandbyNames, got.RPO)
	return got
}

// holdUnfenced asserts for d that node1's postmaster runs, that no pgquorum
// logged a fence and that no decision goes past epoch 1.
func holdUnfenced(t *testing.T, r *failoverRig, d time.Duration) {
	t.Helper()
	n1 := r.c.Node("node1")
	hold(t, d, func() error {
		if n1.PostmasterPID() == 0 {
			return fmt.Errorf("node1's postmaster stopped")
		}
		for _, n := range r.c.Nodes {
			if lines := n.LogLines(fenceLine); len(lines) > 0 {
				return fmt.Errorf("%s fenced: %s", n.Name, lines[0])
			}
			if n.QuorumPID() == 0 {
				continue
			}
			h, err := history(context.Background(), n)
			if err == nil && len(h.Decisions) > 0 && h.Decisions[0].Epoch > 1 {
				return fmt.Errorf("%s committed %+v: a failover that must not happen", n.Name, h.Decisions[0])
			}
		}
		return nil
	})
}

// waitPostmasterStopped waits until n's postmaster has stopped (a fence with
// failover.fence: stop).
func waitPostmasterStopped(t *testing.T, n *lab.Node, timeout time.Duration) {
	t.Helper()
	err := lab.WaitFor(context.Background(), timeout, n.Name+"'s postmaster to stop (fenced)", func(context.Context) error {
		if pid := n.PostmasterPID(); pid != 0 {
			return fmt.Errorf("postmaster.pid still names %d", pid)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// waitFenceInHistory waits until p's /history records a fence of node whose
// reason starts with rule.
func waitFenceInHistory(t *testing.T, p *lab.Node, node, rule string) {
	t.Helper()
	err := lab.WaitFor(context.Background(), settle, node+"'s fence in /history", func(ctx context.Context) error {
		h, err := history(ctx, p)
		if err != nil {
			return err
		}
		for _, f := range h.Fences {
			if f.Node == node && strings.HasPrefix(f.Reason, rule) {
				t.Logf("/history: %s fenced at %s: %s", f.Node, f.At.Format("15:04:05.000"), f.Reason)
				return nil
			}
		}
		return fmt.Errorf("fences %+v", h.Fences)
	})
	if err != nil {
		t.Fatal(err)
	}
}
