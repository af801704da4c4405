package failover

import (
	"context"
	"fmt"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/repmgr"
)

// RepmgrActions are the real Actions: repmgr's command line for promote and
// follow (or failover.promote_command and follow_command), a reload for
// the re-point, the service's stop and start, the fence command; the
// rejoin's steps are the Rejoiner's.
type RepmgrActions struct {
	CLI            repmgr.CLI
	Local          *repmgr.Local
	Service        repmgr.Service // stops and starts the local instance as repmgr does
	Self           string
	PromoteCommand string // "": repmgr standby promote
	FollowCommand  string // "": repmgr standby follow --upstream-node-id
	FenceCommand   string // failover.fence when it is a command
	Rejoiner       Rejoiner
}

func decisionEnv(d api.Decision, self string, primary repmgr.Node) []string {
	return []string{
		"PGQUORUM_NODE=" + self,
		fmt.Sprintf("PGQUORUM_EPOCH=%d", d.Epoch),
		"PGQUORUM_NEW_PRIMARY=" + d.Primary,
		fmt.Sprintf("PGQUORUM_NEW_PRIMARY_ID=%d", d.PrimaryID),
		"PGQUORUM_NEW_PRIMARY_CONNINFO=" + primary.Conninfo,
		"PGQUORUM_OLD_PRIMARY=" + d.OldPrimary,
	}
}

// Promote implements Actions.
func (x RepmgrActions) Promote(ctx context.Context, d api.Decision) (string, error) {
	if x.PromoteCommand == "" {
		return x.CLI.Promote(ctx)
	}
	return x.CLI.Runner.Shell(ctx, x.PromoteCommand, decisionEnv(d, x.Self, repmgr.Node{})...)
}

// Follow implements Actions.
func (x RepmgrActions) Follow(ctx context.Context, d api.Decision, primary repmgr.Node) (string, error) {
	if x.FollowCommand == "" {
		return x.CLI.FollowUpstream(ctx, primary.ID)
	}
	return x.CLI.Runner.Shell(ctx, x.FollowCommand, decisionEnv(d, x.Self, primary)...)
}

// Repoint implements Actions. With an operator's follow command it does
// nothing: that command alone decides how this standby follows.
func (x RepmgrActions) Repoint(ctx context.Context, primary repmgr.Node) error {
	if x.FollowCommand != "" {
		return nil
	}
	conninfo, err := repmgr.ReplicationConninfo(primary, x.Self)
	if err != nil {
		return err
	}
	return x.Local.Repoint(ctx, conninfo)
}

// InRecovery implements Actions.
func (x RepmgrActions) InRecovery(ctx context.Context, n repmgr.Node) (bool, error) {
	return repmgr.InRecovery(ctx, n.Conninfo)
}

// Timelines implements Actions.
func (x RepmgrActions) Timelines(ctx context.Context, n repmgr.Node) (repmgr.Timelines, error) {
	return repmgr.PrimaryTimelines(ctx, n.Conninfo)
}

// StandbyEnd implements Actions.
func (x RepmgrActions) StandbyEnd(ctx context.Context) (repmgr.StandbyEnd, error) {
	return x.Local.StandbyEnd(ctx)
}

// Checkpoint implements Actions.
func (x RepmgrActions) Checkpoint(ctx context.Context) error { return x.Local.Checkpoint(ctx) }

// Stop implements Actions.
func (x RepmgrActions) Stop(ctx context.Context) (string, error) { return x.Service.Stop(ctx) }

// Start implements Actions.
func (x RepmgrActions) Start(ctx context.Context) (string, error) { return x.Service.Start(ctx) }

// Stopped implements Actions.
func (x RepmgrActions) Stopped(ctx context.Context) (repmgr.Control, bool, error) {
	running, err := x.Service.Running(ctx)
	if err != nil || running {
		return repmgr.Control{}, running, err
	}
	ctl, err := x.Service.Controldata(ctx)
	return ctl, false, err
}

// RunningServer implements Actions.
func (x RepmgrActions) RunningServer(context.Context) (repmgr.RunningServer, error) {
	return x.Service.RunningServer()
}

// Rejoin implements Actions: one attempt of the Rejoiner (rejoin_run.go).
func (x RepmgrActions) Rejoin(ctx context.Context, d api.Decision, primary repmgr.Node) (string, error) {
	return x.Rejoiner.Rejoin(ctx, d, primary)
}

// Fence implements Actions: failover.fence when it is a command.
func (x RepmgrActions) Fence(ctx context.Context, reason string) (string, error) {
	return x.CLI.Runner.Shell(ctx, x.FenceCommand, "PGQUORUM_NODE="+x.Self, "PGQUORUM_FENCE_REASON="+reason)
}
