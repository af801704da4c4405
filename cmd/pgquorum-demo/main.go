// Command pgquorum-demo brings up a local demo cluster on 127.0.0.1: three
// real PostgreSQL 15 nodes managed by repmgr, one pgquorum per node, and
// HAProxy in front. It prints what to curl, and with --tour walks through a
// failover and the return of the old primary. It runs with
// failover.synchronous on unless told otherwise (--synchronous). Run it as
// root: PostgreSQL runs as the postgres OS user.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/internal/lab"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

type options struct {
	pgquorum string
	tour     bool
	runFor   time.Duration
	portBase int
	keep     bool
	sync     string // failover.synchronous
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var o options
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.pgquorum, "pgquorum", "", "pgquorum binary (default: build ./cmd/pgquorum)")
	fs.BoolVar(&o.tour, "tour", false, "walk through a failover, then stop")
	fs.DurationVar(&o.runFor, "for", 0, "stop after this long (default: until Ctrl-C)")
	fs.IntVar(&o.portBase, "port-base", 25400, "PostgreSQL on port-base+1..3, pgquorum on port-base+101..103, HAProxy on port-base+201..203")
	fs.BoolVar(&o.keep, "keep", false, "keep logs and data directories after a clean exit (a failed run always keeps them)")
	fs.StringVar(&o.sync, "synchronous", string(api.SyncOn), "failover.synchronous: off (asynchronous replication), on or strict")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if !slices.Contains(api.SyncModes, api.SyncMode(o.sync)) {
		fmt.Fprintf(stderr, "pgquorum-demo: --synchronous %q: want one of %v\n", o.sync, api.SyncModes)
		return 2
	}
	if err := demo(ctx, o, stdout); err != nil {
		fmt.Fprintln(stderr, "pgquorum-demo:", err)
		return 1
	}
	return 0
}

func demo(ctx context.Context, o options, out io.Writer) (err error) {
	if os.Geteuid() != 0 {
		return errors.New("run as root: PostgreSQL and repmgr are run as the postgres OS user")
	}
	dir, err := os.MkdirTemp("", "pgquorum-demo-")
	if err != nil {
		return err
	}
	// A clean run leaves nothing behind; a failed one keeps its logs.
	defer func() {
		if err == nil && !o.keep {
			if rmErr := os.RemoveAll(dir); rmErr != nil {
				fmt.Fprintf(out, "Could not remove %s: %v\n", dir, rmErr)
			}
			return
		}
		fmt.Fprintf(out, "Logs and data kept in %s\n", dir)
	}()
	if err := os.Chmod(dir, 0o755); err != nil { // the postgres OS user works below it
		return err
	}
	if o.pgquorum == "" {
		if o.pgquorum, err = build(ctx, dir); err != nil {
			return err
		}
	}
	logFile, err := os.Create(filepath.Join(dir, "demo.log"))
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, logFile.Close()) }()
	fmt.Fprintf(out, "Starting 3 PostgreSQL nodes with repmgr, a pgquorum each (automatic failover, fast profile, failover.synchronous %s) and HAProxy (log: %s)…\n", o.sync, logFile.Name())
	start := time.Now()
	c, err := lab.Start(ctx, lab.Options{
		Nodes:    []lab.NodeSpec{{Name: "node1", Location: "dc1"}, {Name: "node2", Location: "dc1"}, {Name: "node3", Location: "dc1"}},
		Pgquorum: o.pgquorum,
		PortBase: o.portBase,
		BaseDir:  filepath.Join(dir, "cluster"),
		// Automatic failover with the fast profile: the lab's own timings
		// are left out so that the profile's apply.
		Quorum: map[string]string{"failover.mode": string(api.ModePgquorum), "failover.profile": "fast", "failover.synchronous": o.sync,
			"consensus.refresh_interval": lab.Unset, "consensus.cache_ttl": lab.Unset,
			"consensus.peer_timeout": lab.Unset, "database.timeout": lab.Unset},
		Logf: func(format string, args ...any) {
			fmt.Fprintf(logFile, time.Now().Format("15:04:05.000 ")+format+"\n", args...)
		},
	})
	if err != nil {
		return fmt.Errorf("start cluster: %w", err)
	}
	defer func() { err = errors.Join(err, c.Close()) }() // a failed teardown keeps the logs
	sync := api.SyncMode(o.sync)
	if sync != api.SyncOff {
		if err := c.CommitSynchronously(ctx); err != nil {
			return err
		}
	}
	d := &demoRun{c: c, pgquorum: o.pgquorum, out: out, dir: dir, sync: sync}
	// HAProxy's first checks should see the settled cluster, not node1
	// waiting for its peers' pgquorum to start.
	if err := d.waitState(ctx, "node1", api.StatePrimary); err != nil {
		return err
	}
	if err := d.startHAProxy(ctx, o.pgquorum); err != nil {
		return err
	}
	fmt.Fprintf(out, "Up in %s.\n\n", time.Since(start).Round(100*time.Millisecond))
	if err := d.waitSettled(ctx); err != nil {
		return err
	}
	d.printEndpoints()
	if o.tour {
		return d.tour(ctx)
	}
	if o.runFor > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.runFor)
		defer cancel()
	}
	fmt.Fprintln(out, "\nRunning until Ctrl-C. Everything stops and is cleaned up on exit.")
	<-ctx.Done()
	fmt.Fprintln(out, "Stopping…")
	return nil
}

// build compiles pgquorum from the source tree the demo runs in.
func build(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "pgquorum")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/pgquorum")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build pgquorum (run from the repository root, or pass --pgquorum): %w", err)
	}
	return bin, nil
}
