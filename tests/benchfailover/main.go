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
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// setup is one way of failing over.
type setup struct {
	name    string
	quorum  map[string]string   // pgquorum keys on top of the lab's
	repmgrd *lab.RepmgrdOptions // nil: no repmgrd
	haproxy lab.HAProxyTimings  // the settings docs/configuration.md recommends for the profile
}

// The lab's own timings are left out: each profile's defaults apply.
var labTimings = map[string]string{
	"consensus.refresh_interval": lab.Unset, "consensus.cache_ttl": lab.Unset,
	"consensus.peer_timeout": lab.Unset, "database.timeout": lab.Unset,
}

func keys(more map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range labTimings {
		out[k] = v
	}
	for k, v := range more {
		out[k] = v
	}
	return out
}

var (
	haproxyDefault = lab.HAProxyTimings{Inter: 500 * time.Millisecond, Fall: 2, Rise: 1}
	haproxyFast    = lab.HAProxyTimings{Inter: 200 * time.Millisecond, Fall: 2, Rise: 1}
)

var setups = []setup{
	{name: "pgquorum default", quorum: keys(map[string]string{"failover.mode": string(api.ModePgquorum), "failover.profile": "default"}), haproxy: haproxyDefault},
	{name: "pgquorum fast", quorum: keys(map[string]string{"failover.mode": string(api.ModePgquorum), "failover.profile": "fast"}), haproxy: haproxyFast},
	{name: "repmgrd defaults (6 × 10 s)", quorum: keys(map[string]string{"failover.profile": "default"}),
		repmgrd: &lab.RepmgrdOptions{ReconnectAttempts: 6, ReconnectInterval: 10}, haproxy: haproxyDefault},
	{name: "repmgrd 2 × 1 s", quorum: keys(map[string]string{"failover.profile": "fast"}),
		repmgrd: &lab.RepmgrdOptions{ReconnectAttempts: 2, ReconnectInterval: 1}, haproxy: haproxyFast},
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
		if o.only != "" && !strings.Contains(s.name, o.only) {
			continue
		}
		for _, fault := range faults {
			if (o.fault != "" && fault != o.fault) || (fault == "switchover" && s.repmgrd != nil) {
				continue
			}
			for i := range o.runs {
				if ctx.Err() != nil {
					return 1
				}
				outage, err := measure(ctx, o, s, fault, stderr)
				key := s.name + "\t" + fault
				if err != nil {
					failures = append(failures, fmt.Sprintf("%s, %s, run %d: %v", s.name, fault, i+1, err))
					fmt.Fprintf(stderr, "%s %s run %d: FAILED: %v\n", s.name, fault, i+1, err)
					continue
				}
				results[key] = append(results[key], outage)
				fmt.Fprintf(stderr, "%s %s run %d: outage %s\n", s.name, fault, i+1, outage.Round(10*time.Millisecond))
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
func measure(ctx context.Context, o options, s setup, fault string, stderr io.Writer) (time.Duration, error) {
	logf := func(string, ...any) {}
	if o.keep {
		logf = func(format string, args ...any) { fmt.Fprintf(stderr, format+"\n", args...) }
	}
	c, err := lab.Start(ctx, lab.Options{Nodes: []lab.NodeSpec{{Name: "node1", Location: "dc1"}, {Name: "node2", Location: "dc1"},
		{Name: "node3", Location: "dc1"}}, Pgquorum: o.pgquorum, Quorum: s.quorum, Repmgrd: s.repmgrd, Logf: logf})
	if err != nil {
		return 0, err
	}
	defer func() {
		if err := c.Close(); err != nil {
			fmt.Fprintf(stderr, "stop cluster: %v\n", err)
		}
	}()
	n1 := c.Node("node1")
	if s.repmgrd != nil {
		for _, n := range c.Nodes {
			if err := n.StartRepmgrd(); err != nil {
				return 0, err
			}
		}
	}
	if err := n1.WaitStatus(ctx, api.PathState, 200, 30*time.Second); err != nil {
		return 0, err
	}
	if s.repmgrd == nil { // pgquorum fails over once it has adopted the first primary
		err := lab.WaitFor(ctx, 30*time.Second, "epoch 1 on every node", func(ctx context.Context) error {
			for _, n := range c.Nodes {
				var h api.HistoryBody
				if _, err := n.GetJSON(ctx, api.PathHistory, &h); err != nil || len(h.Decisions) == 0 {
					return fmt.Errorf("%s: no decision yet (%v)", n.Name, err)
				}
			}
			return nil
		})
		if err != nil {
			return 0, err
		}
	}
	h, l, err := c.StartHAProxyFromRepmgr(ctx, o.pgquorum, s.haproxy)
	if err != nil {
		return 0, err
	}
	if err := h.WaitStatus(ctx, "postgres_rw", "node1", "UP", 30*time.Second); err != nil {
		return 0, err
	}
	if err := c.CreateWriteTable(ctx, n1); err != nil {
		return 0, err
	}
	w := lab.StartWriteProber(l.RW, 20*time.Millisecond)
	defer w.Stop()
	if err := lab.WaitFor(ctx, 10*time.Second, "writes on node1", func(context.Context) error {
		if len(w.Acked()) < 5 {
			return errors.New("fewer than 5 writes acknowledged")
		}
		return nil
	}); err != nil {
		return 0, err
	}
	if fault == "switchover" {
		return switchover(ctx, o, c, w)
	}
	if fault == "node" {
		n1.KillQuorum()
		n1.KillRepmgrd()
	}
	if err := n1.KillPostmaster(); err != nil {
		return 0, err
	}
	at := time.Now()
	var first time.Time
	err = lab.WaitFor(ctx, 3*time.Minute, "a write acknowledged by a new primary", func(context.Context) error {
		for _, x := range w.Acked() {
			if x.Port != n1.PGPort && x.Sent.After(at) {
				first = x.Done
				return nil
			}
		}
		return errors.New("none yet")
	})
	if err != nil {
		all := w.Writes()
		return 0, fmt.Errorf("%w (last write: %+v)", err, all[len(all)-1])
	}
	return first.Sub(at), nil
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
			d := results[s.name+"\t"+fault]
			if len(d) == 0 {
				continue
			}
			slices.Sort(d)
			all := make([]string, len(d))
			for i, x := range d {
				all[i] = x.Round(10 * time.Millisecond).String()
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", s.name, fault, len(d), median(d).Round(10*time.Millisecond),
				d[len(d)-1].Round(10*time.Millisecond), strings.Join(all, " "))
		}
	}
	tw.Flush()
}

func median(d []time.Duration) time.Duration {
	n := len(d)
	if n%2 == 1 {
		return d[n/2]
	}
	return (d[n/2-1] + d[n/2]) / 2
}
