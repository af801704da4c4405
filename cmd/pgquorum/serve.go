package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/config"
	"github.com/pgquorum/pgquorum/consensus"
	"github.com/pgquorum/pgquorum/internal/buildinfo"
	"github.com/pgquorum/pgquorum/internal/sdnotify"
	"github.com/pgquorum/pgquorum/repmgr"
	"github.com/pgquorum/pgquorum/server"
)

// shutdownTimeout bounds how long in-flight requests may finish on SIGTERM.
const shutdownTimeout = 5 * time.Second

func newServeCmd(stdout, stderr io.Writer) *cobra.Command {
	var configFile string
	var checkOnly bool
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the daemon beside the local PostgreSQL node",
		Args:  cobra.NoArgs,
	}
	v := config.NewViper(cmd.Flags())
	cmd.Flags().StringVar(&configFile, "config", "", "YAML config file")
	cmd.Flags().BoolVar(&checkOnly, "check-config", false, "validate the configuration, print it (password redacted) and exit")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg, err := config.Load(v, configFile, os.Environ())
		if err != nil {
			return usageErr(fmt.Errorf("invalid configuration:\n%w", err))
		}
		if checkOnly {
			cfg.Print(stdout)
			return nil
		}
		return serve(cmd.Context(), cfg, buildinfo.Get(), stderr)
	}
	return cmd
}

// leaseFileName is the ballot's lease, in consensus.state_dir.
const leaseFileName = "vote-lease.json"

// newBallot returns this node's vote, its lease persisted in
// consensus.state_dir when one is set. The directory must be writable: a vote
// that cannot be recorded is refused, so find out now rather than at the
// first poll.
func newBallot(cfg config.Config, log *slog.Logger) (*consensus.Ballot, error) {
	lease := consensus.LeaseFor(cfg.CacheTTL)
	if cfg.StateDir == "" {
		log.Info("consensus.state_dir is not set: vouching for nobody, itself included, for one vote lease", "lease", lease)
		b, err := consensus.NewBallot(lease, consensus.SystemMonotonic, nil)
		if b != nil {
			b.HoldForRouters(cfg.RouterHold)
		}
		return b, err
	}
	probe, err := os.CreateTemp(cfg.StateDir, ".write-test-*")
	if err != nil {
		return nil, fmt.Errorf("consensus.state_dir: want a writable directory: %w", err)
	}
	// Creating it was the test: what closing or removing an empty file
	// says adds nothing.
	_ = probe.Close()
	_ = os.Remove(probe.Name())
	store := consensus.LeaseFile{Path: filepath.Join(cfg.StateDir, leaseFileName),
		Owner: consensus.LeaseOwner{Node: cfg.NodeName, NodeID: cfg.NodeID, DataDir: cfg.DataDir}}
	b, err := consensus.NewBallot(lease, consensus.SystemMonotonic, store)
	if errors.Is(err, consensus.ErrNotOurLease) {
		// Another instance votes from this directory: whichever of the
		// two records last, the other would honour votes it never gave.
		return nil, fmt.Errorf("consensus.state_dir: %w", err)
	}
	if err != nil {
		log.Warn("vote lease not restored", "error", err)
	}
	b.HoldForRouters(cfg.RouterHold)
	l, remaining := b.Current()
	log.Info("vote lease", "holder", l.Holder, "remaining", remaining.Round(time.Millisecond), "file", store.Path)
	return b, nil
}

func newLogger(level, format string, w io.Writer) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level)) // validated by config.Load
	opts := &slog.HandlerOptions{Level: l}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// serve runs until ctx ends: on SIGTERM it first answers 503 to every check,
// then stops accepting and lets in-flight requests finish.
func serve(ctx context.Context, cfg config.Config, info buildinfo.Info, stderr io.Writer) error {
	log := newLogger(cfg.LogLevel, cfg.LogFormat, stderr).With("node", cfg.NodeName)
	if err := refuseRoot(cfg, os.Geteuid()); err != nil {
		return usageErr(err)
	}
	notifier, watchdog, err := systemdNotifier()
	if err != nil {
		return usageErr(err)
	}
	if watchdog > 0 && watchdog/2 <= cfg.CacheTTL {
		// A healthy checker's newest verdict is up to refresh_interval
		// plus a probe old: this watchdog would restart it.
		log.Warn("systemd's WatchdogSec is too short: want more than twice consensus.cache_ttl", "watchdog", watchdog, "cache_ttl", cfg.CacheTTL)
	}
	if _, err := exec.LookPath(cfg.RepmgrBin); err != nil {
		// Serving needs no repmgr; say so once, as operators expect it beside PostgreSQL.
		log.Warn("repmgr.bin not found; serving anyway", "path", cfg.RepmgrBin, "error", err)
	}
	local, err := repmgr.Open(repmgr.Options{DSN: string(cfg.DSN), MaxConns: int32(cfg.MaxConns), Timeout: cfg.DBTimeout})
	if err != nil {
		return usageErr(fmt.Errorf("database.dsn: %w", err))
	}
	defer local.Close()
	ballot, err := newBallot(cfg, log)
	if err != nil {
		return failedErr(err)
	}
	creds, err := loadCredentials(cfg)
	if err != nil {
		return usageErr(err)
	}
	creds.warn(log)
	metrics := server.NewMetrics(cfg.ClusterName)
	metrics.WatchPool(local.PoolConns)
	metrics.ExportBuildInfo(info)
	watch := newVerdictWatch(metrics)
	peers := creds.peerClient(log)
	// The failover controller, built below, tells a voter whose database is
	// down (or a witness) the committed primary.
	var committed atomic.Pointer[consensus.CommittedSource]
	// And it tells every voter the nodes the Raft log deposes (issue 13,
	// item 1); with failover off there are none.
	var deposed atomic.Pointer[consensus.DepositionSource]
	var depositions consensus.Depositions
	if cfg.Failover.Enabled() {
		depositions = consensus.DepositionsFrom(&deposed)
	}
	checker := consensus.NewChecker(consensus.Options{
		Identity:        consensus.Identity{Name: cfg.NodeName, NodeID: cfg.NodeID, DataDir: cfg.DataDir},
		Scope:           cfg.Scope,
		Ballot:          ballot,
		RefreshInterval: cfg.RefreshInterval,
		CacheTTL:        cfg.CacheTTL,
		PeerTimeout:     cfg.PeerTimeout,
		Addresses:       consensus.Addresses{Port: cfg.PeerPort, Overrides: cfg.Peers},
		Logger:          log,
		Observer:        watch,
		Committed:       consensus.CommittedFrom(&committed),
		Deposed:         depositions,
	}, local, peers)
	agent, agentLn, err := listenAgent(cfg, checker, log)
	if err != nil {
		return failedErr(err)
	}
	srvOpts := server.Options{Logger: log, Metrics: metrics, Events: local, Self: cfg.NodeName, Cluster: cfg.ClusterName, Auth: creds.serverAuth()}
	// A nil channel never delivers: with failover off, or no agent, the
	// select below waits on the others alone.
	var ctlErr, agentErr chan error
	if cfg.Failover.Enabled() {
		ctl := newController(cfg, checker, local, peers, creds.stream(), log, stderr)
		// The voter vouches for the committed primary when its own
		// database is down (issue 13, item 9): the controller is built
		// after the checker, so it is handed over through committed.
		if src, ok := any(ctl).(consensus.CommittedSource); ok {
			committed.Store(&src)
		} else {
			log.Error("the failover controller names no committed primary: voters whose database is down vouch for nobody")
		}
		if src, ok := any(ctl).(consensus.DepositionSource); ok {
			deposed.Store(&src)
		} else {
			log.Error("the failover controller tells no depositions: this node vouches for nobody")
		}
		srvOpts.Failover = ctl
		metrics.WatchFailover(cfg.NodeName, ctl)
		ctlErr = make(chan error, 1)
		go func() { ctlErr <- ctl.Run(ctx) }()
	}
	if agent != nil {
		defer agentLn.Close()
		agentErr = make(chan error, 1)
		srvOpts.AgentAdmin = agent.AdminHandler()
		go func() { agentErr <- agent.Serve(ctx, agentLn) }()
	}
	srv := server.New(srvOpts, checker)
	hs := srv.HTTPServer(cfg.Listen)
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return failedErr(fmt.Errorf("server.listen: %w", err))
	}
	ln = creds.listen(ln)
	log.Info("pgquorum serving", append([]any{"listen", ln.Addr().String(), "dsn", cfg.DSN, "version", info.Version, "revision", info.Revision},
		creds.tls.Current().Describe()...)...)

	go checker.Run(ctx)
	go notifySystemd(ctx, notifier, watch, watchdog, log)
	go creds.reloadOnHUP(ctx, log)
	serveErr := make(chan error, 1)
	go func() { serveErr <- hs.Serve(ln) }()
	ctlDone, err := waitForEnd(ctx, serveErr, agentErr, ctlErr)
	if err != nil {
		return failedErr(err)
	}
	log.Info("shutting down: answering 503 to every check")
	if err := notifier.Notify(sdnotify.Stopping); err != nil {
		log.Warn("systemd stopping", "error", err)
	}
	srv.Drain()
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return failedErr(fmt.Errorf("shut down HTTP server: %w", err))
	}
	if ctlErr != nil && !ctlDone {
		if err := <-ctlErr; err != nil { // the Raft member closes its files before we exit
			return failedErr(fmt.Errorf("failover: %w", err))
		}
	}
	return nil
}

// waitForEnd returns when ctx ends (nil) or when a server or the failover
// controller stops first: a listener that fails must end the process, or
// the node would go on answering nothing while systemd sees it running.
// A nil channel stands for a part that does not run; ctlDone says whether
// the controller's result was taken.
func waitForEnd(ctx context.Context, serveErr, agentErr, ctlErr <-chan error) (ctlDone bool, err error) {
	select {
	case err := <-serveErr:
		return false, fmt.Errorf("serve HTTP: %w", err)
	case err := <-agentErr:
		return false, fmt.Errorf("serve HAProxy agent: %w", err)
	case err := <-ctlErr:
		if err != nil {
			return true, fmt.Errorf("failover: %w", err)
		}
		if ctx.Err() == nil {
			return true, errors.New("failover: the controller stopped by itself")
		}
		return true, nil
	case <-ctx.Done():
		return false, nil
	}
}

// refuseRoot stops a failover-mode node run as root before it starts: repmgr
// and pg_ctl refuse root, so every promotion, follow, rejoin and fence would
// fail when it matters.
func refuseRoot(cfg config.Config, euid int) error {
	if euid != 0 {
		return nil
	}
	acts := cfg.Failover.Mode == api.ModePgquorum || (cfg.Failover.Enabled() && cfg.Failover.Fence != api.FenceOff)
	if !acts {
		return nil
	}
	owner := "the data directory's owner (usually postgres)"
	if cfg.DataDir != "" {
		owner = "the owner of " + cfg.DataDir + " (usually postgres)"
	}
	return fmt.Errorf("failover.mode %s: pgquorum runs as root, but repmgr and pg_ctl refuse to run as root, so it could never promote, follow, rejoin or fence; run pgquorum as %s", cfg.Failover.Mode, owner)
}
