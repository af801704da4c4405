package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/client"
)

func newSwitchoverCmd(stdout io.Writer) *cobra.Command {
	var lf localFlags
	var to string
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "switchover --to NODE",
		Short: "Planned switchover of the primary to the standby NODE, through the Raft log",
		Long: `Ask the cluster for a planned switchover to the standby NODE, and print each
step as it happens. pgquorum checks that NODE streams from the primary within
failover.switchover_max_lag, then the primary steps down (503 at once, so
HAProxy drains it) and stops cleanly, NODE receives its last WAL and is
promoted, the other standbys follow it, and the old primary rejoins as a
standby. A failure before the promotion starts the old primary again as it
was.

Exit 0 when the switchover is done; 1 when it was refused, aborted, left
the old primary out, or is still going on after --wait.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, err := lf.target(cmd.Flags().Changed("url"))
			if err != nil {
				return usageErr(err)
			}
			if to == "" {
				return usageErr(errors.New("--to: want the name of the standby to switch over to"))
			}
			if wait < 0 {
				return usageErr(fmt.Errorf("--wait: want a duration of zero or more, got %s", wait))
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), lf.timeout)
			res, err := t.node().Switchover(ctx, api.SwitchoverRequest{To: to})
			cancel()
			if err != nil {
				return failedErr(fmt.Errorf("switchover: %w", err))
			}
			sw := res.Switchover
			printed := printSteps(stdout, *sw, 0)
			if wait == 0 {
				return nil
			}
			return followSwitchover(cmd.Context(), stdout, t, *sw, printed, wait)
		},
	}
	lf.register(cmd.Flags(), 15*time.Second)
	cmd.Flags().StringVar(&to, "to", "", "the standby to promote")
	cmd.Flags().DurationVar(&wait, "wait", 60*time.Second, "how long to follow the switchover (0: return once it started)")
	return cmd
}

// followSwitchover polls GET /switchover, printing new steps, until the
// switchover is over or wait has passed.
func followSwitchover(ctx context.Context, w io.Writer, t target, sw api.Switchover, printed int, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	node := t.node()
	for {
		if sw.Phase == api.PhaseDone || sw.Phase == api.PhaseAborted {
			break
		}
		if time.Now().After(deadline) {
			return failedErr(fmt.Errorf("switchover from %s to %s still %s after --wait %s", sw.From, sw.To, sw.Phase, wait))
		}
		select {
		case <-ctx.Done():
			return failedErr(ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
		cctx, cancel := context.WithTimeout(ctx, t.timeout)
		status, cur, err := node.LatestSwitchover(cctx)
		cancel()
		if err != nil || status != 200 || cur.ID != sw.ID {
			continue // a node restarting or catching up: ask again
		}
		sw = cur
		printed = printSteps(w, sw, printed)
	}
	switch {
	case sw.Phase == api.PhaseAborted:
		return failedErr(fmt.Errorf("switchover aborted: %s", sw.Error))
	case sw.Error != "":
		return failedErr(fmt.Errorf("switchover done, but: %s", sw.Error))
	}
	fmt.Fprintf(w, "switchover done: %s is the primary, %s a standby (%s)\n", sw.To, sw.From, time.Since(sw.Start).Round(time.Millisecond))
	return nil
}

// printSteps prints the steps of sw from the printed-th on, and returns
// how many are printed.
func printSteps(w io.Writer, sw api.Switchover, printed int) int {
	for _, s := range sw.Steps[min(printed, len(sw.Steps)):] {
		fmt.Fprintf(w, "%s  %s\n", s.At.Local().Format("15:04:05.000"), s.What)
	}
	return max(printed, len(sw.Steps))
}

func newPauseCmd(stdout io.Writer) *cobra.Command {
	var lf localFlags
	var reason string
	cmd := &cobra.Command{
		Use:   "pause",
		Short: "Pause automatic failover cluster-wide (maintenance mode), through the Raft log",
		Long: `Pause automatic failover on every node: no failover, fence or rejoin runs
until "pgquorum resume". Every check keeps answering; /state, /cluster,
"pgquorum status" and the metrics show the pause.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runSimpleAction(cmd, stdout, lf, func(ctx context.Context, n client.Node) (api.CommandResult, error) {
				return n.Pause(ctx, api.PauseRequest{Reason: reason})
			}, "automatic failover paused")
		},
	}
	lf.register(cmd.Flags(), 15*time.Second)
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the others to read in status")
	return cmd
}

func newResumeCmd(stdout io.Writer) *cobra.Command {
	var lf localFlags
	cmd := &cobra.Command{
		Use:   "resume",
		Short: "Resume automatic failover after pgquorum pause",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runSimpleAction(cmd, stdout, lf, func(ctx context.Context, n client.Node) (api.CommandResult, error) {
				return n.Resume(ctx)
			}, "automatic failover resumed")
		},
	}
	lf.register(cmd.Flags(), 15*time.Second)
	return cmd
}

// runSimpleAction runs an action that has nothing to follow.
func runSimpleAction(cmd *cobra.Command, w io.Writer, lf localFlags, act func(context.Context, client.Node) (api.CommandResult, error), done string) error {
	t, err := lf.target(cmd.Flags().Changed("url"))
	if err != nil {
		return usageErr(err)
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), lf.timeout)
	defer cancel()
	if _, err := act(ctx, t.node()); err != nil {
		return failedErr(err)
	}
	fmt.Fprintln(w, done)
	return nil
}

func newFailoverCheckCmd(stdout io.Writer) *cobra.Command {
	var lf localFlags
	cmd := &cobra.Command{
		Use:   "failover-check",
		Short: "repmgrd's failover_validation_command: may repmgrd promote this node?",
		Long: `With failover.mode repmgrd, set in repmgr.conf:

  failover_validation_command='/usr/bin/pgquorum failover-check --config /etc/pgquorum/pgquorum.yaml'

It asks the local pgquorum, prints one line and exits 0 only when the Raft
group of the pgquorum daemons has committed this node as the successor of a
primary that a majority (by consensus.scope) saw lost, and no repmgrd was
allowed to promote for that decision before: two repmgrd instances are never
both allowed. Any doubt, error or timeout exits 1, within --timeout (the
wait for the decision, 10 s by default: repmgrd runs the check with no
timeout of its own and retries after election_rerun_interval).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, err := lf.target(cmd.Flags().Changed("url"))
			if err != nil {
				return usageErr(err)
			}
			// The daemon waits for the decision up to the timeout less
			// a margin for the answer to come back.
			wait := max(lf.timeout-time.Second, lf.timeout/2)
			ctx, cancel := context.WithTimeout(cmd.Context(), lf.timeout)
			defer cancel()
			status, ans, err := t.node().FailoverCheck(ctx, api.FailoverCheckRequest{WaitMS: wait.Milliseconds()})
			switch {
			case err != nil:
				fmt.Fprintf(stdout, "refused: no answer from pgquorum: %v\n", err)
				return &exitError{code: exitFailed, err: errors.New("failover-check: refused")}
			case status != 200 || !ans.Allowed:
				fmt.Fprintf(stdout, "refused: %s\n", ans.Reason)
				return &exitError{code: exitFailed, err: errors.New("failover-check: refused")}
			}
			fmt.Fprintf(stdout, "allowed: %s\n", ans.Reason)
			return nil
		},
	}
	lf.register(cmd.Flags(), 10*time.Second)
	return cmd
}
