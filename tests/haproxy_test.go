package tests

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/internal/lab"
)

// Fast HAProxy timings for the lab: a server changes state within
// fall × inter = 600 ms of its first changed answer.
const (
	hapInter = 300 * time.Millisecond
	hapFall  = 2
	hapRise  = 1
	hapWait  = 10 * time.Second // bound on any HAProxy state change here
)

// labHAProxy is HAProxy in front of a lab cluster.
type labHAProxy struct {
	*lab.HAProxy
	rw, ro int // listener ports
}

// listenArgs gives the listeners free loopback ports.
func listenArgs(t *testing.T) (args []string, rw, ro int) {
	t.Helper()
	ports := make([]int, 3)
	for i := range ports {
		p, err := lab.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = p
	}
	addr := func(p int) string { return "127.0.0.1:" + strconv.Itoa(p) }
	return []string{"--rw-listen", addr(ports[0]), "--ro-listen", addr(ports[1]), "--stats-listen", addr(ports[2]),
		"--inter", hapInter.String(), "--fall", strconv.Itoa(hapFall), "--rise", strconv.Itoa(hapRise)}, ports[0], ports[1]
}

// startHAProxyFromRepmgr renders haproxy.cfg with the real CLI from node1's
// repmgr.nodes (every lab pgquorum has its own port, given by
// --node-check-port), starts HAProxy on it and stops it after the test.
func startHAProxyFromRepmgr(t *testing.T, c *lab.Cluster, extra ...string) *labHAProxy {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h, l, err := c.StartHAProxyFromRepmgr(ctx, pgquorumBin, lab.HAProxyTimings{Inter: hapInter, Fall: hapFall, Rise: hapRise}, extra...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Stop)
	t.Logf("haproxy pid %d: read-write on %d, read-only on %d", h.PID(), l.RW, l.RO)
	return &labHAProxy{HAProxy: h, rw: l.RW, ro: l.RO}
}

func startHAProxy(t *testing.T, c *lab.Cluster, cfg string, rw, ro int) *labHAProxy {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h, err := c.StartHAProxy(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Stop)
	t.Logf("haproxy pid %d: read-write on %d, read-only on %d", h.PID(), rw, ro)
	return &labHAProxy{HAProxy: h, rw: rw, ro: ro}
}

// connect opens a session through an HAProxy listener. sslmode=disable
// makes it one TCP connection: with libpq's default "prefer", pgx opens a
// second connection after the server refuses TLS, and HAProxy balances that
// one elsewhere.
func connect(ctx context.Context, port int) (*pgx.Conn, error) {
	return pgx.Connect(ctx, fmt.Sprintf("host=127.0.0.1 port=%d user=repmgr dbname=repmgr sslmode=disable connect_timeout=2", port))
}

// throughPort runs sql (returning one integer) on a new session through an
// HAProxy listener. All nodes run on 127.0.0.1, so inet_server_port() tells
// which node the session reached.
func throughPort(ctx context.Context, port int, sql string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := connect(ctx, port)
	if err != nil {
		return 0, err
	}
	defer conn.Close(ctx)
	var v int
	err = conn.QueryRow(ctx, sql).Scan(&v)
	return v, err
}

const (
	writeSQL = "INSERT INTO haproxy_writes(port) VALUES (inet_server_port()) RETURNING port"
	readSQL  = "SELECT inet_server_port()"
)

// assertAllLandOn makes n sessions through port and fails unless every one
// reached a node of want (PostgreSQL ports); it returns how many reached each.
func assertAllLandOn(t *testing.T, port, n int, sql string, want ...*lab.Node) map[string]int {
	t.Helper()
	byPort := map[int]string{}
	for _, node := range want {
		byPort[node.PGPort] = node.Name
	}
	seen := map[string]int{}
	for i := 0; i < n; i++ {
		got, err := throughPort(context.Background(), port, sql)
		if err != nil {
			t.Fatalf("session %d through port %d: %v", i, port, err)
		}
		name, ok := byPort[got]
		if !ok {
			t.Fatalf("session %d through port %d reached PostgreSQL port %d, want one of %v", i, port, got, byPort)
		}
		seen[name]++
	}
	return seen
}

func TestHAProxyFollowsTheQuorumPrimary(t *testing.T) {
	t.Parallel()
	c := startCluster(t, threeNodes("dc1"), nil)
	ctx := context.Background()
	n1, n2, n3 := c.Node("node1"), c.Node("node2"), c.Node("node3")
	waitSettled(t, c)
	if err := n1.Exec(ctx, "CREATE TABLE haproxy_writes(id serial PRIMARY KEY, port int)"); err != nil {
		t.Fatal(err)
	}
	h := startHAProxyFromRepmgr(t, c)
	took := h.waitStatus(t, map[string]string{
		"postgres_rw/node1": "UP", "postgres_rw/node2": "DOWN", "postgres_rw/node3": "DOWN",
		"postgres_ro/node1": "DOWN", "postgres_ro/node2": "UP", "postgres_ro/node3": "UP",
	})
	t.Logf("haproxy marked every server within %s of starting", took.Round(time.Millisecond))

	t.Run("writes land on the primary, reads on both standbys only", func(t *testing.T) {
		assertAllLandOn(t, h.rw, 10, writeSQL, n1)
		seen := assertAllLandOn(t, h.ro, 10, readSQL, n2, n3)
		if seen["node2"] == 0 || seen["node3"] == 0 {
			t.Fatalf("reads were not balanced over both standbys: %v", seen)
		}
	})
	t.Run("a primary that loses its majority has its sessions cut", func(t *testing.T) {
		quorumLossCutsSessions(t, c, h)
	})
	t.Run("after failover writes go to the new primary and none to the old one", func(t *testing.T) {
		failoverMovesWrites(t, c, h)
	})
}

// quorumLossCutsSessions holds a session on node1 through the read-write
// listener and takes node1's majority away (node2's and node3's pgquorum
// stop): node1 answers 509, HAProxy marks it DOWN and
// on-marked-down shutdown-sessions cuts the session, PostgreSQL still up.
func quorumLossCutsSessions(t *testing.T, c *lab.Cluster, h *labHAProxy) {
	ctx := context.Background()
	n1, n2, n3 := c.Node("node1"), c.Node("node2"), c.Node("node3")
	held, err := connect(ctx, h.rw)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close(ctx)
	var port int
	if err := held.QueryRow(ctx, readSQL).Scan(&port); err != nil || port != n1.PGPort {
		t.Fatalf("held session reached port %d (%v), want node1's %d", port, err, n1.PGPort)
	}
	stopQuorum(t, n2)
	stopQuorum(t, n3)
	waitState(t, n1, api.StateUnknown, settle)
	unknownAt := time.Now()
	h.waitStatus(t, map[string]string{"postgres_rw/node1": "DOWN"})
	t.Logf("haproxy marked node1 DOWN on the read-write listener %s after it answered 509", time.Since(unknownAt).Round(time.Millisecond))
	err = lab.WaitFor(ctx, hapWait, "the held session to be cut", func(ctx context.Context) error {
		if _, err := held.Exec(ctx, "SELECT 1"); err == nil {
			return fmt.Errorf("the session through HAProxy still runs queries on node1")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := throughPort(ctx, h.rw, writeSQL); err == nil {
		t.Fatal("a new session through the read-write listener succeeded with no primary holding a majority")
	}
	for _, n := range []*lab.Node{n2, n3} {
		if err := n.StartQuorum(); err != nil {
			t.Fatal(err)
		}
	}
	h.waitStatus(t, map[string]string{"postgres_rw/node1": "UP", "postgres_ro/node2": "UP", "postgres_ro/node3": "UP"})
}

// failoverMovesWrites kills node1, promotes node2, makes node3 follow, and
// measures how long writes through HAProxy take to reach node2. Then node1
// comes back on its old timeline, answers 509, and must get no session.
func failoverMovesWrites(t *testing.T, c *lab.Cluster, h *labHAProxy) {
	ctx := context.Background()
	n1, n2, n3 := c.Node("node1"), c.Node("node2"), c.Node("node3")
	if err := n1.StopPG(ctx, "immediate"); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	h.waitStatus(t, map[string]string{"postgres_rw/node1": "DOWN"})
	// Watch, from before the promote, for node2's first 200 and for the
	// first write through HAProxy that reaches it.
	wctx, stopWatch := context.WithTimeout(ctx, 2*settle)
	defer stopWatch()
	first200 := watchFirst(wctx, func(ctx context.Context) bool {
		status, _, err := n2.Get(ctx, api.PathState)
		return err == nil && status == 200
	})
	firstWrite := watchFirst(wctx, func(ctx context.Context) bool {
		port, err := throughPort(ctx, h.rw, writeSQL)
		return err == nil && port == n2.PGPort
	})
	promoteStart := time.Now()
	if err := n2.Promote(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n3.Follow(ctx); err != nil {
		t.Fatal(err)
	}
	followed := time.Now()
	at200, atWrite := <-first200, <-firstWrite
	if at200.IsZero() || atWrite.IsZero() {
		t.Fatalf("within %s: node2 answered 200 at %v, a write reached it at %v", 2*settle, at200, atWrite)
	}
	t.Logf("after node1 stopped: promote started %s later, node2 answered 200 %s after the promote started, "+
		"follow returned %s after it, and the first write through HAProxy reached node2 %s after node2's first 200 "+
		"(%s after node1 stopped)", promoteStart.Sub(killed).Round(time.Millisecond), at200.Sub(promoteStart).Round(time.Millisecond),
		followed.Sub(promoteStart).Round(time.Millisecond), atWrite.Sub(at200).Round(time.Millisecond), atWrite.Sub(killed).Round(time.Millisecond))
	h.waitStatus(t, map[string]string{"postgres_ro/node2": "DOWN", "postgres_ro/node3": "UP"})
	assertAllLandOn(t, h.rw, 10, writeSQL, n2)
	assertAllLandOn(t, h.ro, 5, readSQL, n3)

	// The old primary returns, still its own active primary in its metadata.
	if err := n1.StartPG(ctx); err != nil {
		t.Fatal(err)
	}
	waitState(t, n1, api.StateUnknown, settle)
	err := h.WaitServer(ctx, "postgres_rw", "node1", hapWait, "to have checked node1's 509", func(s lab.ServerStat) error {
		if s.CheckCode != api.StatusUnknown || s.Status != "DOWN" {
			return fmt.Errorf("status %q, last check %s %d", s.Status, s.CheckStatus, s.CheckCode)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	before := sessionsTo(t, h, "postgres_rw/node1")
	assertAllLandOn(t, h.rw, 10, writeSQL, n2)
	if after := sessionsTo(t, h, "postgres_rw/node1"); after != before {
		t.Fatalf("haproxy sent %d sessions to the returned old primary", after-before)
	}
}

// watchFirst runs cond every 20 ms and sends the time it first holds, or
// the zero time when ctx ends first.
func watchFirst(ctx context.Context, cond func(context.Context) bool) <-chan time.Time {
	ch := make(chan time.Time, 1)
	go func() {
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			if cond(ctx) {
				ch <- time.Now()
				return
			}
			select {
			case <-ctx.Done():
				ch <- time.Time{}
				return
			case <-t.C:
			}
		}
	}()
	return ch
}

func sessionsTo(t *testing.T, h *labHAProxy, key string) int {
	t.Helper()
	stats, err := h.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return stats[key].TotalSessions
}
