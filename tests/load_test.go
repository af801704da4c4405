package tests

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/api"
)

// nodesScans counts the scans of repmgr.nodes on a node: each pgquorum probe
// reads it exactly once, and nothing else reads it in these tests.
const nodesScans = `SELECT coalesce(seq_scan, 0) + coalesce(idx_scan, 0)
                      FROM pg_stat_user_tables WHERE relid = 'repmgr.nodes'::regclass`

// TestConcurrentChecksCostOneProbePerRefresh hammers the primary's /state with
// 200 concurrent clients and counts, in PostgreSQL's own statistics, how often
// pgquorum read the database meanwhile.
func TestConcurrentChecksCostOneProbePerRefresh(t *testing.T) {
	t.Parallel()
	c := startCluster(t, threeNodes("dc1"), nil)
	ctx := context.Background()
	n1 := c.Node("node1")
	waitState(t, n1, api.StatePrimary, settle)

	const clients, duration = 200, 4 * time.Second
	before, err := n1.QueryInt(ctx, nodesScans)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var requests atomic.Int64
	var outcomesMu sync.Mutex
	outcomes := map[string]int{} // status code or error: what the non-200s were
	wrong := 0
	note := func(what string) {
		outcomesMu.Lock()
		outcomes[what]++
		wrong++
		outcomesMu.Unlock()
	}
	tr := &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Since(start) < duration {
				resp, err := client.Get(n1.QuorumURL() + api.PathState)
				if err != nil {
					note(err.Error())
					continue
				}
				resp.Body.Close()
				requests.Add(1)
				if resp.StatusCode != 200 {
					note(resp.Status)
				}
			}
		}()
	}
	wg.Wait()
	loadTime := time.Since(start)
	// PostgreSQL flushes a backend's table statistics at most once a second:
	// wait for a flush after the load (pgquorum probes on at every refresh),
	// and count a second more in the allowance too.
	atEnd, err := n1.QueryInt(ctx, nodesScans)
	if err != nil {
		t.Fatal(err)
	}
	waitStatsFlushed(t, n1, nodesScans, atEnd, nil)
	after, err := n1.QueryInt(ctx, nodesScans)
	if err != nil {
		t.Fatal(err)
	}
	window := time.Since(start) + time.Second
	probes := after - before
	allowed := int64(window/refresh) + 2
	t.Logf("%d requests from %d clients in %s (%.0f req/s), %d non-200; repmgr.nodes scanned %d times in a %s window (refresh %s allows %d)",
		requests.Load(), clients, loadTime.Round(time.Millisecond), float64(requests.Load())/loadTime.Seconds(),
		wrong, probes, window.Round(time.Millisecond), refresh, allowed)
	if wrong != 0 {
		t.Errorf("%d requests failed or answered other than 200: %v", wrong, outcomes)
	}
	if probes > allowed {
		t.Errorf("%d probes of the database during the load, refresh interval allows at most %d", probes, allowed)
	}
	if probes < int64(loadTime/refresh)/2 {
		t.Errorf("only %d scans counted: the statistics are not measuring pgquorum's probes", probes)
	}
	if requests.Load() < 10*allowed {
		t.Errorf("only %d requests served: the load did not exercise the cache", requests.Load())
	}
}
