package failover

import (
	"context"
	"fmt"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/consensus"
	"github.com/pgquorum/pgquorum/repmgr"
)

// Fencing stops (or runs the operator's command on) a primary that has
// been replaced, or may have been without this node knowing, and only
// then; docs/failover.md ("Fencing and rejoin") gives the argument.
//
//   - Rule 1: it has applied a committed decision naming another primary,
//     hears a coordinator, and that primary answers as a running one.
//   - Rule 2: it has heard no coordinator for failover.fence_after (the
//     Raft majority is out of its reach, so a decision may have been made
//     without it), and either it is not the committed primary of the latest
//     epoch it knows, or fewer than a majority of its registered standbys
//     stream live from it (a replacement is a standby that left its stream).
//
// Never at epoch 0, nor during the quiet period after a start, nor, by
// rule 2's terms, while it is the committed primary followed live by a
// majority of its standbys: pgquorum's own outage (no coordinator, no
// votes) is no replacement.

// FenceView is what decides whether this node must fence its database.
type FenceView struct {
	Policy     string
	Self       string
	DBUp       bool
	InRecovery bool
	Registered bool
	// Ready is set when this node hears from a coordinator, so that
	// Primary, the committed primary, is current.
	Ready   bool
	Primary string
	// PrimaryRuns is set when the committed primary answers a direct
	// probe as a running primary: only then is this node a second one. A
	// node promoted outside pgquorum while the committed primary is down
	// is adopted, not fenced.
	PrimaryRuns bool
	Epoch       uint64
	NotReadyFor time.Duration // how long this node has heard no coordinator (after the quiet period)
	FenceAfter  time.Duration
	// Standbys is the number of registered, active standbys besides this
	// node; Live, those among them streaming live from it.
	Standbys, Live int
	Paused         bool
	// Quiet is set during the quiet period after this pgquorum started:
	// its voters' leases and router hold from before, and its own, keep a
	// healthy primary at 509 for that long.
	Quiet bool
}

// followed tells whether a majority of this node's registered standbys
// stream live from it.
func (v FenceView) followed() bool { return 2*v.Live > v.Standbys }

// replacedUnseen is rule 2's condition besides time: what makes a node
// that cannot hear the Raft majority a possibly replaced one.
func (v FenceView) replacedUnseen() string {
	if v.Primary != v.Self {
		return fmt.Sprintf("%s is the committed primary of epoch %d", orNone(v.Primary), v.Epoch)
	}
	if !v.followed() {
		return fmt.Sprintf("only %d of %d standbys stream from it", v.Live, v.Standbys)
	}
	return ""
}

// fenceable tells whether any rule may apply to this node now.
func (v FenceView) fenceable() bool {
	return v.Policy != api.FenceOff && v.Policy != "" && !v.Paused && v.DBUp && !v.InRecovery && v.Registered
}

// FenceReason says why this node must be fenced now, and by which rule;
// "" when it need not.
func FenceReason(v FenceView) string {
	if !v.fenceable() {
		return ""
	}
	if v.Ready && v.Primary != "" && v.Primary != v.Self && v.PrimaryRuns {
		return fmt.Sprintf("rule 1: runs as primary, but %s is the committed primary of epoch %d, and runs as one", v.Primary, v.Epoch)
	}
	if v.Epoch == 0 || v.Quiet || v.FenceAfter <= 0 || v.NotReadyFor < v.FenceAfter {
		return ""
	}
	if why := v.replacedUnseen(); why != "" {
		return fmt.Sprintf("rule 2: no coordinator for %s (failover.fence_after %s), and %s",
			v.NotReadyFor.Round(time.Second), v.FenceAfter, why)
	}
	return ""
}

// FenceOutlook says, for pgquorum status, which rule would fire on this
// node and in how long; "" when none is on its way.
func FenceOutlook(v FenceView) string {
	if !v.fenceable() || v.Epoch == 0 || v.FenceAfter <= 0 {
		return ""
	}
	why := v.replacedUnseen()
	switch {
	case v.Quiet:
		return ""
	case why != "" && !v.Ready:
		return fmt.Sprintf("fence: rule 2 would fire in %s (no coordinator for %s, and %s)",
			max(0, v.FenceAfter-v.NotReadyFor).Round(time.Second), v.NotReadyFor.Round(time.Second), why)
	case why != "":
		return fmt.Sprintf("fence: rule 2 would fire %s after the coordinator is lost (%s)", v.FenceAfter, why)
	case !v.Ready:
		return fmt.Sprintf("fence: none would fire: no coordinator for %s, but %d of %d standbys stream from it",
			v.NotReadyFor.Round(time.Second), v.Live, v.Standbys)
	}
	return ""
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// fenceFacts are what the fencer sees this step.
type fenceFacts struct {
	View         FenceView // NotReadyFor, Standbys and Live are the fencer's to fill
	Streams      streamFacts
	Window       time.Duration // how recent a live stream's signs of life are
	SteppingDown bool          // the local checker answers 503
	Demoting     bool          // this node stepped down for a switchover
}

// fenceMemory is the fencer's own state between steps.
type fenceMemory struct {
	NotReadySince time.Time            // since when this node has heard no coordinator, after the quiet period
	Flushes       map[string]flushMark // per registered standby, when its flush position last moved
	FencedFor     string               // why this node fenced itself, until the episode ends
}

// fenceIntent is what a step of the fencer asks of the actor.
type fenceIntent struct {
	Memory      fenceMemory
	ClearShown  bool   // stop showing the last fence: the node runs again, or the reason no longer holds
	StepUp      bool   // end the step-down: answer as what it is
	EndDemotion bool   // the switchover this node stepped down for is over: it runs as a standby
	Fence       string // why to fence now; "": not now
	Outlook     string // which rule would fire, and when (FenceOutlook)
	Live        int    // the registered standbys streaming live from this node
}

// needsPrimaryProbe tells whether FenceReason could depend on whether the
// committed primary runs: only then is it probed.
func needsPrimaryProbe(v FenceView) bool {
	return v.Policy != api.FenceOff && v.DBUp && !v.InRecovery && v.Ready && v.Primary != "" && v.Primary != v.Self
}

// fenceStep fences this node when FenceReason says so, once per episode.
// An episode ends when its database stops (the fence did its work; a
// later start as primary is a new one) or the reason no longer holds.
func fenceStep(f fenceFacts, mem fenceMemory, now time.Time) fenceIntent {
	v := f.View
	in := fenceIntent{Memory: mem}
	// The clock starts once the quiet period is over: a start is no head
	// start towards a fence.
	if !v.Ready && !v.Quiet {
		if in.Memory.NotReadySince.IsZero() {
			in.Memory.NotReadySince = now
		}
		v.NotReadyFor = now.Sub(in.Memory.NotReadySince)
	} else {
		in.Memory.NotReadySince = time.Time{}
	}
	v.Standbys = len(f.Streams.Standbys)
	v.Live, in.Memory.Flushes = liveStreams(f.Streams, mem.Flushes, now, f.Window)
	in.Live = v.Live
	why := FenceReason(v)
	in.Outlook = FenceOutlook(v)
	if !v.DBUp || why == "" {
		in.Memory.FencedFor = ""
	}
	runsAgain := v.DBUp && (v.InRecovery || why == "")
	in.ClearShown = runsAgain
	// A standby again (rejoined), or a primary the reason no longer holds
	// for: it may answer as what it is; not a primary stepping down for a
	// switchover.
	if runsAgain && !(f.Demoting && !v.InRecovery) && f.SteppingDown {
		in.StepUp = true
		in.EndDemotion = v.InRecovery
	}
	if why == "" || mem.FencedFor != "" {
		if in.Memory.FencedFor != "" {
			in.Outlook = "" // fenced already: the reason says it
		}
		return in
	}
	in.Memory.FencedFor, in.Fence, in.Outlook = why, why, ""
	return in
}

// fencer is the actor's fencing part: it owns the fence memory and runs
// the fence; it is called from the actor's goroutine only.
type fencer struct {
	opts    Options
	local   Local
	actions Actions
	board   *statusBoard
	run     *actionRunner
	record  chan<- api.Fence // to the fence log, which records them through the coordinator
	hooks   *hookRunner
	mem     fenceMemory
	// quietUntil ends the quiet period after this process started
	// (Options.Quiet after New).
	quietUntil time.Time
	logged     string // the inputs last logged
}

// facts looks up what fenceStep needs, probing the committed primary only
// when the decision depends on it.
func (x *fencer) facts(ctx context.Context, st Replicated, f *consensus.Snapshot, ready, demoting bool) fenceFacts {
	up := f.ProbeErr == nil && f.IdentityErr == nil
	_, registered := repmgr.ByName(f.Facts.Nodes, x.opts.Self)
	v := FenceView{Policy: x.opts.Fence, Self: x.opts.Self, DBUp: up, InRecovery: f.Facts.InRecovery,
		Registered: registered, Ready: ready, Primary: st.Primary, Epoch: st.Epoch,
		FenceAfter: x.opts.FenceAfter, Paused: st.Paused(), Quiet: x.opts.Now().Before(x.quietUntil)}
	if needsPrimaryProbe(v) {
		if p, ok := repmgr.ByName(x.local.KnownNodes(), st.Primary); ok {
			pctx, cancel := context.WithTimeout(ctx, x.opts.PeerTimeout)
			inRecovery, err := x.actions.InRecovery(pctx, p)
			cancel()
			v.PrimaryRuns = err == nil && !inRecovery
		}
	}
	sf := streamFacts{Standbys: registeredStandbys(f.Facts.Nodes, x.opts.Self), Streams: f.Facts.Server.Streams}
	if up && !f.Facts.InRecovery {
		sf.Position = f.Facts.WAL.Position
	}
	return fenceFacts{View: v, Streams: sf, Window: liveWindow(x.opts.FenceAfter, x.opts.statusInterval(), x.opts.RefreshInterval),
		SteppingDown: x.local.SteppingDown() != "", Demoting: demoting}
}

// step runs one step of the fencer; it says whether the switchover this
// node stepped down for is over.
func (x *fencer) step(ctx context.Context, st Replicated, f *consensus.Snapshot, ready, demoting bool) (endDemotion bool) {
	now := x.opts.Now()
	facts := x.facts(ctx, st, f, ready, demoting)
	in := fenceStep(facts, x.mem, now)
	x.mem = in.Memory
	x.board.setOutlook(in.Outlook)
	// Every input of the rules, once per change of what they see (not of
	// a countdown).
	if key := fmt.Sprint(ready, st.Epoch, st.Primary, facts.View.DBUp, facts.View.InRecovery, in.Live, streamsKey(facts.Streams)); key != x.logged {
		x.logged = key
		x.opts.Logger.Info("fence inputs changed", "outlook", in.Outlook, "ready", ready, "epoch", st.Epoch,
			"primary", st.Primary, "standbys", facts.Streams.Standbys, "live", in.Live, "streams", streamsText(facts.Streams), "window", facts.Window)
	}
	if in.ClearShown {
		x.board.setFenced("")
	}
	if in.StepUp {
		x.local.StepDown("")
	}
	if in.Fence == "" {
		return in.EndDemotion
	}
	why := in.Fence
	x.board.setFenced(why)
	x.local.StepDown("fenced: " + why)
	x.opts.Logger.Error("fencing this node", "policy", x.opts.Fence, "reason", why)
	// A fresh attempt each time: a node fenced twice in one epoch
	// (stopped, then started again by hand as primary) is fenced again.
	err := x.run.try(ctx, &attempt{}, api.Decision{Epoch: st.Epoch}, api.ActionFence, func(ctx context.Context) error {
		var out string
		var err error
		if x.opts.Fence == api.FenceStop {
			out, err = x.actions.Stop(ctx)
		} else {
			out, err = x.actions.Fence(ctx, why)
		}
		x.opts.Logger.Info("fence command", "output", out, "error", err)
		return err
	})
	if err == nil {
		// Once per fence: the fencer fences once per episode.
		primary, _ := repmgr.ByName(x.local.KnownNodes(), st.Primary)
		h := Hook{Epoch: st.Epoch, Primary: primary, Reason: why}
		h.Kind, h.Role = HookRoleChange, RoleFenced
		fence := h
		fence.Kind, fence.Role = HookFence, ""
		x.hooks.add(h, fence)
	}
	select {
	case x.record <- api.Fence{Node: x.opts.Self, At: now.UTC(), Reason: why}:
	case <-ctx.Done():
	}
	return in.EndDemotion
}
