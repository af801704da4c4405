package lab

import (
	"bufio"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// FreePort returns an unused loopback port, for listeners a test adds to a
// cluster (HAProxy's, a pgquorum agent's).
func FreePort() (int, error) { return freePort() }

// HAProxyPaths returns where StartHAProxy writes haproxy.cfg and the admin
// socket path that config must declare ("stats socket … level admin") for
// the HAProxy helpers to work. Their directory is created here, so a test
// may render into it first.
func (c *Cluster) HAProxyPaths() (config, socket string) {
	_ = os.MkdirAll(c.path("haproxy"), 0o755) // StartHAProxy reports a failure
	return c.path("haproxy", "haproxy.cfg"), c.path("haproxy", "admin.sock")
}

// HAProxy is a running haproxy process, a child of the test.
type HAProxy struct {
	Config string
	Socket string
	cmd    *exec.Cmd
	done   chan struct{}
	once   sync.Once
}

// StartHAProxy checks cfg with "haproxy -c", runs "haproxy -f cfg -db" in the
// foreground with its output in the cluster's log, and waits until its admin
// socket answers. Stop it with Stop; Close stops it too.
func (c *Cluster) StartHAProxy(ctx context.Context, cfg string) (*HAProxy, error) {
	path, socket := c.HAProxyPaths()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("lab: haproxy dir: %w", err)
	}
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		return nil, fmt.Errorf("lab: write haproxy.cfg: %w", err)
	}
	if out, err := exec.CommandContext(ctx, "haproxy", "-c", "-f", path).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("lab: haproxy -c: %w\n%s", err, out)
	}
	cmd := exec.Command("haproxy", "-f", path, "-db")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("lab: start haproxy: %w", err)
	}
	h := &HAProxy{Config: path, Socket: socket, cmd: cmd, done: make(chan struct{})}
	c.mu.Lock()
	c.haproxies = append(c.haproxies, h) // Close stops it if the caller does not
	c.mu.Unlock()
	go func() {
		c.logOutput("haproxy", out)
		_ = cmd.Wait()
		close(h.done)
	}()
	err = WaitFor(ctx, 10*time.Second, "haproxy admin socket", func(ctx context.Context) error {
		select {
		case <-h.done:
			return fmt.Errorf("haproxy exited: %v", cmd.ProcessState)
		default:
		}
		_, err := h.Command(ctx, "show info")
		return err
	})
	if err != nil {
		h.Stop()
		return nil, err
	}
	return h, nil
}

// logOutput copies r's lines into the cluster's log, then drains what a
// too-long line left so the process never blocks on a full pipe.
func (c *Cluster) logOutput(what string, r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		c.opts.Logf("%s: %s", what, sc.Text())
	}
	_, _ = io.Copy(io.Discard, r)
}

// RestartQuorumWith restarts n's pgquorum with extra config keys on top of
// the cluster's, for this start only: how a test gives one node its own
// server.agent_listen port.
func (n *Node) RestartQuorumWith(extra map[string]string) error {
	if err := n.StopQuorum(); err != nil {
		return err
	}
	base := n.c.opts.Quorum
	merged := maps.Clone(base)
	if merged == nil {
		merged = map[string]string{}
	}
	maps.Copy(merged, extra)
	n.c.opts.Quorum = merged
	defer func() { n.c.opts.Quorum = base }()
	return n.StartQuorum()
}

// PID is the haproxy process's PID.
func (h *HAProxy) PID() int { return h.cmd.Process.Pid }

// Stop ends haproxy with SIGTERM (its immediate stop), SIGKILL after 5 s.
// It may be called more than once.
func (h *HAProxy) Stop() {
	h.once.Do(func() {
		_ = h.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-h.done:
		case <-time.After(5 * time.Second):
			_ = h.cmd.Process.Kill()
			<-h.done
		}
	})
}

// Command runs one command on the admin socket and returns its output.
func (h *HAProxy) Command(ctx context.Context, command string) (string, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", h.Socket)
	if err != nil {
		return "", fmt.Errorf("haproxy socket: %w", err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if _, err := io.WriteString(conn, command+"\n"); err != nil {
		return "", fmt.Errorf("haproxy socket: %w", err)
	}
	b, err := io.ReadAll(io.LimitReader(conn, 1<<20)) // haproxy closes after one answer
	if err != nil {
		return "", fmt.Errorf("haproxy socket: %s: %w", command, err)
	}
	return string(b), nil
}

// ServerStat is a server's row of "show stat".
type ServerStat struct {
	Proxy, Server string
	Status        string // UP, DOWN, DRAIN (agent), MAINT, "UP 1/2" while changing…
	Weight        int
	CheckStatus   string // L7OK, L7STS…
	CheckCode     int    // the HTTP status of the last check
	LastAgent     string // the agent's last reply as haproxy saw it
	Sessions      int    // current sessions
	TotalSessions int
}

// Stats returns every server's row of "show stat", keyed "proxy/server".
func (h *HAProxy) Stats(ctx context.Context) (map[string]ServerStat, error) {
	out, err := h.Command(ctx, "show stat")
	if err != nil {
		return nil, err
	}
	rows, err := csv.NewReader(strings.NewReader(strings.TrimPrefix(out, "# "))).ReadAll()
	if err != nil || len(rows) < 1 {
		return nil, fmt.Errorf("haproxy: parse show stat: %v: %q", err, out)
	}
	col := map[string]int{}
	for i, name := range rows[0] {
		col[name] = i
	}
	get := func(r []string, name string) string {
		if i, ok := col[name]; ok && i < len(r) {
			return r[i]
		}
		return ""
	}
	atoi := func(s string) int { n, _ := strconv.Atoi(s); return n }
	stats := map[string]ServerStat{}
	for _, r := range rows[1:] {
		if sv := get(r, "svname"); sv != "" && sv != "FRONTEND" && sv != "BACKEND" {
			s := ServerStat{Proxy: get(r, "pxname"), Server: sv, Status: get(r, "status"), Weight: atoi(get(r, "weight")),
				CheckStatus: get(r, "check_status"), CheckCode: atoi(get(r, "check_code")), LastAgent: get(r, "last_agt"),
				Sessions: atoi(get(r, "scur")), TotalSessions: atoi(get(r, "stot"))}
			stats[s.Proxy+"/"+s.Server] = s
		}
	}
	return stats, nil
}

// WaitServer waits until cond holds for proxy/server's stats. On timeout it
// reports cond's last complaint, not the socket error the deadline caused.
func (h *HAProxy) WaitServer(ctx context.Context, proxy, server string, timeout time.Duration, what string, cond func(ServerStat) error) error {
	var last error
	return WaitFor(ctx, timeout, fmt.Sprintf("haproxy %s/%s %s", proxy, server, what), func(ctx context.Context) error {
		stats, err := h.Stats(ctx)
		if err != nil {
			if ctx.Err() != nil && last != nil {
				return last
			}
			return err
		}
		s, ok := stats[proxy+"/"+server]
		if !ok {
			return fmt.Errorf("no server %s/%s in show stat", proxy, server)
		}
		last = cond(s)
		return last
	})
}

// WaitStatus waits until proxy/server shows status (UP, DOWN, DRAIN, MAINT),
// with or without the source HAProxy adds in parentheses: "DOWN" matches
// "DOWN (agent)", but not the transitional "DOWN 1/2".
func (h *HAProxy) WaitStatus(ctx context.Context, proxy, server, status string, timeout time.Duration) error {
	return h.WaitServer(ctx, proxy, server, timeout, "to be "+status, func(s ServerStat) error {
		if s.Status != status && !strings.HasPrefix(s.Status, status+" (") {
			return fmt.Errorf("status %q (check %s %d, agent %q)", s.Status, s.CheckStatus, s.CheckCode, s.LastAgent)
		}
		return nil
	})
}

// HAProxyTimings are the health-check settings given to
// "pgquorum haproxy-config": --inter, --fall, --rise.
type HAProxyTimings struct {
	Inter      time.Duration
	Fall, Rise int
}

// Listeners are the ports of a started HAProxy's listeners.
type Listeners struct {
	RW, RO, Stats int
}

// StartHAProxyFromRepmgr renders haproxy.cfg with the real pgquorum CLI
// (binary bin) from the first node's repmgr.nodes, every node checked at its
// own pgquorum port, with free loopback ports for the listeners, and extra
// arguments of haproxy-config; starts HAProxy on it (Close stops it) and
// returns it with its listeners.
func (c *Cluster) StartHAProxyFromRepmgr(ctx context.Context, bin string, t HAProxyTimings, extra ...string) (*HAProxy, Listeners, error) {
	var l Listeners
	for _, p := range []*int{&l.RW, &l.RO, &l.Stats} {
		port, err := freePort()
		if err != nil {
			return nil, l, err
		}
		*p = port
	}
	path, socket := c.HAProxyPaths()
	addr := func(p int) string { return "127.0.0.1:" + strconv.Itoa(p) }
	args := []string{"haproxy-config", "--dsn", c.Nodes[0].Conninfo(), "--stats-socket", socket, "--output", path + ".rendered",
		"--rw-listen", addr(l.RW), "--ro-listen", addr(l.RO), "--stats-listen", addr(l.Stats),
		"--inter", t.Inter.String(), "--fall", strconv.Itoa(t.Fall), "--rise", strconv.Itoa(t.Rise)}
	for _, n := range c.Nodes {
		args = append(args, "--node-check-port", fmt.Sprintf("%s=%d", n.Name, n.QuorumPort))
	}
	args = append(args, extra...)
	if out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput(); err != nil {
		return nil, l, fmt.Errorf("lab: pgquorum haproxy-config: %w\n%s", err, out)
	}
	cfg, err := os.ReadFile(path + ".rendered")
	if err != nil {
		return nil, l, fmt.Errorf("lab: %w", err)
	}
	h, err := c.StartHAProxy(ctx, string(cfg))
	return h, l, err
}
