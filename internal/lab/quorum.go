package lab

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/client"
	"github.com/pgquorum/pgquorum/repmgr"
)

// Unset, as the value of a key in Options.Quorum, leaves out a key the lab
// sets by default: the key takes pgquorum's own default (its profile's).
const Unset = "\x00unset"

// quorumProc is a running pgquorum process.
type quorumProc struct {
	cmd  *exec.Cmd
	pid  int    // of pgquorum itself: cmd's, or its descendant's with Options.WrapQuorum
	bin  string // with Options.WrapQuorum, the binary that descendant runs
	done chan struct{}
}

// QuorumConfig returns the YAML config the node's pgquorum runs with.
func (n *Node) QuorumConfig() string {
	keys := map[string]string{
		"node.name":                  n.Name,
		"server.listen":              fmt.Sprintf("%s:%d", n.Host, n.QuorumPort),
		"repmgr.config_file":         n.RepmgrConf(),
		"database.dsn":               n.Conninfo(),
		"consensus.refresh_interval": "250ms",
		"consensus.cache_ttl":        "1s",
		"consensus.peer_timeout":     "200ms",
		"database.timeout":           "500ms",
		"consensus.state_dir":        n.StateDir(),
		"log.level":                  "info",
	}
	var peers, raftPeers []string
	for _, p := range n.c.Nodes {
		peers = append(peers, fmt.Sprintf("%s=%s:%d", p.Name, p.Host, p.QuorumPort))
		raftPeers = append(raftPeers, fmt.Sprintf("%s=%s:%d", p.Name, p.Host, p.RaftPort))
	}
	sort.Strings(peers)
	sort.Strings(raftPeers)
	// Every pgquorum has its own ports here; a test may give other
	// addresses, or "" for none (conninfo host and peer_port).
	keys["consensus.peers"] = strings.Join(peers, ",")
	keys["failover.raft_listen"] = fmt.Sprintf("%s:%d", n.Host, n.RaftPort)
	keys["failover.raft_peers"] = strings.Join(raftPeers, ",")
	for _, over := range []map[string]string{n.c.opts.Quorum, n.QuorumKeys} {
		for k, v := range over {
			// {node} stands for the node's name: how one map gives each
			// node its own file, such as its certificate.
			keys[k] = strings.ReplaceAll(v, "{node}", n.Name)
			if v == Unset {
				delete(keys, k)
			}
		}
	}
	var b strings.Builder
	writeYAML(&b, keys)
	return b.String()
}

// writeYAML writes dotted keys as nested YAML sections (consensus.peer_tls.ca
// under consensus: and peer_tls:), every value quoted.
func writeYAML(b *strings.Builder, keys map[string]string) {
	type tree map[string]any
	root := tree{}
	for k, v := range keys {
		parts := strings.Split(k, ".")
		t := root
		for _, p := range parts[:len(parts)-1] {
			sub, ok := t[p].(tree)
			if !ok {
				sub = tree{}
				t[p] = sub
			}
			t = sub
		}
		t[parts[len(parts)-1]] = v
	}
	var write func(t tree, indent string)
	write = func(t tree, indent string) {
		names := make([]string, 0, len(t))
		for n := range t {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			if sub, ok := t[n].(tree); ok {
				fmt.Fprintf(b, "%s%s:\n", indent, n)
				write(sub, indent+"  ")
				continue
			}
			fmt.Fprintf(b, "%s%s: %q\n", indent, n, t[n])
		}
	}
	write(root, "")
}

// StartQuorum starts the node's pgquorum and waits until it answers HTTP.
func (n *Node) StartQuorum() error {
	if n.quorum != nil {
		return fmt.Errorf("lab: %s: pgquorum already running", n.Name)
	}
	cfg := n.QuorumConfigFile()
	if err := os.WriteFile(cfg, []byte(n.QuorumConfig()), 0o644); err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	// pgquorum wants its state_dir to exist and be writable: created
	// here, for every start, since a test may have removed it.
	if err := os.MkdirAll(n.StateDir(), 0o700); err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	if err := n.chown(n.StateDir()); err != nil {
		return err
	}
	bin, err := n.c.quorumBinary()
	if err != nil {
		return err
	}
	cmd, err := n.quorumCmd(bin, "serve", "--config", cfg)
	if err != nil {
		return err
	}
	if wrap := n.c.opts.WrapQuorum; wrap != nil {
		if err := wrap(n, cmd); err != nil {
			return fmt.Errorf("lab: wrap %s pgquorum: %w", n.Name, err)
		}
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("lab: start pgquorum: %w", err)
	}
	p := &quorumProc{cmd: cmd, pid: cmd.Process.Pid, done: make(chan struct{})}
	if n.c.opts.WrapQuorum != nil {
		p.bin = bin
	}
	n.quorum = p
	var logged sync.WaitGroup
	logged.Add(1)
	go func() {
		defer logged.Done()
		n.logLines("pgquorum", out)
	}()
	go func() {
		logged.Wait()
		_ = cmd.Wait()
		close(p.done)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return WaitFor(ctx, 10*time.Second, n.Name+" pgquorum to answer", func(ctx context.Context) error {
		select {
		case <-p.done:
			return fmt.Errorf("pgquorum exited: %v", cmd.ProcessState)
		default:
		}
		if _, _, err := n.Get(ctx, "/liveness"); err != nil {
			return err
		}
		if n.c.opts.WrapQuorum == nil {
			return nil
		}
		// It answers, so it runs: which process is it?
		pid, err := findBinary(cmd.Process.Pid, bin)
		if err == nil {
			p.pid = pid
		}
		return err
	})
}

// QuorumConfigFile is where StartQuorum writes the node's config.
func (n *Node) QuorumConfigFile() string { return filepath.Join(n.Dir, "pgquorum.yaml") }

// quorumCmd is a command of the pgquorum binary bin as the node runs it:
// as its OS user, in its directory, with PATH holding the PostgreSQL tools.
func (n *Node) quorumCmd(bin string, args ...string) (*exec.Cmd, error) {
	cmd := exec.Command(bin, args...)
	// halt_on_error makes a race-detector build stop at the first race, so
	// the test that provoked it fails rather than a later one. PATH has the
	// PostgreSQL tools repmgr runs.
	cmd.Env = []string{"PATH=" + n.c.opts.PGBin + ":/usr/bin:/bin", "GORACE=halt_on_error=1", "LC_ALL=C"}
	if n.owner != nil {
		// As in production (scripts/pgquorum.service), pgquorum runs as
		// the node's PostgreSQL OS user: repmgr and pg_ctl refuse root.
		cred, err := repmgr.Credential(n.owner.Username)
		if err != nil {
			return nil, err
		}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		cmd.Env = append(cmd.Env, "HOME="+n.Dir, "USER="+n.owner.Username)
		cmd.Dir = n.Dir
	}
	return cmd, nil
}

// QuorumCommand runs a one-shot pgquorum command (such as raft-recover)
// as the node's pgquorum runs, bounded by ctx, and returns what it printed.
// The node's config file is QuorumConfigFile, once StartQuorum wrote it.
func (n *Node) QuorumCommand(ctx context.Context, args ...string) (string, error) {
	bin, err := n.c.quorumBinary()
	if err != nil {
		return "", err
	}
	cmd, err := n.quorumCmd(bin, args...)
	if err != nil {
		return "", err
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("lab: %s: pgquorum %s: %w", n.Name, strings.Join(args, " "), err)
	}
	stop := context.AfterFunc(ctx, func() { _ = cmd.Process.Kill() })
	err = cmd.Wait()
	stop()
	if err != nil {
		return out.String(), fmt.Errorf("lab: %s: pgquorum %s: %w: %s", n.Name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

func (n *Node) logLines(what string, r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		n.logMu.Lock()
		if len(n.quorumLog) < maxLogLines {
			n.quorumLog = append(n.quorumLog, sc.Text())
		}
		n.logMu.Unlock()
		n.c.opts.Logf("%s %s: %s", n.Name, what, sc.Text())
	}
}

// quorumBinary is the pgquorum binary the cluster's OS user can run: a copy
// in the cluster's directory when that user is not the caller, whose own
// temporary directories it may not enter.
//
// The copy is written by install(1), not by this process: a child that
// another parallel test forks while this process holds the copy open for
// writing inherits that descriptor until its exec, and starting the copy
// meanwhile fails with ETXTBSY ("text file busy", golang/go#22315).
func (c *Cluster) quorumBinary() (string, error) {
	if c.owner == nil {
		return c.opts.Pgquorum, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	dst := c.path("bin", "pgquorum")
	if _, err := os.Stat(dst); err == nil {
		return dst, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "install", "-D", "-m", "0755", c.opts.Pgquorum, dst).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("lab: copy pgquorum: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return dst, nil
}

// maxLogLines bounds the pgquorum output a node keeps for LogLines.
const maxLogLines = 100000

// LogLines returns the lines of the node's pgquorum output (every process
// started on it) that contain substr.
func (n *Node) LogLines(substr string) []string {
	n.logMu.Lock()
	defer n.logMu.Unlock()
	var out []string
	for _, l := range n.quorumLog {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return out
}

// StopQuorum stops the node's pgquorum with SIGTERM (SIGQUIT after 10 s, then SIGKILL)
// and reports an exit other than a clean one.
func (n *Node) StopQuorum() error {
	p := n.quorum
	if p == nil {
		return nil
	}
	n.quorum = nil
	_ = p.signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		// SIGQUIT first: the Go runtime prints every goroutine's stack to
		// the log, which shows what held the shutdown up.
		_ = p.signal(syscall.SIGQUIT)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			_ = p.signal(syscall.SIGKILL)
			<-p.done
		}
		return fmt.Errorf("lab: %s pgquorum ignored SIGTERM for 10s (its goroutines' stacks, from SIGQUIT, are in the log above)", n.Name)
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		return fmt.Errorf("lab: %s pgquorum exited with code %d (66: the race detector found a data race)", n.Name, code)
	}
	return nil
}

// QuorumPID is the PID of the node's pgquorum, 0 if it is not running.
func (n *Node) QuorumPID() int {
	if n.quorum == nil {
		return 0
	}
	return n.quorum.pid
}

// quorumTimeout bounds each of the lab's requests to a pgquorum.
const quorumTimeout = 5 * time.Second

// maxAnswer bounds what the lab reads of an answer: /metrics and /events
// are the largest.
const maxAnswer = 1 << 20

// SetQuorumTLS makes the lab's own requests to every pgquorum of the
// cluster (its start-up wait, Get, QuorumURL) HTTPS with cfg, or plain HTTP
// again with nil: how a test follows the server.tls_* keys it gives.
func (c *Cluster) SetQuorumTLS(cfg *tls.Config) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.quorumTLS = cfg
	c.quorum = nil
}

// quorumClient is the client of the lab's requests to pgquorum, and the
// scheme of their URLs.
func (c *Cluster) quorumClient() (*client.Client, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.quorum == nil {
		c.quorum = client.New(client.Options{TLS: c.quorumTLS, Backstop: quorumTimeout})
	}
	if c.quorumTLS != nil {
		return c.quorum, "https"
	}
	return c.quorum, "http"
}

// Quorum is the node's pgquorum, as the lab asks it.
func (n *Node) Quorum() client.Node {
	cl, scheme := n.c.quorumClient()
	return cl.Node(&url.URL{Scheme: scheme, Host: net.JoinHostPort(n.Host, strconv.Itoa(n.QuorumPort))})
}

// Report asks the pgquorum at q for the report the failover coordinator
// gathers, naming no coordinator, so that it takes note of nothing.
func Report(ctx context.Context, q client.Node) (api.Report, error) {
	var r api.Report
	status, err := q.PostJSON(ctx, api.PathReport, api.ReportRequest{Protocol: api.ReportProtocol}, maxAnswer, &r)
	switch {
	case err != nil:
	case status != http.StatusOK:
		err = fmt.Errorf("%s answered %d", q.URL(api.PathReport), status)
	case r.Protocol != api.ReportProtocol:
		err = fmt.Errorf("%s: report of protocol %d, want %d", q.URL(api.PathReport), r.Protocol, api.ReportProtocol)
	}
	return r, err
}

// Get asks the node's pgquorum for path and returns the status and body.
func (n *Node) Get(ctx context.Context, path string) (int, []byte, error) {
	return n.Quorum().Get(ctx, path, maxAnswer)
}

// GetJSON asks for path and decodes the answer strictly into v: the lab
// checks that pgquorum answers exactly the api types.
func (n *Node) GetJSON(ctx context.Context, path string, v any) (int, error) {
	status, body, err := n.Get(ctx, path)
	if err != nil {
		return 0, err
	}
	if err := api.DecodeStrict(bytes.NewReader(body), v); err != nil {
		return status, fmt.Errorf("decode %s %s: %w: %s", n.Name, path, err, body)
	}
	return status, nil
}

// WaitStatus waits until path on the node answers want.
func (n *Node) WaitStatus(ctx context.Context, path string, want int, timeout time.Duration) error {
	return WaitFor(ctx, timeout, fmt.Sprintf("%s %s to answer %d", n.Name, path, want), func(ctx context.Context) error {
		status, body, err := n.Get(ctx, path)
		if err != nil {
			return err
		}
		if status != want {
			return fmt.Errorf("got %d: %s", status, strings.TrimSpace(string(body)))
		}
		return nil
	})
}
