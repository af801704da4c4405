// Command benchfailover measures the write outage of a failover through
// HAProxy on real lab clusters: pgquorum's own controller with each profile,
// and, in the same harness and run, repmgrd with its defaults and with
// 2 × 1 s reconnects (pgquorum then only answers HAProxy's checks). Faults:
// SIGKILL of the primary's postmaster, the loss of the whole primary node
// (its PostgreSQL, pgquorum and repmgrd at once), and, pgquorum only, a
// planned "pgquorum switchover". It prints the median and the maximum of
// each. Run it through "make bench-failover" (every fault) or "make
// bench-switchover" (the switchover alone).
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
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/internal/lab"
	"github.com/pgquorum/pgquorum/tests/benchrig"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// The setups: pgquorum failing over with each profile, and repmgrd with its
// defaults and tuned (pgquorum then only answers HAProxy's checks).
var setups = []benchrig.Setup{
	{Name: "pgquorum default", Quorum: benchrig.Keys(map[string]string{"failover.mode": string(api.ModePgquorum), "failover.profile": "default"}), HAProxy: benchrig.HAProxyDefault},
	{Name: "pgquorum fast", Quorum: benchrig.Keys(map[string]string{"failover.mode": string(api.ModePgquorum), "failover.profile": "fast"}), HAProxy: benchrig.HAProxyFast},
	{Name: "repmgrd defaults (6 × 10 s)", Quorum: benchrig.Keys(map[string]string{"failover.profile": "default"}),
		Repmgrd: &lab.RepmgrdOptions{ReconnectAttempts: 6, ReconnectInterval: 10}, HAProxy: benchrig.HAProxyDefault},
	{Name: "repmgrd 2 × 1 s", Quorum: benchrig.Keys(map[string]string{"failover.profile": "fast"}),
		Repmgrd: &lab.RepmgrdOptions{ReconnectAttempts: 2, ReconnectInterval: 1}, HAProxy: benchrig.HAProxyFast},
}

// faults: a SIGKILL of the primary's postmaster, the loss of the whole
// primary node, and a planned switchover to node2 (pgquorum only).
var faults = []string{"postmaster", "node", "switchover"}

type options struct {
	pgquorum string
	runs     int
	only     string
	fault    string
	keep     bool
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var o options
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.pgquorum, "pgquorum", "", "pgquorum binary")
	fs.IntVar(&o.runs, "runs", 5, "runs of each setup and fault")
	fs.StringVar(&o.only, "only", "", "run only the setups whose name contains this")
	fs.StringVar(&o.fault, "fault", "", "run only this fault: postmaster, node or switchover")
	fs.BoolVar(&o.keep, "v", false, "copy the clusters' logs to stderr")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if o.pgquorum == "" || o.runs < 1 {
		fmt.Fprintln(stderr, "benchfailover: --pgquorum is required, --runs at least 1")
		return 2
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(stderr, "benchfailover: run as root: PostgreSQL runs as the postgres OS user")
		return 2
	}
	results := map[string][]time.Duration{}
	var failures []string
	for _, s := range setups {
		if o.only != "" && !strings.Contains(s.Name, o.only) {
			continue
		}
		for _, fault := range faults {
			if (o.fault != "" && fault != o.fault) || (fault == "switchover" && s.Repmgrd != nil) {
				continue
			}
			for i := range o.runs {
				if ctx.Err() != nil {
					return 1
				}
				outage, err := measure(ctx, o, s, fault, stderr)
				key := s.Name + "\t" + fault
				if err != nil {
					failures = append(failures, fmt.Sprintf("%s, %s, run %d: %v", s.Name, fault, i+1, err))
					fmt.Fprintf(stderr, "%s %s run %d: FAILED: %v\n", s.Name, fault, i+1, err)
					continue
				}
				results[key] = append(results[key], outage)
				fmt.Fprintf(stderr, "%s %s run %d: outage %s\n", s.Name, fault, i+1, outage.Round(10*time.Millisecond))
			}
		}
	}
	printTable(stdout, results)
	for _, f := range failures {
		fmt.Fprintln(stdout, "failed:", f)
	}
	if len(failures) > 0 {
		return 1
	}
	return 0
}

// measure runs one failover: a new cluster, writes through HAProxy every
// 20 ms, the fault, and the time from the fault to the first write a new
// primary acknowledges.
func measure(ctx context.Context, o options, s benchrig.Setup, fault string, stderr io.Writer) (time.Duration, error) {
	logf := func(string, ...any) {}
	if o.keep {
		logf = func(format string, args ...any) { fmt.Fprintf(stderr, format+"\n", args...) }
	}
	r, err := benchrig.Start(ctx, o.pgquorum, s, logf)
	if err != nil {
		return 0, err
	}
	defer func() {
		if err := r.Close(); err != nil {
			fmt.Fprintf(stderr, "stop cluster: %v\n", err)
		}
	}()
	w, err := r.StartWrites(ctx)
	if err != nil {
		return 0, err
	}
	defer w.Stop()
	if fault == "switchover" {
		return switchover(ctx, o, r.C, w)
	}
	n1 := r.C.Node("node1")
	if fault == "node" {
		n1.KillQuorum()
		n1.KillRepmgrd()
	}
	if err := n1.KillPostmaster(); err != nil {
		return 0, err
	}
	return benchrig.OutageSince(ctx, w, n1, time.Now())
}

// switchover runs "pgquorum switchover --to node2" and returns the gap
// between the last write node1 acknowledged and the first node2 did.
func switchover(ctx context.Context, o options, c *lab.Cluster, w *lab.WriteProber) (time.Duration, error) {
	n1, n2 := c.Node("node1"), c.Node("node2")
	ctx2, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx2, o.pgquorum, "switchover", "--to", "node2", "--wait", "60s", "--url", n1.QuorumURL()).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("pgquorum switchover: %w: %s", err, out)
	}
	var last, first time.Time
	err = lab.WaitFor(ctx, 30*time.Second, "a write acknowledged by node2", func(context.Context) error {
		for _, x := range w.Acked() {
			switch {
			case x.Port == n1.PGPort:
				last = x.Done
			case x.Port == n2.PGPort && first.IsZero():
				first = x.Done
			}
		}
		if first.IsZero() {
			return errors.New("none yet")
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return first.Sub(last), nil
}

func printTable(w io.Writer, results map[string][]time.Duration) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SETUP\tFAULT\tRUNS\tMEDIAN\tMAX\tALL")
	for _, s := range setups {
		for _, fault := range faults {
			d := results[s.Name+"\t"+fault]
			if len(d) == 0 {
				continue
			}
			slices.Sort(d)
			all := make([]string, len(d))
			for i, x := range d {
				all[i] = x.Round(10 * time.Millisecond).String()
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", s.Name, fault, len(d), benchrig.Median(d).Round(10*time.Millisecond),
				d[len(d)-1].Round(10*time.Millisecond), strings.Join(all, " "))
		}
	}
	tw.Flush()
}
