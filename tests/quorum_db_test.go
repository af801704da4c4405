package tests

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/internal/lab"
)

// TestApplyDelayedStandbyVotesByReplication: node3 replays WAL a minute late
// (recovery_min_apply_delay). After node1 dies, node2 is promoted and node3
// re-pointed to it: node3 streams node2's new timeline but its metadata
// still names node1 for a minute. Its vote follows replication: node2 is
// confirmed with it, and the old node1, started again, gets nothing from it.
func TestApplyDelayedStandbyVotesByReplication(t *testing.T) {
	t.Parallel()
	c := startCluster(t, threeNodes("dc1"), nil)
	ctx := context.Background()
	n1, n2, n3 := c.Node("node1"), c.Node("node2"), c.Node("node3")
	waitSettled(t, c)
	for _, sql := range []string{"ALTER SYSTEM SET recovery_min_apply_delay = '60s'", "SELECT pg_reload_conf()"} {
		if err := n3.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	watchStates(t, c)

	if err := n1.StopPG(ctx, "immediate"); err != nil {
		t.Fatal(err)
	}
	if err := n2.Promote(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n3.Repoint(ctx, n2); err != nil {
		t.Fatal(err)
	}
	waitVerdict(t, n2, "200 with node3's vote", func(status int, b api.StateBody) bool {
		return status == 200 && slices.Contains(b.Voters, "node3")
	})
	if status, name := namedPrimary(t, n3); status != 200 || name != "node1" {
		t.Fatalf("node3 /primary = %d %q; want its delayed metadata still naming node1, or the test proves nothing", status, name)
	}

	if err := n1.StartPG(ctx); err != nil {
		t.Fatal(err)
	}
	waitVerdict(t, n1, "509, node3 refusing the older timeline", func(status int, b api.StateBody) bool {
		return status == api.StatusUnknown && b.Refusals["node3"] != "" && slices.Equal(b.Voters, []string{"node1"})
	})
	holdState(t, n1, api.StateUnknown, 6*refresh)
	holdState(t, n2, api.StatePrimary, 2*refresh)
}

// TestEventsFloodNeverStarvesTheVerdict: /events is asked with every limit
// from 1 to 1000, by 16 clients at once, over 200,000 events. The probe has
// a connection of its own and /events is cached whatever the limit: the
// primary keeps answering 200, and the flood costs the database about one
// query of repmgr.events a second. The clients share one address, so most
// of the flood is answered 429 by the per-client limit of the views.
func TestEventsFloodNeverStarvesTheVerdict(t *testing.T) {
	t.Parallel()
	c := startCluster(t, threeNodes("dc1"), nil)
	ctx := context.Background()
	n1 := c.Node("node1")
	waitSettled(t, c)
	err := n1.Exec(ctx, `INSERT INTO repmgr.events (node_id, event, successful, event_timestamp, details)
		SELECT 1, 'pgq_flood', true, now() - g * interval '1 second', 'row ' || g FROM generate_series(1, 200000) g`)
	if err != nil {
		t.Fatal(err)
	}
	const eventsScans = `SELECT coalesce(seq_scan, 0) + coalesce(idx_scan, 0) FROM pg_stat_user_tables WHERE relid = 'repmgr.events'::regclass`
	before, err := n1.QueryInt(ctx, eventsScans)
	if err != nil {
		t.Fatal(err)
	}
	poller := lab.StartStatePoller([]*lab.Node{n1}, pollEvery)
	const clients, flood = 16, 6 * time.Second
	start := time.Now()
	var requests, failed, limited atomic.Int64
	var reasons failureSample
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 1))
			for time.Since(start) < flood {
				resp, err := client.Get(fmt.Sprintf("%s%s?limit=%d", n1.QuorumURL(), api.PathEvents, 1+rng.IntN(1000)))
				if err != nil {
					failed.Add(1)
					reasons.add(time.Since(start), err.Error())
					continue
				}
				body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
				resp.Body.Close()
				requests.Add(1)
				switch {
				case resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get("Retry-After") != "":
					limited.Add(1)
				case resp.StatusCode != 200:
					failed.Add(1)
					reasons.add(time.Since(start), fmt.Sprintf("%d %s", resp.StatusCode, body))
				}
			}
		}()
	}
	wg.Wait()
	// A backend flushes its statistics at most once a second, and an idle
	// one only ten seconds later: a trickle of requests, one a second as the
	// views' limit allows, makes the flood's last queries count.
	atEnd, err := n1.QueryInt(ctx, eventsScans)
	if err != nil {
		t.Fatal(err)
	}
	var trickled time.Time
	waitStatsFlushed(t, n1, eventsScans, atEnd, func(ctx context.Context) {
		if time.Since(trickled) > 1100*time.Millisecond {
			trickled = time.Now()
			_, _, _ = n1.Get(ctx, api.PathEvents)
		}
	})
	poller.Stop()
	window := time.Since(start)
	after, err := n1.QueryInt(ctx, eventsScans)
	if err != nil {
		t.Fatal(err)
	}
	answers, primary := poller.Count()
	allowed := int64(window/time.Second) + 2
	t.Logf("%d /events requests (%d failed, %d rate-limited) in %s: repmgr.events read %d times in %s (allowed %d); /state answered 200 %d of %d times",
		requests.Load(), failed.Load(), limited.Load(), flood, after-before, window.Round(time.Millisecond), allowed, primary, answers)
	if failed.Load() != 0 {
		t.Errorf("%d /events requests failed: %s", failed.Load(), reasons.String())
	}
	if served := requests.Load() - limited.Load(); limited.Load() == 0 || served < int64(flood/time.Second) {
		t.Errorf("%d /events requests answered 200 and %d rate-limited: want both", served, limited.Load())
	}
	if after-before > allowed || after-before < 2 {
		t.Errorf("repmgr.events read %d times in %s, want between 2 and %d", after-before, window, allowed)
	}
	if answers == 0 || primary != answers {
		t.Errorf("the primary answered 200 to %d of %d /state polls during the flood: %s", primary, answers, poller.Summary())
	}
}

// TestRestartedDatabaseReportedAtTheFirstRefresh: after PostgreSQL restarts
// (fast or crash), the pooled connection is dead; the first refresh that
// starts once the server accepts connections again must report the truth,
// not Down.
func TestRestartedDatabaseReportedAtTheFirstRefresh(t *testing.T) {
	t.Parallel()
	c := startCluster(t, threeNodes("dc1"), nil)
	ctx := context.Background()
	n1 := c.Node("node1")
	waitSettled(t, c)
	watchStates(t, c)
	for _, mode := range []string{"fast", "immediate"} {
		t.Run(mode, func(t *testing.T) {
			verdicts := watchVerdicts(ctx, n1)
			if err := n1.StopPG(ctx, mode); err != nil {
				t.Fatal(err)
			}
			if err := n1.StartPG(ctx); err != nil {
				t.Fatal(err)
			}
			up := time.Now()
			// A verdict cached from before the restart may still be served:
			// wait for one probed after it.
			var first api.StateBody
			waitVerdict(t, n1, "200 from facts probed after the restart", func(status int, b api.StateBody) bool {
				first = b
				return status == 200 && b.CheckedAt.After(up)
			})
			// The watcher stops now and may not have polled the verdict the
			// wait just saw: count that one too.
			seen := append(verdicts(), first)
			var after []string
			for _, v := range seen {
				if v.CheckedAt.After(up) {
					after = append(after, fmt.Sprintf("%s@%s", v.State, v.CheckedAt.Format("15:04:05.000")))
					if v.State == api.StateDown {
						t.Errorf("a probe that started %s after PostgreSQL accepted connections again found it Down: %s",
							v.CheckedAt.Sub(up).Round(time.Millisecond), v.Reason)
					}
				}
			}
			if len(after) == 0 {
				t.Fatal("no verdict probed after the restart was seen")
			}
			t.Logf("verdicts probed after PostgreSQL was up again: %v", after)
		})
	}
}

// watchVerdicts records every distinct verdict (by checked_at) of n's
// /state until the returned function is called.
func watchVerdicts(ctx context.Context, n *lab.Node) func() []api.StateBody {
	ctx, cancel := context.WithCancel(ctx)
	var mu sync.Mutex
	var seen []api.StateBody
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			var b api.StateBody
			if _, err := n.GetJSON(ctx, api.PathState, &b); err == nil {
				mu.Lock()
				if len(seen) == 0 || !seen[len(seen)-1].CheckedAt.Equal(b.CheckedAt) {
					seen = append(seen, b)
				}
				mu.Unlock()
			}
			time.Sleep(10 * time.Millisecond) // the watcher's pace, not a wait
		}
	}()
	return func() []api.StateBody {
		cancel()
		<-done
		return seen
	}
}

// TestStoppedPostmasterNoticed: with only the postmaster stopped (SIGSTOP),
// running backends, the pooled connection among them, go on, and only new
// connections hang. The probe connects anew every few seconds, so the
// primary is reported Down within a few seconds, and Primary again once the
// postmaster runs.
func TestStoppedPostmasterNoticed(t *testing.T) {
	t.Parallel()
	c := startCluster(t, threeNodes("dc1"), nil)
	n1 := c.Node("node1")
	waitSettled(t, c)
	pid := n1.PostmasterPID()
	pm, err := os.FindProcess(pid)
	if err != nil || pid == 0 {
		t.Fatalf("postmaster of node1: pid %d, %v", pid, err)
	}
	t.Cleanup(func() { _ = pm.Signal(syscall.SIGCONT) }) // before the cluster stops
	if err := pm.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	took := waitState(t, n1, api.StateDown, settle)
	if took > 6*time.Second {
		t.Errorf("a stopped postmaster was noticed after %s, want within a few seconds", took)
	}
	t.Logf("postmaster stopped: node1 Down %s later", time.Since(stopped).Round(time.Millisecond))
	if err := pm.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	waitState(t, n1, api.StatePrimary, settle)
}

// TestNewPrimaryConfirmedSoonAfterItsMajority measures, on a real repmgr
// failover, how soon the new primary answers 200: from repmgr recording the
// promotion, and from the moment a majority really follows it and the old
// primary's leases have run out.
func TestNewPrimaryConfirmedSoonAfterItsMajority(t *testing.T) {
	t.Parallel()
	c := startCluster(t, threeNodes("dc1"), nil)
	ctx := context.Background()
	n1, n2, n3 := c.Node("node1"), c.Node("node2"), c.Node("node3")
	waitSettled(t, c)
	poller := watchStates(t, c)

	if err := n1.StopPG(ctx, "immediate"); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	// node1's pgquorum polls no more once its database is down: the last
	// leases it holds run out one lease (cache_ttl 1 s + 10%) after, and
	// the voters pass to another node only consensus.router_hold later
	// (the lab leaves it at the default profile's 2.5 s).
	leasesOut := killed.Add(1100*time.Millisecond + 2500*time.Millisecond)
	if err := n2.Promote(ctx); err != nil {
		t.Fatal(err)
	}
	promoted := time.Now() // repmgr has recorded the promotion when it returns
	wctx, stop := context.WithTimeout(ctx, 2*settle)
	defer stop()
	streaming := watchFirst(wctx, func(ctx context.Context) bool {
		ok, _ := n3.StreamsFrom(ctx, n2)
		return ok
	})
	if err := n3.Follow(ctx); err != nil {
		t.Fatal(err)
	}
	followed := time.Now()
	majority := <-streaming
	if majority.IsZero() {
		t.Fatal("node3 never streamed from node2")
	}
	waitState(t, n2, api.StatePrimary, settle)
	first := waitPolledPrimary(t, poller, "node2", killed, settle)
	ready := majority
	if leasesOut.After(ready) {
		ready = leasesOut
	}
	t.Logf("node2's first 200: %s after repmgr recorded its promotion, %s after follow returned, "+
		"%s after node3 streamed from it with node1's leases and the router hold run out (promote took %s, follow %s)",
		first.Sub(promoted).Round(time.Millisecond), first.Sub(followed).Round(time.Millisecond),
		first.Sub(ready).Round(time.Millisecond), promoted.Sub(killed).Round(time.Millisecond), followed.Sub(promoted).Round(time.Millisecond))
	if d := first.Sub(ready); d > time.Second {
		t.Errorf("node2 answered 200 %s after its majority followed it: the verdict waits for the next refresh", d)
	}
}

// failureSample keeps the first few failures of a load loop, with when
// they happened, so that a failed assertion says what failed.
type failureSample struct {
	mu    sync.Mutex
	first []string
}

func (f *failureSample) add(at time.Duration, what string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.first) < 5 {
		f.first = append(f.first, fmt.Sprintf("at %s: %s", at.Round(time.Millisecond), strings.TrimSpace(what)))
	}
}

func (f *failureSample) String() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.first, "; ")
}
