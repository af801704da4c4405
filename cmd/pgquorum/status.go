package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/pgquorum/pgquorum/api"
)

const statusLong = `Print every node of the cluster as the local pgquorum sees it (GET
<url>/cluster): repmgr's metadata (id, name, location, type, priority,
upstream) and each node's own answer to /state, with votes, replication lag
and failover state; then the failover mode, epoch, committed primary,
coordinator, and the latest decisions.

Exit codes: 0 when exactly one node answers 200 (a real primary), 1 when none
or several do (split-brain), 2 when pgquorum could not be asked.`

func newStatusCmd(stdout io.Writer) *cobra.Command {
	var target localFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the cluster with each node's quorum view, like repmgr cluster show",
		Long:  statusLong,
		Args:  cobra.NoArgs,
	}
	target.register(cmd.Flags(), 5*time.Second)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the /cluster answer as JSON")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		t, err := target.target(cmd.Flags().Changed("url"))
		if err != nil {
			return usageErr(err)
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), t.timeout)
		defer cancel()
		b, err := t.node().Cluster(ctx)
		if err != nil {
			return &exitError{code: exitUnreachable, err: fmt.Errorf("unreachable: %w", err)}
		}
		if asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			if err := enc.Encode(b); err != nil {
				return failedErr(err)
			}
		} else {
			printCluster(stdout, b)
		}
		if b.RealPrimary == nil {
			return failedErr(errors.New(noRealPrimary(b)))
		}
		return nil
	}
	return cmd
}

func noRealPrimary(b api.ClusterBody) string {
	if len(b.Claimants) > 1 {
		return "split-brain: " + strings.Join(b.Claimants, ", ") + " all answer 200"
	}
	return "no real primary: no node answers 200"
}

func printCluster(w io.Writer, b api.ClusterBody) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tLOCATION\tTYPE\tACTIVE\tUPSTREAM\tPRIO\tHTTP\tSTATE\tVOTES\tLAG\tFAILOVER")
	for _, n := range b.Nodes {
		state, code, votes := string(n.State), "-", "-"
		if n.Reachable {
			code = fmt.Sprint(n.Status)
		}
		if state == "" {
			state = "unreachable"
			if n.Reachable {
				state = "?"
			}
		}
		if n.State == api.StatePrimary || n.State == api.StateUnknown {
			votes = fmt.Sprintf("%d/%d", n.Votes, n.Needed)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%t\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", n.ID, n.Name, n.Location, n.Type, n.Active,
			orDash(n.Upstream), n.Priority, code, state, votes, lag(n), orDash(string(n.Failover)))
	}
	tw.Flush()
	printFailover(w, b)
	if b.RealPrimary != nil {
		fmt.Fprintf(w, "real primary: %s (asked %s at %s)\n", *b.RealPrimary, b.Node, b.CheckedAt.Format(time.RFC3339))
	} else {
		fmt.Fprintf(w, "%s (asked %s at %s)\n", noRealPrimary(b), b.Node, b.CheckedAt.Format(time.RFC3339))
	}
}

// printFailover prints the failover status and the latest decisions.
func printFailover(w io.Writer, b api.ClusterBody) {
	f := b.Failover
	if f == nil || f.Mode == api.ModeOff {
		fmt.Fprintln(w, "failover: off (pgquorum only reports)")
		return
	}
	fmt.Fprintf(w, "failover: %s, epoch %d, primary %s, coordinator %s\n", f.Mode, f.Epoch, orDash(f.Primary), orDash(f.Coordinator))
	// The answering node's own state, with which fencing rule would fire
	// on it and when, if one is on its way.
	if f.Reason != "" {
		fmt.Fprintf(w, "%s: %s: %s\n", orDash(b.Node), f.State, f.Reason)
	}
	if f.Paused {
		fmt.Fprintf(w, "PAUSED: no automatic failover, fence or rejoin until pgquorum resume (%s)\n", orDash(f.PauseReason))
	}
	if r := f.Rejoin; r != nil {
		printRejoin(w, b.Node, r)
	}
	printSync(w, f.Synchronous)
	if sw := f.Switchover; sw != nil {
		fmt.Fprintf(w, "switchover in progress: %s -> %s, %s since %s\n", sw.From, sw.To, sw.Phase, sw.Start.Format(time.RFC3339))
	} else if len(b.Switchovers) > 0 {
		sw := b.Switchovers[0]
		fmt.Fprintf(w, "last switchover: %s -> %s at %s, %s %s\n", sw.From, sw.To, sw.Start.Format(time.RFC3339), sw.Phase, sw.Error)
	}
	for _, fe := range b.Fences {
		fmt.Fprintf(w, "  fenced %s at %s: %s\n", fe.Node, fe.At.Format(time.RFC3339), fe.Reason)
	}
	for _, d := range b.Decisions {
		from := ""
		if d.OldPrimary != "" {
			from = d.OldPrimary + " -> "
		}
		fmt.Fprintf(w, "  epoch %d at %s: %s%s: %s\n", d.Epoch, d.At.Format(time.RFC3339), from, d.Primary, d.Reason)
	}
}

func lag(n api.ClusterNode) string {
	if n.LagBytes == nil && n.LagSeconds == nil {
		if n.Streaming != nil && !*n.Streaming {
			return "not streaming"
		}
		return "-"
	}
	var parts []string
	if n.LagBytes != nil {
		parts = append(parts, fmt.Sprintf("%d B", *n.LagBytes))
	}
	if n.LagSeconds != nil {
		parts = append(parts, fmt.Sprintf("%.1fs", *n.LagSeconds))
	}
	return strings.Join(parts, ", ")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// printRejoin prints the answering node's rejoin under way.
func printRejoin(w io.Writer, node string, r *api.RejoinStatus) {
	fmt.Fprintf(w, "%s: rejoining %s (epoch %d), attempt %d", orDash(node), r.Primary, r.Epoch, r.Attempt)
	switch {
	case r.Running:
		fmt.Fprint(w, " running")
	case r.NextAt != nil:
		fmt.Fprintf(w, ", next at %s", r.NextAt.Format(time.RFC3339))
	}
	if r.LastError != "" {
		fmt.Fprintf(w, ", last error: %s", r.LastError)
	}
	if r.Reason != "" {
		fmt.Fprintf(w, " (%s)", r.Reason)
	}
	fmt.Fprintln(w)
	if r.Permanent {
		fmt.Fprintf(w, "REJOIN NEEDS THE OPERATOR: %s\n", r.ManualStep)
	}
}

// printSync prints failover.synchronous: the mode, the committed set, the
// primary's actual synchronous_standby_names and the RPO the cluster runs
// with.
func printSync(w io.Writer, s *api.SyncStatus) {
	if s == nil || s.Mode == api.SyncOff {
		fmt.Fprintln(w, "synchronous: off (asynchronous replication)")
		return
	}
	actual := "unknown"
	if s.Seen {
		actual = fmt.Sprintf("%q", s.StandbyNames)
	}
	fmt.Fprintf(w, "synchronous: %s, ANY %d of set [%s], primary's synchronous_standby_names %s: %s\n",
		s.Mode, s.Count, strings.Join(s.Set, ", "), actual, s.RPO)
}
