package main

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/internal/lab"
)

// demoRun is a running demo: the cluster, HAProxy and where to print.
type demoRun struct {
	c        *lab.Cluster
	pgquorum string // the binary, for the commands the tour runs
	out      io.Writer
	dir      string
	haproxy  *lab.HAProxy
	sync     api.SyncMode // failover.synchronous
}

const stepTimeout = 30 * time.Second

// waitSettled waits for node1's majority, then for HAProxy's first checks:
// HAProxy 2.6 starts every server UP until a check says otherwise, so the
// standbys must be seen DOWN and node1 UP after a passed check.
func (d *demoRun) waitSettled(ctx context.Context) error {
	if err := d.waitState(ctx, "node1", api.StatePrimary); err != nil {
		return err
	}
	// pgquorum fails over once its coordinator has adopted the primary.
	err := lab.WaitFor(ctx, stepTimeout, "the first failover epoch", func(ctx context.Context) error {
		var h api.HistoryBody
		if _, err := d.c.Node("node3").GetJSON(ctx, api.PathHistory, &h); err != nil || len(h.Decisions) == 0 {
			return fmt.Errorf("no decision yet (%v)", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, node := range []string{"node2", "node3"} {
		if err := d.waitWriter(ctx, node, "DOWN"); err != nil {
			return err
		}
	}
	return d.haproxy.WaitServer(ctx, "postgres_rw", "node1", stepTimeout, "UP after a passed check", func(s lab.ServerStat) error {
		if s.Status != "UP" || s.CheckStatus != "L7OK" {
			return fmt.Errorf("status %q, last check %q", s.Status, s.CheckStatus)
		}
		return nil
	})
}

// waitWriter waits until HAProxy's read-write listener shows node as status.
func (d *demoRun) waitWriter(ctx context.Context, node, status string) error {
	return d.haproxy.WaitStatus(ctx, "postgres_rw", node, status, stepTimeout)
}

func (d *demoRun) waitState(ctx context.Context, node string, want api.State) error {
	return d.c.Node(node).WaitStatus(ctx, api.PathState, want.HTTPStatus(), stepTimeout)
}

// waitRegistered waits until every node's repmgr.nodes, as its /cluster
// shows it, registers node as typ: repmgr's metadata reaches each node by
// replication, a moment after the operation that changed it.
func (d *demoRun) waitRegistered(ctx context.Context, node, typ string) error {
	return lab.WaitFor(ctx, stepTimeout, node+" registered as "+typ+" everywhere", func(ctx context.Context) error {
		for _, n := range d.c.Nodes {
			var b api.ClusterBody
			if _, err := n.GetJSON(ctx, api.PathCluster, &b); err != nil {
				return err
			}
			for _, cn := range b.Nodes {
				if cn.Name == node && cn.Type != typ {
					return fmt.Errorf("%s's metadata registers %s as %s", n.Name, node, cn.Type)
				}
			}
		}
		return nil
	})
}

// printStates prints every node's /state, the cluster's /realPrimary and
// the latest failover decision.
func (d *demoRun) printStates(ctx context.Context) {
	tw := tabwriter.NewWriter(d.out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  NODE\tHTTP\tSTATE\tVOTES\tFAILOVER\tREASON")
	for _, n := range d.c.Nodes {
		var b api.StateBody
		status, err := n.GetJSON(ctx, api.PathState, &b)
		if err != nil {
			fmt.Fprintf(tw, "  %s\t-\tunreachable\t\t\t%v\n", n.Name, err)
			continue
		}
		if len(b.Reason) > 90 {
			b.Reason = b.Reason[:90] + "…"
		}
		votes, fo := "-", "-"
		if b.State == api.StatePrimary || b.State == api.StateUnknown {
			votes = fmt.Sprintf("%d/%d", b.Votes, b.Needed)
		}
		if b.Failover != nil {
			fo = string(b.Failover.State)
		}
		fmt.Fprintf(tw, "  %s\t%d\t%s\t%s\t%s\t%s\n", n.Name, status, b.State, votes, fo, b.Reason)
	}
	tw.Flush()
	for _, n := range []*lab.Node{d.c.Node("node3")} { // node3 answers throughout
		var rp api.RealPrimaryBody
		status, err := n.GetJSON(ctx, api.PathRealPrimary, &rp)
		if err != nil {
			continue
		}
		name := "none"
		if rp.RealPrimary != nil {
			name = *rp.RealPrimary
		}
		fmt.Fprintf(d.out, "  /realPrimary (asked %s): %d %s", n.Name, status, name)
		if len(rp.Claimants) > 1 {
			fmt.Fprintf(d.out, " — split-brain, claimants %s", strings.Join(rp.Claimants, ", "))
		}
		fmt.Fprintln(d.out)
		d.printSync(ctx)
		var h api.HistoryBody
		if _, err := n.GetJSON(ctx, api.PathHistory, &h); err == nil && len(h.Decisions) > 0 {
			dec := h.Decisions[0]
			fmt.Fprintf(d.out, "  /history: epoch %d, primary %s (coordinator %s)\n", dec.Epoch, dec.Primary, h.Coordinator)
		}
	}
	d.printWrites(ctx)
}

// watchFailover prints every change of a node's /state status or failover
// state, with the time since start, until done says stop or ctx ends.
func (d *demoRun) watchFailover(ctx context.Context, start time.Time, done func() bool) {
	last := map[string]string{}
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for !done() {
		for _, n := range d.c.Nodes {
			var b api.StateBody
			status, err := n.GetJSON(ctx, api.PathState, &b)
			now := fmt.Sprintf("%d %s", status, b.State)
			if err != nil {
				now = "unreachable"
			} else if b.Failover != nil {
				now += ", " + string(b.Failover.State)
			}
			if last[n.Name] != now {
				fmt.Fprintf(d.out, "   +%5.2fs  %s: %s\n", time.Since(start).Seconds(), n.Name, now)
				last[n.Name] = now
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (d *demoRun) printEndpoints() {
	fmt.Fprintln(d.out, "Endpoints (all on 127.0.0.1):")
	tw := tabwriter.NewWriter(d.out, 2, 4, 2, ' ', 0)
	for _, n := range d.c.Nodes {
		fmt.Fprintf(tw, "  %s\tPostgreSQL :%d\tcurl -s %s/state ; curl -s %s/primary ; curl -s %s/realPrimary\n",
			n.Name, n.PGPort, n.QuorumURL(), n.QuorumURL(), n.QuorumURL())
	}
	tw.Flush()
	fmt.Fprintf(d.out, "  also: /cluster /events /metrics /leader /replica?lag=16MB /read-only /health /readiness /liveness\n")
	d.printHAProxyEndpoints()
	fmt.Fprintf(d.out, "  repmgr: runuser -u postgres -- repmgr -f %s cluster show\n", d.c.Node("node1").RepmgrConf())
	fmt.Fprintln(d.out)
	fmt.Fprintln(d.out, "Now:")
}

type step struct {
	say string
	do  func(context.Context) error
}

// tour kills the primary and lets pgquorum fail over by itself, then brings
// the old primary back and rejoins it, and switches over to it again,
// showing what pgquorum and HAProxy answer at each step.
func (d *demoRun) tour(ctx context.Context) error {
	n1 := d.c.Node("node1")
	if err := d.c.CreateWriteTable(ctx, n1); err != nil {
		return err
	}
	if err := d.waitRPOZero(ctx, 2); err != nil {
		return err
	}
	d.printStates(ctx)
	var newPrimary *lab.Node
	kill := "Kill -9 node1's postmaster, as a crash would, while writes go through HAProxy every " + writeEvery.String() + ". pgquorum's coordinator sees node1's database down, waits failover.grace (1 s), commits a new primary through Raft, and it promotes itself with repmgr while the other standby re-points to it"
	if d.sync != api.SyncOff {
		kill += ". With failover.synchronous " + string(d.sync) + ", node1 acknowledged a commit only once a standby of the committed set had it, and only such a standby may be promoted: no acknowledged write is lost"
	}
	steps := []step{
		{kill, func(ctx context.Context) error {
			w, err := d.startWrites(ctx)
			if err != nil {
				return err
			}
			defer w.Stop()
			if err := n1.KillPostmaster(); err != nil {
				return err
			}
			start := time.Now()
			d.watchFailover(ctx, start, func() bool {
				for _, n := range d.c.Nodes[1:] {
					if status, _, err := n.Get(ctx, api.PathState); err == nil && status == 200 {
						newPrimary = n
						return true
					}
				}
				return time.Since(start) > stepTimeout
			})
			if newPrimary == nil {
				return fmt.Errorf("no new primary within %s", stepTimeout)
			}
			if err := d.waitWriter(ctx, newPrimary.Name, "UP"); err != nil {
				return err
			}
			if err := d.stopWrites(ctx, w, newPrimary); err != nil {
				return err
			}
			return d.waitRPOZero(ctx, 1) // the other standby, once it streams from the new primary
		}},
		{"Start old node1 again: it runs as a primary on its old timeline, but it is not the committed primary: 509, Deposed", func(ctx context.Context) error {
			if err := n1.StartPG(ctx); err != nil {
				return err
			}
			return d.waitState(ctx, "node1", api.StateUnknown)
		}},
		{"repmgr node rejoin --force-rewind on node1: it becomes a standby of the new primary", func(ctx context.Context) error {
			if err := n1.StopPG(ctx, "fast"); err != nil {
				return err
			}
			if err := n1.Rejoin(ctx, newPrimary); err != nil {
				return err
			}
			if err := d.waitState(ctx, "node1", api.StateStandby); err != nil {
				return err
			}
			if err := d.waitRegistered(ctx, "node1", "standby"); err != nil {
				return err
			}
			return d.waitRPOZero(ctx, 2) // node1 joins the synchronous set once it streams
		}},
		{"pgquorum switchover --to node1: a planned switchover back, through the Raft log. The primary steps down (503) and stops cleanly, node1 receives its last WAL and is promoted, and the old primary rejoins as a standby", func(ctx context.Context) error {
			ctx, cancel := context.WithTimeout(ctx, 2*stepTimeout)
			defer cancel()
			cmd := exec.CommandContext(ctx, d.pgquorum, "switchover", "--to", "node1", "--wait", stepTimeout.String(), "--url", n1.QuorumURL())
			cmd.Stdout, cmd.Stderr = d.out, d.out
			if err := cmd.Run(); err != nil {
				return fmt.Errorf("pgquorum switchover: %w", err)
			}
			if err := d.waitState(ctx, "node1", api.StatePrimary); err != nil {
				return err
			}
			if err := d.waitWriter(ctx, "node1", "UP"); err != nil {
				return err
			}
			return d.waitRPOZero(ctx, 1) // the new epoch's set, once a standby streams from node1
		}},
	}
	for i, s := range steps {
		fmt.Fprintf(d.out, "\n%d. %s\n", i+1, s.say)
		start := time.Now()
		if err := s.do(ctx); err != nil {
			return fmt.Errorf("step %d: %w", i+1, err)
		}
		fmt.Fprintf(d.out, "   (%s)\n", time.Since(start).Round(10*time.Millisecond))
		d.printStates(ctx)
	}
	fmt.Fprintln(d.out, "\nTour done; stopping everything.")
	return nil
}
