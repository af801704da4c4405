//go:build soak

package tests

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/internal/lab"
)

// The soak (make soak, not in CI): a three-node cluster under HAProxy-like
// checks from many clients and operators' views, its peers polling each
// other, while node1's PostgreSQL is restarted again and again and node3's
// pgquorum comes and goes. node1 and node2 are measured before and after;
// growth beyond these tolerances fails the run. They allow for what varies
// without leaking: idle keep-alive connections to peers (each with two
// goroutines and a descriptor), and the runtime keeping some memory.
const (
	soakClients        = 48                     // HAProxy-like checkers, each polling every node
	soakCheckEvery     = 100 * time.Millisecond // per checker and node
	soakRestartEvery   = 30 * time.Second       // node1's PostgreSQL: fast or immediate stop, then start
	soakFlapEvery      = 20 * time.Second       // node3's pgquorum: stopped, then started 5 s later
	soakGoroutineSlack = 20
	soakFDSlack        = 10
	soakRSSSlack       = 16 << 20
	soakMaxDBConns     = 3 // database.max_conns: the pool's ceiling, the probe's connection included
)

// soakDuration is SOAK_DURATION (a Go duration), 5 minutes by default.
func soakDuration(t *testing.T) time.Duration {
	s := os.Getenv("SOAK_DURATION")
	if s == "" {
		return 5 * time.Minute
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 || d > time.Hour {
		t.Fatalf("SOAK_DURATION=%q: want a duration up to 1h", s)
	}
	return d
}

// soakFigures are what is measured of one node's pgquorum.
type soakFigures struct {
	goroutines, fds, poolConns, dbConns int
	rss                                 int64
}

func TestSoak(t *testing.T) {
	duration := soakDuration(t)
	c := startCluster(t, threeNodes("dc1"), nil)
	waitSettled(t, c)
	n1, n2, n3 := c.Node("node1"), c.Node("node2"), c.Node("node3")
	watched := []*lab.Node{n1, n2}

	// Warm up under the same load, so that pools and buffers are at their
	// working size when "before" is taken, then measure in a quiet moment.
	warm := startCheckers(c.Nodes, soakClients, soakCheckEvery)
	runFor(20 * time.Second)
	warm.stop()
	for _, n := range watched {
		waitClientsGone(t, n)
	}
	before := measureAll(t, watched)

	load := startCheckers(c.Nodes, soakClients, soakCheckEvery)
	restarts, flaps := runFaults(t, n1, n3, duration)
	load.stop()

	waitSettled(t, c)
	for _, n := range watched { // the checkers' connections, closed by them, are gone
		waitClientsGone(t, n)
	}
	after := measureAll(t, watched)
	for _, n := range watched { // the runtime returns memory gradually: give it time
		f := after[n.Name]
		f.rss, _ = waitRSS(n.QuorumPID(), before[n.Name].rss+soakRSSSlack, 30*time.Second)
		after[n.Name] = f
	}

	checks, failed := load.counts()
	// Printed rather than logged, each line marked, so that scripts/soak.sh
	// can show them apart from the cluster's own logs.
	report := fmt.Sprintf("soak of %s: %d checks by %d clients, %d restarts of node1's PostgreSQL, %d flaps of node3's pgquorum\n"+
		"checks without an answer: node1 %d, node2 %d, node3 %d (its pgquorum is stopped 5 s of every %s)\n",
		duration, checks, soakClients, restarts, flaps, failed[0], failed[1], failed[2], soakFlapEvery)
	report += soakTable(t, watched, before, after)
	for _, line := range strings.Split(strings.TrimSpace(report), "\n") {
		fmt.Println("SOAK| " + line)
	}
	if checks == 0 {
		t.Error("no check was answered during the soak")
	}
	// node1 and node2 run throughout: every check must get an answer (a
	// 503 while node1's database restarts is an answer).
	if failed[0]+failed[1] != 0 {
		t.Errorf("node1 and node2 left %d and %d checks without an answer", failed[0], failed[1])
	}
}

// runFaults restarts n1's PostgreSQL every soakRestartEvery and stops n3's
// pgquorum for 5 s every soakFlapEvery, for duration. It returns the number
// of each.
func runFaults(t *testing.T, n1, n3 *lab.Node, duration time.Duration) (restarts, flaps int) {
	t.Helper()
	ctx := context.Background()
	end := time.Now().Add(duration)
	nextRestart, nextFlap := time.Now().Add(soakRestartEvery/2), time.Now().Add(soakFlapEvery)
	for time.Now().Before(end) {
		switch now := time.Now(); {
		case now.After(nextRestart):
			mode := []string{"fast", "immediate"}[restarts%2]
			if err := n1.StopPG(ctx, mode); err != nil {
				t.Fatalf("restart %d: stop node1 (%s): %v", restarts, mode, err)
			}
			if err := n1.StartPG(ctx); err != nil {
				t.Fatalf("restart %d: start node1: %v", restarts, err)
			}
			restarts++
			nextRestart = now.Add(soakRestartEvery)
		case now.After(nextFlap):
			stopQuorum(t, n3)
			runFor(5 * time.Second) // node3's pgquorum stays down
			if err := n3.StartQuorum(); err != nil {
				t.Fatalf("flap %d: start node3's pgquorum: %v", flaps, err)
			}
			flaps++
			nextFlap = now.Add(soakFlapEvery)
		default:
			runFor(100 * time.Millisecond) // the fault schedule's tick
		}
	}
	return restarts, flaps
}

// checkers poll every node's checks as HAProxy does, a new connection per
// check: half of them "GET /state", the other half "OPTIONS /" (httpchk's
// default) except in two rounds of ten, where they ask /cluster or /events
// as an operator would (mostly answered 429: every checker comes from
// 127.0.0.1).
type checkers struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	checks atomic.Int64
	failed []atomic.Int64 // per node: no HTTP answer at all
}

func startCheckers(nodes []*lab.Node, clients int, every time.Duration) *checkers {
	ctx, cancel := context.WithCancel(context.Background())
	ch := &checkers{cancel: cancel, failed: make([]atomic.Int64, len(nodes))}
	for i := range clients {
		ch.wg.Add(1)
		go func() {
			defer ch.wg.Done()
			tr := &http.Transport{DisableKeepAlives: true}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr, Timeout: 2 * time.Second}
			tick := time.NewTicker(every)
			defer tick.Stop()
			for round := 0; ; round++ {
				for k, n := range nodes {
					method, path := http.MethodOptions, api.PathRoot
					switch {
					case i%2 == 1:
						method, path = http.MethodGet, api.PathState
					case round%10 == 0:
						method, path = http.MethodGet, api.PathCluster
					case round%10 == 5:
						method, path = http.MethodGet, api.PathEvents // through the views' pool
					}
					ch.ask(ctx, client, method, n.QuorumURL()+path, k)
				}
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
			}
		}()
	}
	return ch
}

func (ch *checkers) ask(ctx context.Context, client *http.Client, method, url string, node int) {
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return
	}
	resp, err := client.Do(req)
	if ctx.Err() != nil {
		return
	}
	ch.checks.Add(1)
	if err != nil {
		ch.failed[node].Add(1)
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

func (ch *checkers) stop() {
	ch.cancel()
	ch.wg.Wait()
}

// counts returns the checks asked, and per node those that got no answer.
func (ch *checkers) counts() (checks int64, failed []int64) {
	for i := range ch.failed {
		failed = append(failed, ch.failed[i].Load())
	}
	return ch.checks.Load(), failed
}

func measureAll(t *testing.T, nodes []*lab.Node) map[string]soakFigures {
	t.Helper()
	out := map[string]soakFigures{}
	for _, n := range nodes {
		out[n.Name] = measure(t, n)
	}
	return out
}

// measure reads n's pgquorum: goroutines and pool size from its metrics,
// descriptors and memory from /proc, and its sessions from PostgreSQL.
func measure(t *testing.T, n *lab.Node) soakFigures {
	t.Helper()
	pid := n.QuorumPID()
	m := scrape(t, n, "go_goroutines", "pgquorum_db_pool_connections")
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	db, err := n.QueryInt(context.Background(), "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgquorum'")
	if err != nil {
		t.Fatalf("%s: count pgquorum sessions: %v", n.Name, err)
	}
	atoi := func(s string) int {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			t.Fatalf("%s: metric %q: %v", n.Name, s, err)
		}
		return int(f)
	}
	return soakFigures{goroutines: atoi(m["go_goroutines"]), poolConns: atoi(m["pgquorum_db_pool_connections"]),
		fds: len(fds), dbConns: int(db), rss: vmRSS(t, pid)}
}

// soakTable renders before and after of every node, each row with its
// tolerance, and fails t for each row over it.
func soakTable(t *testing.T, nodes []*lab.Node, before, after map[string]soakFigures) string {
	t.Helper()
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "node\tmeasure\tbefore\tafter\tallowed after\tverdict\t")
	row := func(node, what string, bef, aft, allowed int64, show func(int64) string) {
		verdict := "ok"
		if aft > allowed {
			verdict = "GROWTH"
			t.Errorf("%s: %s grew from %s to %s, allowed %s", node, what, show(bef), show(aft), show(allowed))
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t\n", node, what, show(bef), show(aft), show(allowed), verdict)
	}
	plain := func(v int64) string { return strconv.FormatInt(v, 10) }
	for _, n := range nodes {
		bf, af := before[n.Name], after[n.Name]
		row(n.Name, "goroutines", int64(bf.goroutines), int64(af.goroutines), int64(bf.goroutines+soakGoroutineSlack), plain)
		row(n.Name, "open FDs", int64(bf.fds), int64(af.fds), int64(bf.fds+soakFDSlack), plain)
		row(n.Name, "RSS", bf.rss, af.rss, bf.rss+soakRSSSlack, mib)
		row(n.Name, "pool connections", int64(bf.poolConns), int64(af.poolConns), soakMaxDBConns, plain)
		row(n.Name, "DB sessions (pg_stat_activity)", int64(bf.dbConns), int64(af.dbConns), soakMaxDBConns, plain)
	}
	w.Flush()
	return b.String()
}

// The soak's own wait helpers, beside it because only the soak build tag
// compiles their callers; the others are in wait_test.go.

// runFor lets what runs (a load, a fault, a stopped process) go on for d.
// It is the length of that load or fault, never a wait for something to
// happen: for that, a wait on what can be observed.
func runFor(d time.Duration) { time.Sleep(d) }

// waitClientsGone waits until n's pgquorum has closed every connection of
// its HTTP port that the other end closed (none left in CLOSE_WAIT), so
// that its descriptors and goroutines count no client that has gone.
func waitClientsGone(t *testing.T, n *lab.Node) {
	t.Helper()
	err := lab.WaitFor(context.Background(), settle, n.Name+" to close the connections its clients closed", func(context.Context) error {
		k, err := closeWait(n.QuorumPID(), n.QuorumPort)
		if err == nil && k > 0 {
			err = fmt.Errorf("%d connections in CLOSE_WAIT", k)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// closeWait counts the sockets of local port port in CLOSE_WAIT in pid's
// network namespace.
func closeWait(pid, port int) (int, error) {
	const stateCloseWait = "08"
	k := 0
	for _, table := range []string{"tcp", "tcp6"} {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, table))
		if err != nil {
			return 0, err
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Scan() // the header
		for sc.Scan() {
			f := strings.Fields(sc.Text()) // sl local_address rem_address st ...
			if len(f) < 4 {
				continue
			}
			_, hexPort, _ := strings.Cut(f[1], ":")
			if p, err := strconv.ParseUint(hexPort, 16, 16); err == nil && int(p) == port && f[3] == stateCloseWait {
				k++
			}
		}
	}
	return k, nil
}
