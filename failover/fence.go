package failover

import (
	"context"
	"fmt"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/consensus"
	"github.com/pgquorum/pgquorum/repmgr"
)

// FenceView is what decides whether this node must fence its database.
type FenceView struct {
	Policy     string
	Self       string
	DBUp       bool
	InRecovery bool
	Registered bool
	// Ready is set when this node hears from a Raft leader, so that
	// Primary, the committed primary, is current.
	Ready   bool
	Primary string
	// PrimaryRuns is set when the committed primary answers a direct
	// probe as a running primary: only then is this node a second one. A
	// node promoted outside pgquorum while the committed primary is down
	// is adopted, not fenced.
	PrimaryRuns bool
	Epoch       uint64
	UnknownFor  time.Duration // how long the local verdict has been 509
	FenceAfter  time.Duration
	Paused      bool
}

// FenceReason says why this node must be fenced now, "" when it need not:
// it runs as primary without being the committed primary, or it has
// answered 509 for FenceAfter.
func FenceReason(v FenceView) string {
	switch {
	case v.Policy == api.FenceOff || v.Policy == "" || v.Paused:
		return ""
	case !v.DBUp || v.InRecovery || !v.Registered:
		return ""
	case v.Ready && v.Primary != "" && v.Primary != v.Self && v.PrimaryRuns:
		return fmt.Sprintf("runs as primary, but %s is the committed primary of epoch %d, and runs as one", v.Primary, v.Epoch)
	case v.FenceAfter > 0 && v.UnknownFor >= v.FenceAfter:
		return fmt.Sprintf("answered 509 (running as primary without a majority) for %s, failover.fence_after %s",
			v.UnknownFor.Round(time.Second), v.FenceAfter)
	}
	return ""
}

// stepFence fences this node when FenceReason says so, once per episode.
// An episode ends when its database stops (the fence did its work; a
// later start as primary is a new one) or the reason no longer holds.
func (c *Controller) stepFence(ctx context.Context, st Replicated, f *consensus.Snapshot, attempts map[actKey]*attempt) {
	up := f.ProbeErr == nil && f.IdentityErr == nil
	now := c.opts.Now()
	unknownFor := time.Duration(0)
	if s := c.local.Snapshot(ctx); up && s != nil && s.Verdict.State == api.StateUnknown {
		c.mu.Lock()
		if c.unknownSince.IsZero() {
			c.unknownSince = now
		}
		unknownFor = now.Sub(c.unknownSince)
		c.mu.Unlock()
	} else {
		c.mu.Lock()
		c.unknownSince = time.Time{}
		c.mu.Unlock()
	}
	_, registered := repmgr.ByName(f.Facts.Nodes, c.opts.Self)
	v := FenceView{Policy: c.opts.Fence, Self: c.opts.Self, DBUp: up, InRecovery: f.Facts.InRecovery,
		Registered: registered, Ready: c.ready(), Primary: st.Primary, Epoch: st.Epoch, UnknownFor: unknownFor,
		FenceAfter: c.opts.FenceAfter, Paused: st.Paused()}
	if v.Policy != api.FenceOff && up && !v.InRecovery && v.Ready && st.Primary != "" && st.Primary != c.opts.Self {
		// Probed only when it would decide.
		if p, ok := repmgr.ByName(c.local.KnownNodes(), st.Primary); ok {
			pctx, cancel := context.WithTimeout(ctx, c.opts.PeerTimeout)
			inRecovery, err := c.actions.InRecovery(pctx, p)
			cancel()
			v.PrimaryRuns = err == nil && !inRecovery
		}
	}
	why := FenceReason(v)
	c.mu.Lock()
	fenced, demoting := c.fencedFor, c.demotedFor != 0
	if !up || why == "" {
		c.fencedFor = ""
	}
	if up && (f.Facts.InRecovery || why == "") {
		c.lastFence = ""
	}
	c.mu.Unlock()
	// A standby again (rejoined), or a primary the reason no longer holds
	// for: it may answer as what it is.
	if up && (f.Facts.InRecovery || why == "") && !(demoting && !f.Facts.InRecovery) && c.local.SteppingDown() != "" {
		c.local.StepDown("")
		if f.Facts.InRecovery {
			c.mu.Lock()
			c.demotedFor = 0
			c.mu.Unlock()
		}
	}
	if why == "" || fenced != "" {
		return
	}
	c.mu.Lock()
	c.fencedFor, c.lastFence = why, why
	c.mu.Unlock()
	c.local.StepDown("fenced: " + why)
	c.opts.Logger.Error("fencing this node", "policy", c.opts.Fence, "reason", why)
	// Attempts are per epoch; a node fenced twice in one epoch (stopped,
	// then started again by hand as primary) is fenced again.
	delete(attempts, actKey{st.Epoch, api.ActionFence})
	_ = c.try(ctx, attempts, api.Decision{Epoch: st.Epoch}, api.ActionFence, func(ctx context.Context) error {
		var out string
		var err error
		if c.opts.Fence == api.FenceStop {
			out, err = c.actions.Stop(ctx)
		} else {
			out, err = c.actions.Fence(ctx, why)
		}
		c.opts.Logger.Info("fence command", "output", out, "error", err)
		return err
	})
	c.mu.Lock()
	c.fences = append(c.fences, api.Fence{Node: c.opts.Self, At: now.UTC(), Reason: why})
	c.mu.Unlock()
}

// flushFences records this node's fences in the Raft log, through the
// coordinator, in the background: an unreachable coordinator must not hold
// up the actor. Those not recorded wait for the next step.
func (c *Controller) flushFences(ctx context.Context) {
	c.mu.Lock()
	pending := c.fences
	c.fences = nil
	busy := c.flushing
	c.flushing = c.flushing || len(pending) > 0
	c.mu.Unlock()
	if busy {
		c.requeue(pending)
		return
	}
	if len(pending) == 0 {
		return
	}
	go func() {
		c.recordFences(ctx, pending)
		c.mu.Lock()
		c.flushing = false
		c.mu.Unlock()
	}()
}

func (c *Controller) recordFences(ctx context.Context, pending []api.Fence) {
	for i, f := range pending {
		if c.coordinator() == "" {
			c.requeue(pending[i:])
			return
		}
		res := c.Command(ctx, api.Command{Kind: api.CommandFence, Reason: f.Reason, At: f.At})
		if !res.OK {
			c.opts.Logger.Debug("record the fence", "error", res.Error)
			c.requeue(pending[i:])
			return
		}
	}
}

func (c *Controller) requeue(f []api.Fence) {
	c.mu.Lock()
	c.fences = append(f, c.fences...)
	c.mu.Unlock()
}

// stepRejoin brings this node back as a standby when it is a former
// primary whose database is stopped (cleanly, by a fence, or by a crash)
// and failover.auto_rejoin is set.
func (c *Controller) stepRejoin(ctx context.Context, st Replicated, attempts map[actKey]*attempt) {
	if !c.opts.AutoRejoin {
		return
	}
	d, ok := st.Latest()
	if !ok || d.Primary == c.opts.Self || d.PromotedAt == nil {
		return
	}
	c.rejoin(ctx, d, attempts)
}

// rejoin runs the rejoin command to the primary of d, once per decision,
// when the local instance is a stopped former primary and d's primary
// runs as one.
func (c *Controller) rejoin(ctx context.Context, d api.Decision, attempts map[actKey]*attempt) {
	if a := attempts[actKey{d.Epoch, api.ActionRejoin}]; a != nil && (a.ok || a.n >= maxAttempts) {
		return
	}
	ctl, running, err := c.actions.Stopped(ctx)
	if err != nil || running || (ctl.State != "shut down" && ctl.State != "in production") {
		// Running (pgquorum merely cannot reach it), or a standby's
		// control file: not a former primary to rejoin.
		return
	}
	primary, ok := repmgr.ByID(c.local.KnownNodes(), d.PrimaryID)
	if !ok {
		return
	}
	if inRecovery, err := c.actions.InRecovery(ctx, primary); err != nil || inRecovery {
		return // never rejoin a primary that does not answer as one
	}
	_ = c.try(ctx, attempts, d, api.ActionRejoin, func(ctx context.Context) error {
		out, err := c.actions.Rejoin(ctx, d, primary)
		c.opts.Logger.Info("rejoin command", "epoch", d.Epoch, "primary", d.Primary, "control_file_state", ctl.State, "output", out, "error", err)
		return err
	})
}
