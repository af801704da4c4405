package failover

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/consensus"
	"github.com/pgquorum/pgquorum/repmgr"
)

// oneShot are the actions tried once per decision: a failure is reported
// and left to the coordinator or the operator, never retried in a loop.
func oneShot(kind api.ActionKind) bool {
	return kind == api.ActionPromote || kind == api.ActionDemote || kind == api.ActionRejoin || kind == api.ActionFence
}

// maxAttempts bounds how often an action is tried for one decision.
const maxAttempts = 3

type actKey struct {
	epoch uint64
	kind  api.ActionKind
}

// act runs this node's part of the committed decisions: on every change of
// the replicated state, and every refresh interval to see the effects.
func (c *Controller) act(ctx context.Context) {
	t := time.NewTicker(c.opts.RefreshInterval)
	defer t.Stop()
	attempts := map[actKey]*attempt{}
	for {
		changed := c.fsm.Changed()
		c.step(ctx, attempts)
		c.noteState(ctx)
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-t.C:
		}
	}
}

type attempt struct {
	n    int
	last time.Time
	ok   bool
}

// step does what the latest decision asks of this node, if anything. It
// acts only on a committed decision and only while it hears from a leader,
// so that a node catching up on an old log does not act on a stale one.
func (c *Controller) step(ctx context.Context, attempts map[actKey]*attempt) {
	st := c.fsm.State()
	f := c.local.Facts(ctx)
	c.flushFences(ctx)
	// Fencing does not wait for a leader: a primary cut off from every
	// peer is the one it is for.
	c.stepFence(ctx, st, f, attempts)
	d, ok := st.Latest()
	if !ok || !c.ready() {
		return
	}
	if c.stepSwitchover(ctx, st, f, attempts) {
		return
	}
	if st.Paused() {
		return // no automatic action while paused
	}
	if f.ProbeErr != nil || f.IdentityErr != nil {
		c.stepRejoin(ctx, st, attempts)
		return
	}
	if c.opts.Mode == api.ModeRepmgrd {
		return // repmgrd promotes and follows; failover-check gates it
	}
	me, registered := repmgr.ByName(f.Facts.Nodes, c.opts.Self)
	primary, known := repmgr.ByID(f.Facts.Nodes, d.PrimaryID)
	switch {
	case !registered || !known || !f.Facts.InRecovery:
		return // a primary that is not the committed one is for fencing to handle
	case d.Primary == c.opts.Self:
		// try logs a failure and reports it in the node's progress.
		_ = c.try(ctx, attempts, d, api.ActionPromote, func(ctx context.Context) error {
			out, err := c.actions.Promote(ctx, d)
			c.opts.Logger.Info("promote command", "epoch", d.Epoch, "output", out, "error", err)
			return err
		})
		return
	case me.Type != repmgr.TypeStandby:
		// A former primary coming back as a standby is rejoined, not
		// followed: leave it to repmgr node rejoin.
		return
	case me.UpstreamID != nil && *me.UpstreamID == primary.ID:
		return // repmgr already records it as this standby's upstream
	}
	// Follow a committed primary only while it answers: never point a
	// standby at a dead one.
	inRecovery, err := c.actions.InRecovery(ctx, primary)
	if err != nil {
		return
	}
	// Until its promotion is recorded, stream from the chosen node at once,
	// so as to vouch for it the moment it is promoted.
	if up, streams := consensus.Upstream(f.Facts); d.PromotedAt == nil && (!streams || up.ID != primary.ID) {
		_ = c.try(ctx, attempts, d, api.ActionRepoint, func(ctx context.Context) error {
			return c.actions.Repoint(ctx, primary)
		})
	}
	if inRecovery {
		return // follow it the repmgr way once it is promoted
	}
	_ = c.try(ctx, attempts, d, api.ActionFollow, func(ctx context.Context) error {
		out, err := c.actions.Follow(ctx, d, primary)
		c.opts.Logger.Info("follow command", "epoch", d.Epoch, "primary", d.Primary, "output", out, "error", err)
		return err
	})
}

// errNotTried is try's answer when the action was not run this time.
var errNotTried = errors.New("not tried")

// try runs an action for decision d unless it already succeeded, failed too
// often, or failed too recently; a newer decision cancels it.
func (c *Controller) try(ctx context.Context, attempts map[actKey]*attempt, d api.Decision, kind api.ActionKind, fn func(context.Context) error) error {
	k := actKey{d.Epoch, kind}
	a := attempts[k]
	if a == nil {
		a = &attempt{}
		attempts[k] = a
	}
	now := c.opts.Now()
	if a.ok || a.n >= maxAttempts || (a.n > 0 && now.Sub(a.last) < 10*c.opts.RefreshInterval) {
		return errNotTried
	}
	a.n++
	a.last = now
	c.setActing(ctx, kind)
	ctx, cancel := context.WithTimeoutCause(ctx, c.opts.CommandTimeout,
		fmt.Errorf("failover.command_timeout (%s) exceeded", c.opts.CommandTimeout))
	ctx, cancelCause := context.WithCancelCause(ctx)
	stop := c.cancelOnNewEpoch(ctx, cancelCause, d.Epoch)
	err := fn(ctx)
	stop()
	cancelCause(nil)
	cancel()
	c.setActing(ctx, "")
	a.ok = err == nil
	rec := &api.Progress{Epoch: d.Epoch, Kind: kind, Done: err == nil, Failed: err != nil && a.n >= maxAttempts}
	if oneShot(kind) && err != nil {
		// The coordinator chooses again (promote), aborts the switchover
		// (demote), or the operator takes over (rejoin, fence).
		rec.Failed = true
		a.n = maxAttempts
	}
	if err != nil {
		rec.Error = oneLine(err)
		c.opts.Logger.Error("failover action failed", "epoch", d.Epoch, "action", kind, "attempt", a.n, "error", err)
	}
	c.mu.Lock()
	c.done[d.Epoch] = rec
	c.mu.Unlock()
	return err
}

func (c *Controller) setActing(ctx context.Context, kind api.ActionKind) {
	c.mu.Lock()
	c.acting = kind
	c.mu.Unlock()
	c.noteState(ctx)
}

// cancelOnNewEpoch cancels an action as soon as a decision newer than epoch
// is applied: a promote command must not go on once another node was chosen.
func (c *Controller) cancelOnNewEpoch(ctx context.Context, cancel context.CancelCauseFunc, epoch uint64) (stop func()) {
	done := make(chan struct{})
	go func() {
		for {
			changed := c.fsm.Changed()
			if now := c.fsm.State().Epoch; now != epoch {
				cancel(fmt.Errorf("the decision of epoch %d was superseded by epoch %d", epoch, now))
				return
			}
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-changed:
			}
		}
	}()
	return func() { close(done) }
}

// Commands are the real Actions: repmgr's command line for promote and
// follow (or the operator's commands), and a reload for the re-point.
type Commands struct {
	CLI            repmgr.CLI
	Local          *repmgr.Local
	Service        repmgr.Service // stops and starts the local instance as repmgr does
	Self           string
	PromoteCommand string // "": repmgr standby promote
	FollowCommand  string // "": repmgr standby follow --upstream-node-id
	RejoinCommand  string // "": repmgr node rejoin --force-rewind
	FenceCommand   string // failover.fence when it is a command
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
func (x Commands) Promote(ctx context.Context, d api.Decision) (string, error) {
	if x.PromoteCommand == "" {
		return x.CLI.Promote(ctx)
	}
	return x.CLI.Runner.Shell(ctx, x.PromoteCommand, decisionEnv(d, x.Self, repmgr.Node{})...)
}

// Follow implements Actions.
func (x Commands) Follow(ctx context.Context, d api.Decision, primary repmgr.Node) (string, error) {
	if x.FollowCommand == "" {
		return x.CLI.FollowUpstream(ctx, primary.ID)
	}
	return x.CLI.Runner.Shell(ctx, x.FollowCommand, decisionEnv(d, x.Self, primary)...)
}

// Repoint implements Actions. With an operator's follow command it does
// nothing: that command alone decides how this standby follows.
func (x Commands) Repoint(ctx context.Context, primary repmgr.Node) error {
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
func (x Commands) InRecovery(ctx context.Context, n repmgr.Node) (bool, error) {
	return repmgr.InRecovery(ctx, n.Conninfo)
}

// Checkpoint implements Actions.
func (x Commands) Checkpoint(ctx context.Context) error { return x.Local.Checkpoint(ctx) }

// Stop implements Actions.
func (x Commands) Stop(ctx context.Context) (string, error) { return x.Service.Stop(ctx) }

// Start implements Actions.
func (x Commands) Start(ctx context.Context) (string, error) { return x.Service.Start(ctx) }

// Stopped implements Actions.
func (x Commands) Stopped(ctx context.Context) (repmgr.Control, bool, error) {
	running, err := x.Service.Running(ctx)
	if err != nil || running {
		return repmgr.Control{}, running, err
	}
	ctl, err := x.Service.Controldata(ctx)
	return ctl, false, err
}

// Rejoin implements Actions: repmgr node rejoin to primary, rewinding
// when the histories diverged, or the operator's command.
func (x Commands) Rejoin(ctx context.Context, d api.Decision, primary repmgr.Node) (string, error) {
	if err := repmgr.CheckpointAt(ctx, primary.Conninfo); err != nil {
		return "", fmt.Errorf("checkpoint on %s before the rejoin (so that pg_rewind sees its timeline): %w", primary.Name, err)
	}
	if x.RejoinCommand == "" {
		return x.CLI.Rejoin(ctx, primary.Conninfo, true)
	}
	return x.CLI.Runner.Shell(ctx, x.RejoinCommand, decisionEnv(d, x.Self, primary)...)
}

// Fence implements Actions: the operator's fence command.
func (x Commands) Fence(ctx context.Context, reason string) (string, error) {
	return x.CLI.Runner.Shell(ctx, x.FenceCommand, "PGQUORUM_NODE="+x.Self, "PGQUORUM_FENCE_REASON="+reason)
}
