// Command benchsync measures what synchronous replication
// (failover.synchronous, issue 14) costs, on real lab clusters behind
// HAProxy: pgbench's throughput and p99 latency with off, on k=1 and on
// k=2, one cluster per mode, the modes interleaved round by round so that
// the machine's noise hits them alike; then the write outage of a failover
// (kill -9 of the primary's postmaster) with on against off. Every node
// commits with synchronous_commit on, in every mode, so that only the
// synchronous set differs. Run it through "make bench-sync".
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/tests/benchrig"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// mode is one setting of failover.synchronous.
type mode struct {
	name  string
	sync  string // failover.synchronous
	count int    // failover.synchronous_count; 0: left to its default
}

var modes = []mode{{"off", "off", 0}, {"on k=1", "on", 1}, {"on k=2", "on", 2}}

// failoverModes are the modes whose failovers are measured: on against off.
var failoverModes = modes[:2]

type options struct {
	pgquorum     string
	rounds       int
	load         load
	failoverRuns int
	profile      string
	fsync        bool
	verbose      bool
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o := options{load: load{}}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.pgquorum, "pgquorum", "", "pgquorum binary")
	fs.IntVar(&o.rounds, "rounds", 5, "pgbench rounds; each runs every mode once, in a rotating order")
	fs.DurationVar(&o.load.duration, "duration", 30*time.Second, "pgbench -T of each run (whole seconds)")
	fs.IntVar(&o.load.scale, "scale", 10, "pgbench -i -s")
	fs.IntVar(&o.load.clients, "clients", 8, "pgbench -c")
	fs.IntVar(&o.load.jobs, "jobs", 2, "pgbench -j")
	fs.IntVar(&o.failoverRuns, "failover-runs", 3, "failovers measured per mode, off and on k=1 alternating (0: none)")
	fs.StringVar(&o.profile, "profile", "default", "failover.profile of every cluster: default or fast")
	fs.BoolVar(&o.fsync, "fsync", false, "turn fsync on on every node (the lab runs with fsync off)")
	fs.BoolVar(&o.verbose, "v", false, "copy the clusters' logs to stderr")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	switch {
	case o.pgquorum == "" || o.rounds < 1 || o.failoverRuns < 0:
		fmt.Fprintln(stderr, "benchsync: --pgquorum is required, --rounds at least 1, --failover-runs at least 0")
		return 2
	case o.load.duration < time.Second || o.load.scale < 1 || o.load.clients < 1 || o.load.jobs < 1:
		fmt.Fprintln(stderr, "benchsync: --duration at least 1s; --scale, --clients and --jobs at least 1")
		return 2
	case o.profile != "fast" && o.profile != "default":
		fmt.Fprintln(stderr, "benchsync: --profile is fast or default")
		return 2
	case os.Geteuid() != 0:
		fmt.Fprintln(stderr, "benchsync: run as root: PostgreSQL runs as the postgres OS user")
		return 2
	}
	logf := func(string, ...any) {}
	if o.verbose {
		logf = func(format string, args ...any) { fmt.Fprintf(stderr, format+"\n", args...) }
	}
	fsync := "off"
	if o.fsync {
		fsync = "on"
	}
	l := o.load
	fmt.Fprintf(stdout, "== pgbench through HAProxy's write port: -s %d, -c %d -j %d -T %d, %d rounds (modes interleaved); profile %s; synchronous_commit on, fsync %s\n",
		l.scale, l.clients, l.jobs, int(l.duration.Seconds()), o.rounds, o.profile, fsync)
	results, err := benchPgbench(ctx, o, stderr, logf)
	if err != nil {
		fmt.Fprintln(stderr, "benchsync:", err)
		return 1
	}
	pgbenchTable(stdout, results)
	if o.failoverRuns == 0 {
		return 0
	}
	fmt.Fprintf(stdout, "== failover write outage through HAProxy (kill -9 of node1's postmaster, a write every 20 ms); profile %s; %d runs each, interleaved\n",
		o.profile, o.failoverRuns)
	outages := benchFailover(ctx, o, stderr, logf)
	outageTable(stdout, outages)
	for _, r := range outages {
		if len(r.failures) > 0 {
			return 1
		}
	}
	return 0
}

// setup is the cluster of mode m: pgquorum failing over with o's profile,
// every node committing with synchronous_commit on.
func (o options) setup(m mode) benchrig.Setup {
	keys := map[string]string{"failover.mode": string(api.ModePgquorum), "failover.profile": o.profile, "failover.synchronous": m.sync}
	if m.count > 0 {
		keys["failover.synchronous_count"] = strconv.Itoa(m.count)
	}
	h := benchrig.HAProxyFast
	if o.profile == "default" {
		h = benchrig.HAProxyDefault
	}
	return benchrig.Setup{Name: m.name, Quorum: benchrig.Keys(keys), HAProxy: h, SynchronousCommit: true}
}
