package tests

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/haproxy"
	"github.com/pgquorum/pgquorum/internal/lab"
)

// startAgents gives each node's pgquorum its own agent port and returns the
// servers to render, agent ports included.
func startAgents(t *testing.T, c *lab.Cluster) []haproxy.Server {
	t.Helper()
	var servers []haproxy.Server
	for _, n := range c.Nodes {
		port, err := lab.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		if err := n.RestartQuorumWith(map[string]string{"server.agent_listen": "127.0.0.1:" + strconv.Itoa(port)}); err != nil {
			t.Fatal(err)
		}
		servers = append(servers, haproxy.Server{Name: n.Name, Host: "127.0.0.1", Port: n.PGPort, CheckPort: n.QuorumPort, AgentPort: port})
	}
	return servers
}

func startHAProxyWithAgents(t *testing.T, c *lab.Cluster, servers []haproxy.Server) *labHAProxy {
	t.Helper()
	_, socket := c.HAProxyPaths()
	_, rw, ro := listenArgs(t)
	stats, err := lab.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	opts := haproxy.DefaultOptions()
	opts.RWListen, opts.ROListen = "127.0.0.1:"+strconv.Itoa(rw), "127.0.0.1:"+strconv.Itoa(ro)
	opts.StatsListen, opts.StatsSocket = "127.0.0.1:"+strconv.Itoa(stats), socket
	opts.Inter, opts.Fall, opts.Rise = hapInter, hapFall, hapRise
	cfg, err := haproxy.Render(opts, servers)
	if err != nil {
		t.Fatal(err)
	}
	return startHAProxy(t, c, cfg, rw, ro)
}

// agentCLI runs "pgquorum agent args… --url" against n's pgquorum.
func agentCLI(t *testing.T, n *lab.Node, args ...string) string {
	t.Helper()
	out, err := exec.Command(pgquorumBin, append(append([]string{"agent"}, args...), "--url", n.QuorumURL())...).CombinedOutput()
	if err != nil {
		t.Fatalf("pgquorum agent %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// agentAPI sets n's mode with a PUT on the admin API, as a script would.
func agentAPI(t *testing.T, n *lab.Node, mode string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, n.QuorumURL()+api.PathAgent+"/"+mode, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT %s/%s: %s", api.PathAgent, mode, resp.Status)
	}
}

// sessionOn opens read-only sessions until one reaches n, and returns it.
func sessionOn(t *testing.T, h *labHAProxy, n *lab.Node) *pgx.Conn {
	t.Helper()
	var held *pgx.Conn
	var last error // the deadline's own error says nothing
	err := lab.WaitFor(context.Background(), hapWait, "a read-only session on "+n.Name, func(ctx context.Context) error {
		conn, err := connect(ctx, h.ro)
		if err != nil {
			if ctx.Err() != nil && last != nil {
				return last
			}
			return err
		}
		var port int
		if err := conn.QueryRow(ctx, readSQL).Scan(&port); err != nil || port != n.PGPort {
			conn.Close(ctx)
			last = fmt.Errorf("sessions reach port %d (%v), not %s's %d; read-only servers: %s", port, err, n.Name, n.PGPort, roStats(ctx, h))
			return last
		}
		held = conn
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { held.Close(context.Background()) })
	return held
}

func TestHAProxyAgentDrainsAStandby(t *testing.T) {
	t.Parallel()
	c := startCluster(t, threeNodes("dc1"), nil)
	ctx := context.Background()
	n1, n2, n3 := c.Node("node1"), c.Node("node2"), c.Node("node3")
	servers := startAgents(t, c)
	waitSettled(t, c)
	h := startHAProxyWithAgents(t, c, servers)
	h.waitStatus(t, map[string]string{"postgres_rw/node1": "UP", "postgres_ro/node2": "UP", "postgres_ro/node3": "UP",
		"postgres_rw/node2": "DOWN", "postgres_ro/node1": "DOWN"})
	// The agent is really consulted, with the role of each listener.
	for key, want := range map[string]string{"postgres_ro/node2": "via agent : up (Standby)",
		"postgres_rw/node1": "via agent : up (Primary with 3 votes, 2 needed)", "postgres_rw/node2": "down (Standby, not writable)"} {
		proxy, server, _ := strings.Cut(key, "/")
		err := h.WaitServer(ctx, proxy, server, hapWait, "agent reply "+want, func(s lab.ServerStat) error {
			if !strings.Contains(s.LastAgent, want) {
				return fmt.Errorf("last agent reply %q", s.LastAgent)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}

	t.Run("drain keeps node2's sessions and sends new ones elsewhere", func(t *testing.T) {
		drainStandby(t, h, n1, n2, n3)
	})
	t.Run("maint cuts node2's sessions, ready brings it back", func(t *testing.T) {
		maintStandby(t, h, n2, n3)
	})
	t.Run("a weight percentage reaches haproxy", func(t *testing.T) {
		agentCLI(t, n2, "ready", "--weight", "50")
		err := h.WaitServer(ctx, "postgres_ro", "node2", hapWait, "UP at weight 50", func(s lab.ServerStat) error {
			if s.Status != "UP" || s.Weight != 50 {
				return fmt.Errorf("status %q weight %d", s.Status, s.Weight)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
	t.Run("pgquorum serving an agent port stops cleanly on SIGTERM", func(t *testing.T) {
		for _, n := range c.Nodes {
			stopQuorum(t, n)
		}
	})
}

// drainStandby holds one session on each standby, so that the read-only
// listener's least-connections balance would split new sessions between
// them, then drains node2: its session lives on, and every new session goes
// to node3. Ready gives node2 new sessions again.
func drainStandby(t *testing.T, h *labHAProxy, n1, n2, n3 *lab.Node) {
	ctx := context.Background()
	held2, held3 := sessionOn(t, h, n2), sessionOn(t, h, n3)
	start := time.Now()
	if out := agentCLI(t, n2, "drain"); !strings.Contains(out, "mode: drain") {
		t.Fatalf("pgquorum agent drain printed %q", out)
	}
	h.waitStatus(t, map[string]string{"postgres_ro/node2": "DRAIN"})
	t.Logf("haproxy showed node2 DRAIN %s after pgquorum agent drain", time.Since(start).Round(time.Millisecond))
	if _, err := held2.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatalf("drain cut an existing session: %v", err)
	}
	assertAllLandOn(t, h.ro, 10, readSQL, n3)
	assertAllLandOn(t, h.rw, 3, writeSQLOrCreate(t, n1), n1)
	held2.Close(ctx)
	held3.Close(ctx)

	agentAPI(t, n2, "ready")
	h.waitStatus(t, map[string]string{"postgres_ro/node2": "UP"})
	sessionOn(t, h, n2).Close(ctx)
}

// maintStandby puts node2 in maintenance: HAProxy cuts its session and, with
// no session left anywhere, still sends every new one to node3.
func maintStandby(t *testing.T, h *labHAProxy, n2, n3 *lab.Node) {
	ctx := context.Background()
	held := sessionOn(t, h, n2)
	agentCLI(t, n2, "maint")
	h.waitStatus(t, map[string]string{"postgres_ro/node2": "MAINT"})
	err := lab.WaitFor(ctx, hapWait, "maint to cut node2's session", func(ctx context.Context) error {
		if _, err := held.Exec(ctx, "SELECT 1"); err == nil {
			return fmt.Errorf("the session on node2 still runs queries")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	assertAllLandOn(t, h.ro, 6, readSQL, n3)
	agentCLI(t, n2, "ready")
	h.waitStatus(t, map[string]string{"postgres_ro/node2": "UP"})
	sessionOn(t, h, n2).Close(ctx)
}

// roStats describes the read-only listener's servers, for failure messages.
func roStats(ctx context.Context, h *labHAProxy) string {
	stats, err := h.Stats(ctx)
	if err != nil {
		return err.Error()
	}
	var out []string
	for _, s := range stats {
		if s.Proxy == "postgres_ro" {
			out = append(out, fmt.Sprintf("%s %s weight %d sessions %d/%d", s.Server, s.Status, s.Weight, s.Sessions, s.TotalSessions))
		}
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

// writeSQLOrCreate makes sure the writes table exists on the primary.
func writeSQLOrCreate(t *testing.T, primary *lab.Node) string {
	t.Helper()
	if err := primary.Exec(context.Background(), "CREATE TABLE IF NOT EXISTS haproxy_writes(id serial PRIMARY KEY, port int)"); err != nil {
		t.Fatal(err)
	}
	return writeSQL
}
