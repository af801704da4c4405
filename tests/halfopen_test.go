package tests

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/internal/lab"
)

// Figures of the half-open connection test (issue 9): 10,000 connections
// that send nothing or half a header must leave /state answering a new
// client within 50 ms at the 99th percentile, and the daemon's memory must
// come back down once they are gone.
const (
	halfOpenConns   = 10000
	halfOpenClients = 200                   // new clients timed during the flood
	halfOpenP99     = 50 * time.Millisecond // bound of their 99th percentile
	// churnEvery: during the timing a flooder replaces its oldest
	// connection with a new half-open one this often, so the daemon is
	// under a steady flood, not only a standing crowd.
	churnEvery = 500 * time.Microsecond
	// rssSlack is how far above its level before the flood the daemon's
	// RSS may stay once the flood is gone: the Go runtime returns freed
	// pages to the OS gradually, and keeps some for the next allocations.
	rssSlack = 8 << 20
)

// TestHalfOpenFloodLeavesChecksFast floods a real pgquorum's check port with
// half-open connections and times /state for new clients meanwhile. The
// daemon is the shipped build, without the race detector (see shippedBin),
// whose memory and latency are the ones that matter.
func TestHalfOpenFloodLeavesChecksFast(t *testing.T) {
	raiseFileLimit(t, halfOpenConns+1000) // before the daemon starts: it inherits the limit
	c := startClusterWith(t, lab.Options{Nodes: []lab.NodeSpec{{Name: "node1", Location: "dc1"}}, Pgquorum: shippedBin(t)})
	n1 := c.Node("node1")
	waitState(t, n1, api.StatePrimary, settle)
	pid := n1.QuorumPID()
	addr := strings.TrimPrefix(n1.QuorumURL(), "http://")

	// Before: the daemon warmed up by the same requests as the timing.
	base := timeChecks(t, n1, halfOpenClients)
	rssBefore := vmRSS(t, pid)

	flood := openHalfOpen(t, addr, halfOpenConns)
	defer flood.closeAll()
	rssOpen := vmRSS(t, pid)
	stopChurn := flood.churn(addr, churnEvery)
	during := timeChecks(t, n1, halfOpenClients)
	churned := stopChurn()
	rssDuring := vmRSS(t, pid)
	metricsDuring := scrape(t, n1, "pgquorum_http_connections", "pgquorum_http_connections_closed_total")

	flood.closeAll()
	rssAfter, settled := waitRSS(pid, rssBefore+rssSlack, 30*time.Second)
	metricsAfter := scrape(t, n1, "pgquorum_http_connections", "go_goroutines")

	t.Logf("/state for %d new clients, each on a new connection: before the flood p50 %s p99 %s max %s; "+
		"with %d half-open connections and %d more replacing them: p50 %s p99 %s max %s",
		halfOpenClients, base.p(50), base.p(99), base.p(100), halfOpenConns, churned, during.p(50), during.p(99), during.p(100))
	t.Logf("daemon VmRSS: before %s, with the flood open %s, after the timing %s, %s after the flood closed (peak VmHWM %s)",
		mib(rssBefore), mib(rssOpen), mib(rssDuring), mib(rssAfter), mib(vmStatus(t, pid, "VmHWM")))
	t.Logf("daemon metrics during the flood %v, after %v", metricsDuring, metricsAfter)

	if during.failed > 0 || base.failed > 0 {
		t.Errorf("%d checks failed before the flood and %d during it, want none", base.failed, during.failed)
	}
	if p99 := during.p(99); p99 >= halfOpenP99 {
		t.Errorf("/state p99 %s during the flood, want under %s", p99, halfOpenP99)
	}
	if !settled {
		t.Errorf("daemon RSS %s 30 s after the flood, want at most %s (before %s + %s)",
			mib(rssAfter), mib(rssBefore+rssSlack), mib(rssBefore), mib(rssSlack))
	}
}

// raiseFileLimit makes the test process (and so the daemons it starts,
// which inherit it) able to hold need descriptors: the soft limit up to the
// hard one, and the hard one too where the process may (root outside a
// container that withholds CAP_SYS_RESOURCE).
func raiseFileLimit(t *testing.T, need uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Max < need {
		raised := syscall.Rlimit{Cur: need, Max: need}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err != nil {
			t.Fatalf("RLIMIT_NOFILE hard limit %d, this test needs %d, and raising it failed: %v", lim.Max, need, err)
		}
		return
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatalf("raise RLIMIT_NOFILE to %d: %v", lim.Max, err)
	}
}

// checkTimes are the latencies of a series of /state requests.
type checkTimes struct {
	took   []time.Duration // sorted
	failed int             // errors and answers other than 200
}

// p is the q-th percentile (nearest rank); p(100) is the maximum.
func (c checkTimes) p(q int) time.Duration {
	if len(c.took) == 0 {
		return 0
	}
	i := (q*len(c.took)+99)/100 - 1
	return c.took[min(max(i, 0), len(c.took)-1)].Round(10 * time.Microsecond)
}

// timeChecks asks n's /state n times, one after the other, each time from a
// new client on a new connection, as HAProxy's checks do.
func timeChecks(t *testing.T, n *lab.Node, count int) checkTimes {
	t.Helper()
	var res checkTimes
	for range count {
		tr := &http.Transport{DisableKeepAlives: true}
		client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
		start := time.Now()
		resp, err := client.Get(n.QuorumURL() + api.PathState)
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		res.took = append(res.took, time.Since(start))
		if err != nil || resp.StatusCode != http.StatusOK {
			res.failed++
		}
		tr.CloseIdleConnections()
	}
	slices.Sort(res.took)
	return res
}

// halfOpen holds the flood's connections, oldest first.
type halfOpen struct {
	mu    sync.Mutex
	conns []net.Conn
}

// openHalfOpen opens count connections to addr, 32 at a time: even ones
// send nothing, odd ones the start of a request header that never ends.
func openHalfOpen(t *testing.T, addr string, count int) *halfOpen {
	t.Helper()
	h := &halfOpen{}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	next := make(chan int)
	errs := make(chan error, 32)
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := h.open(ctx, addr, i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	sent := 0
	for ; sent < count && len(errs) == 0; sent++ {
		next <- sent
	}
	close(next)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("half-open connection %d of %d: %v", sent, count, <-errs)
	}
	return h
}

func (h *halfOpen) open(ctx context.Context, addr string, i int) error {
	var d net.Dialer
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	if i%2 == 1 {
		_, _ = fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nX-Half: ", api.PathState, addr)
	}
	h.mu.Lock()
	h.conns = append(h.conns, c)
	h.mu.Unlock()
	return nil
}

// churn opens a new half-open connection every period and closes the
// oldest, until the returned function is called; that returns how many it
// opened. It stops by itself after a minute.
func (h *halfOpen) churn(addr string, period time.Duration) func() int {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	done := make(chan int)
	go func() {
		opened := 0
		tick := time.NewTicker(period)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				done <- opened
				return
			case <-tick.C:
			}
			if h.open(ctx, addr, opened) != nil {
				continue // the context ended, or a dial failed: try again at the next tick
			}
			opened++
			h.mu.Lock()
			oldest := h.conns[0]
			h.conns = h.conns[1:]
			h.mu.Unlock()
			oldest.Close()
		}
	}()
	return func() int {
		cancel()
		return <-done
	}
}

func (h *halfOpen) closeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.conns {
		c.Close()
	}
	h.conns = nil
}

// vmRSS is pid's resident memory, in bytes.
func vmRSS(t *testing.T, pid int) int64 { return vmStatus(t, pid, "VmRSS") }

// vmStatus reads a kB field of /proc/<pid>/status, in bytes.
func vmStatus(t *testing.T, pid int, field string) int64 {
	t.Helper()
	n, err := readVmStatus(pid, field)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func readVmStatus(pid int, field string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer func() { _ = f.Close() }() // only read
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no %s", pid, field)
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// scrape reads the named unlabelled metrics of n's /metrics.
func scrape(t *testing.T, n *lab.Node, names ...string) map[string]string {
	t.Helper()
	_, body, err := metricsText(context.Background(), n)
	if err != nil {
		t.Fatalf("scrape %s: %v", n.Name, err)
	}
	out := map[string]string{}
	for _, line := range strings.Split(body, "\n") {
		name, value, ok := strings.Cut(line, " ")
		if ok && slices.Contains(names, name) {
			out[name] = value
		}
	}
	return out
}
