package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/haproxy"
	"github.com/pgquorum/pgquorum/repmgr"
)

const haproxyConfigLong = `Render a complete haproxy.cfg for the cluster: a read-write listener whose
servers pass only while their pgquorum /state answers 200 (Primary with a
majority of its site), a read-only listener balancing over the servers
answering 202 (Standby), and a stats page.

The servers come from exactly one of:
  --dsn            any node of the cluster: its repmgr.nodes is read
  --repmgr-config  a repmgr.conf: its conninfo is used as --dsn
  --node           name=host:pgport[:checkport], repeated
Witness nodes are left out. Each server is checked on its host at
--check-port (or its own port from --node-check-port or --node).

With --agent-port, every server also gets an HAProxy agent-check on that
port (pgquorum's server.agent_listen), so "pgquorum agent drain" on a node
takes it out of the listeners gracefully.

With --server-state-file (and --stats-socket), HAProxy starts each server in
the state the previous HAProxy saved there instead of UP until its first
check, which would let a standby take writes after every restart or reload.
Save the state just before each reload or stop: see
scripts/haproxy/save-state.sh.

With --check-ssl --ca-file F, the checks are HTTPS (pgquorum's
server.tls_cert): HAProxy verifies each pgquorum's certificate against F and
that it names the node ("check-ssl verify required ca-file F verifyhost
<node>"). --crt F gives HAProxy a client certificate (certificate and key in
one PEM) for server.tls_client_auth required or require_auth_for_checks.`

// haproxyFlags are the flags of "pgquorum haproxy-config".
type haproxyFlags struct {
	dsn, repmgrConfig, location, output string
	nodes                               []string
	checkPort                           int
	nodeCheckPorts                      map[string]int
	timeout                             time.Duration
	opts                                haproxy.Options
}

// optionFlags names the flag behind each haproxy.Options field, so that
// Render's complaints name what the user typed.
var optionFlags = map[string]string{
	"RWListen": "--rw-listen", "ROListen": "--ro-listen", "StatsListen": "--stats-listen",
	"StatsSocket": "--stats-socket", "Inter": "--inter", "Fall": "--fall", "Rise": "--rise",
	"AgentPort": "--agent-port", "AgentInter": "--agent-inter", "ServerStateFile": "--server-state-file",
	"CheckSSL": "--check-ssl", "CAFile": "--ca-file", "CrtFile": "--crt", "HardStopAfter": "--hard-stop-after",
}

// fieldsToFlags rewrites field names inside a message ("already the
// ROListen address").
var fieldsToFlags = func() *strings.Replacer {
	var pairs []string
	for field, flag := range optionFlags {
		pairs = append(pairs, field, flag)
	}
	return strings.NewReplacer(pairs...)
}()

func newHAProxyConfigCmd(stdout, stderr io.Writer) *cobra.Command {
	f := haproxyFlags{opts: haproxy.DefaultOptions()}
	cmd := &cobra.Command{
		Use:   "haproxy-config",
		Short: "Render haproxy.cfg for the cluster from repmgr.nodes or a node list",
		Long:  haproxyConfigLong,
		Args:  cobra.NoArgs,
	}
	fs := cmd.Flags()
	fs.StringVar(&f.dsn, "dsn", "", "DSN of any node; its repmgr.nodes lists the servers")
	fs.StringVar(&f.repmgrConfig, "repmgr-config", "", "repmgr.conf whose conninfo is used as --dsn")
	fs.StringArrayVar(&f.nodes, "node", nil, "a server as name=host:pgport[:checkport]; repeat per node")
	fs.StringVar(&f.location, "location", "", "only the nodes of this repmgr location (default: all)")
	fs.IntVar(&f.checkPort, "check-port", api.DefaultPort, "pgquorum port of every node")
	fs.StringToIntVar(&f.nodeCheckPorts, "node-check-port", nil, "pgquorum port of some nodes, name=port,…")
	fs.DurationVar(&f.timeout, "timeout", 5*time.Second, "bound on reading repmgr.nodes")
	fs.StringVarP(&f.output, "output", "o", "", "write to this file (atomically) instead of stdout")
	fs.StringVar(&f.opts.RWListen, "rw-listen", f.opts.RWListen, "read-write listener, host:port")
	fs.StringVar(&f.opts.ROListen, "ro-listen", f.opts.ROListen, "read-only listener, host:port")
	fs.StringVar(&f.opts.StatsListen, "stats-listen", f.opts.StatsListen, "stats page, host:port")
	fs.StringVar(&f.opts.StatsSocket, "stats-socket", "", "path of an admin stats socket (default: none)")
	fs.StringVar(&f.opts.ServerStateFile, "server-state-file", "", "state file HAProxy loads its servers' state from at start; needs --stats-socket (default: none)")
	fs.DurationVar(&f.opts.Inter, "inter", f.opts.Inter, "interval between two checks of a server")
	fs.IntVar(&f.opts.Fall, "fall", f.opts.Fall, "failed checks before a server is marked DOWN")
	fs.DurationVar(&f.opts.HardStopAfter, "hard-stop-after", f.opts.HardStopAfter, "after a reload, the old worker's sessions are cut this long after (at most consensus.cache_ttl x 1.1 + router_hold)")
	fs.IntVar(&f.opts.Rise, "rise", f.opts.Rise, "passed checks before a server is marked UP")
	fs.IntVar(&f.opts.AgentPort, "agent-port", 0, "pgquorum agent port (server.agent_listen) of every node; 0: no agent-check")
	fs.DurationVar(&f.opts.AgentInter, "agent-inter", 0, "interval between two agent checks (default: --inter)")
	fs.BoolVar(&f.opts.CheckSSL, "check-ssl", false, "check over HTTPS (pgquorum's server.tls_cert), verifying its certificate against --ca-file and the node name")
	fs.StringVar(&f.opts.CAFile, "ca-file", "", "with --check-ssl: CA certificates that sign pgquorum's certificates")
	fs.StringVar(&f.opts.CrtFile, "crt", "", "with --check-ssl: HAProxy's client certificate and key, one PEM (for server.tls_client_auth required)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		return runHAProxyConfig(cmd.Context(), f, stdout, stderr)
	}
	return cmd
}

// defaultRouterHold is the default profile's consensus.router_hold: checks
// that need more are worth a warning, since a node left at its default
// would confirm a new primary while HAProxy still routes to the old one.
const defaultRouterHold = 2500 * time.Millisecond

func runHAProxyConfig(ctx context.Context, f haproxyFlags, stdout, stderr io.Writer) error {
	if err := f.checkSource(); err != nil {
		return usageErr(err)
	}
	if err := flagErrors(f.opts.Validate()); err != nil {
		return usageErr(err)
	}
	servers, err := f.servers(ctx)
	if err != nil {
		return err
	}
	if hold := f.opts.RouterHold(); hold > defaultRouterHold {
		fmt.Fprintf(stderr, "pgquorum haproxy-config: warning: with --inter %s --fall %d a server stays UP up to %s after its last passed check: set consensus.router_hold to at least %s on every node (the default profile's is %s)\n",
			f.opts.Inter, f.opts.Fall, time.Duration(2*f.opts.Fall)*f.opts.Inter, hold, defaultRouterHold)
	}
	cfg, err := haproxy.Render(f.opts, servers)
	if err != nil && len(f.nodes) > 0 {
		return usageErr(fmt.Errorf("--node: %w", err))
	}
	if err != nil {
		return failedErr(fmt.Errorf("render haproxy.cfg from repmgr.nodes: %w", err))
	}
	if f.output == "" {
		_, err = io.WriteString(stdout, cfg)
		return err
	}
	if err := writeFileAtomic(f.output, cfg); err != nil {
		return failedErr(fmt.Errorf("--output: %w", err))
	}
	return nil
}

func (f haproxyFlags) checkSource() error {
	n := 0
	for _, set := range []bool{f.dsn != "", f.repmgrConfig != "", len(f.nodes) > 0} {
		if set {
			n++
		}
	}
	var errs []error
	if n != 1 {
		errs = append(errs, errors.New("want exactly one of --dsn, --repmgr-config or --node"))
	}
	if f.checkPort < 1 || f.checkPort > 65535 {
		errs = append(errs, fmt.Errorf("--check-port: want 1 to 65535, got %d", f.checkPort))
	}
	for name, p := range f.nodeCheckPorts {
		if p < 1 || p > 65535 {
			errs = append(errs, fmt.Errorf("--node-check-port %s: want 1 to 65535, got %d", name, p))
		}
	}
	if f.timeout <= 0 {
		errs = append(errs, fmt.Errorf("--timeout: want a positive duration, got %s", f.timeout))
	}
	return errors.Join(errs...)
}

// flagErrors renames the Options fields in err after their flags.
func flagErrors(err error) error {
	if err == nil {
		return nil
	}
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return err
	}
	var out []error
	for _, e := range joined.Unwrap() {
		var fe *haproxy.FieldError
		if errors.As(e, &fe) && optionFlags[fe.Field] != "" {
			e = fmt.Errorf("%s: %s", optionFlags[fe.Field], fieldsToFlags.Replace(fe.Msg))
		}
		out = append(out, e)
	}
	return errors.Join(out...)
}

// servers lists the servers from the one source given.
func (f haproxyFlags) servers(ctx context.Context) ([]haproxy.Server, error) {
	if len(f.nodes) > 0 {
		servers, err := parseNodeFlags(f.nodes, f.checkPort, f.nodeCheckPorts)
		if err != nil {
			return nil, usageErr(err)
		}
		return servers, nil
	}
	dsn, flag := f.dsn, "--dsn"
	if f.repmgrConfig != "" {
		rc, err := repmgr.ReadConfigFile(f.repmgrConfig)
		if err != nil {
			return nil, usageErr(fmt.Errorf("--repmgr-config: %w", err))
		}
		if dsn, flag = rc.Conninfo, "--repmgr-config"; dsn == "" {
			return nil, usageErr(fmt.Errorf("--repmgr-config: %s has no conninfo", f.repmgrConfig))
		}
	}
	nodes, err := readNodes(ctx, dsn, f.timeout)
	if err != nil {
		return nil, failedErr(fmt.Errorf("read repmgr.nodes through %s: %w", flag, err))
	}
	servers, err := serversFromNodes(nodes, f.location, f.checkPort, f.nodeCheckPorts)
	if err != nil {
		return nil, failedErr(err)
	}
	return servers, nil
}

// readNodes reads repmgr.nodes through the same safe, bounded probe that
// "serve" uses.
func readNodes(ctx context.Context, dsn string, timeout time.Duration) ([]repmgr.Node, error) {
	local, err := repmgr.Open(repmgr.Options{DSN: dsn, MaxConns: 1, Timeout: timeout})
	if err != nil {
		return nil, err
	}
	defer local.Close()
	facts, err := local.Probe(ctx)
	if err != nil {
		return nil, err
	}
	return facts.Nodes, nil
}

// writeFileAtomic replaces path with content through a temporary file in
// the same directory, so a reloading HAProxy never reads half a config.
func writeFileAtomic(path, content string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer func() { _ = os.Remove(tmp.Name()) }() // fails harmlessly once renamed
	if _, err := tmp.WriteString(content); err != nil {
		_ = tmp.Close() // the write's error is the one to report
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
