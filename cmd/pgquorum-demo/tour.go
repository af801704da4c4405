package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/tests/lab"
)

// demoRun is a running demo: the cluster, HAProxy and where to print.
type demoRun struct {
	c       *lab.Cluster
	out     io.Writer
	dir     string
	haproxy *lab.HAProxy
}

const stepTimeout = 30 * time.Second

// waitSettled waits for node1's majority, then for HAProxy's first checks:
// HAProxy 2.6 starts every server UP until a check says otherwise, so the
// standbys must be seen DOWN and node1 UP after a passed check.
func (d *demoRun) waitSettled(ctx context.Context) error {
	if err := d.waitState(ctx, "node1", api.StatePrimary); err != nil {
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

// waitVotes waits until node answers want with votes votes.
func (d *demoRun) waitVotes(ctx context.Context, node string, want api.State, votes int) error {
	n := d.c.Node(node)
	return lab.WaitFor(ctx, stepTimeout, fmt.Sprintf("%s %s with %d votes", node, want, votes), func(ctx context.Context) error {
		var b api.StateBody
		if _, err := n.GetJSON(ctx, api.PathState, &b); err != nil {
			return err
		}
		if b.State != want || b.Votes != votes {
			return fmt.Errorf("%s with %d votes: %s", b.State, b.Votes, b.Reason)
		}
		return nil
	})
}

// printStates prints every node's /state and the cluster's /realPrimary.
func (d *demoRun) printStates(ctx context.Context) {
	tw := tabwriter.NewWriter(d.out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  NODE\tHTTP\tSTATE\tVOTES\tREASON")
	for _, n := range d.c.Nodes {
		var b api.StateBody
		status, err := n.GetJSON(ctx, api.PathState, &b)
		if err != nil {
			fmt.Fprintf(tw, "  %s\t-\tunreachable\t\t%v\n", n.Name, err)
			continue
		}
		if len(b.Reason) > 100 {
			b.Reason = b.Reason[:100] + "…"
		}
		votes := "-"
		if b.State == api.StatePrimary || b.State == api.StateUnknown {
			votes = fmt.Sprintf("%d/%d", b.Votes, b.Needed)
		}
		fmt.Fprintf(tw, "  %s\t%d\t%s\t%s\t%s\n", n.Name, status, b.State, votes, b.Reason)
	}
	tw.Flush()
	for _, n := range []*lab.Node{d.c.Node("node3")} { // node3 stays up throughout
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
	}
	d.printWrites(ctx)
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

// tour kills the primary, fails over with repmgr, brings the old primary back
// and rejoins it, showing what pgquorum and HAProxy answer at each step.
func (d *demoRun) tour(ctx context.Context) error {
	n1, n2, n3 := d.c.Node("node1"), d.c.Node("node2"), d.c.Node("node3")
	d.printStates(ctx)
	steps := []step{
		{"Kill node1's PostgreSQL (pg_ctl stop -m immediate), as a crash would", func(ctx context.Context) error {
			if err := n1.StopPG(ctx, "immediate"); err != nil {
				return err
			}
			if err := d.waitState(ctx, "node1", api.StateDown); err != nil {
				return err
			}
			return d.waitWriter(ctx, "node1", "DOWN")
		}},
		{"repmgr standby promote on node2: it runs as primary, but node3's metadata still names node1", func(ctx context.Context) error {
			if err := n2.Promote(ctx); err != nil {
				return err
			}
			// Its own vote, once its metadata records the promotion.
			return d.waitVotes(ctx, "node2", api.StateUnknown, 1)
		}},
		{"repmgr standby follow on node3: node2 gains its majority", func(ctx context.Context) error {
			if err := n3.Follow(ctx); err != nil {
				return err
			}
			if err := d.waitState(ctx, "node2", api.StatePrimary); err != nil {
				return err
			}
			return d.waitWriter(ctx, "node2", "UP")
		}},
		{"Start old node1 again: it runs as a primary and its own metadata names itself — split-brain as PostgreSQL sees it", func(ctx context.Context) error {
			if err := n1.StartPG(ctx); err != nil {
				return err
			}
			return d.waitState(ctx, "node1", api.StateUnknown)
		}},
		{"repmgr node rejoin --force-rewind on node1: it becomes a standby of node2", func(ctx context.Context) error {
			if err := n1.StopPG(ctx, "fast"); err != nil {
				return err
			}
			if err := n1.Rejoin(ctx, n2); err != nil {
				return err
			}
			return d.waitState(ctx, "node1", api.StateStandby)
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
