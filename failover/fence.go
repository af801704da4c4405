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
//   - Rule 1: it hears a coordinator and has applied a committed decision
//     naming another primary; and that primary answers this node's probe
//     as a running one, or the coordinator has not adopted this node for
//     max(failover.fence_after, the time it takes to adopt a primary
//     promoted outside pgquorum).
//   - Rule 2: it has heard no coordinator for failover.fence_after (the
//     Raft majority is out of its reach, so a decision may have been made
//     without it), and either it is not the committed primary of the latest
//     epoch it knows, or too few of its standbys stream live from it for
//     a Raft majority to have replaced it without one of them.
//
// Never at epoch 0, nor during the quiet period after a start (unless the
// clock was running before a restart), nor while paused and hearing a
// coordinator, nor, by rule 2's terms, while it is the committed primary
// followed live by enough standbys: pgquorum's own outage (no coordinator,
// no votes) is no replacement.

// FenceView is what decides whether this node must fence its database.
type FenceView struct {
	Policy string
	Self   string
	// DBUp is set when a postmaster runs on the data directory: the
	// database answers the probe, or postmaster.pid names a live process
	// (a probe timing out on a busy machine stops no fence).
	DBUp       bool
	InRecovery bool
	Registered bool
	// Ready is set when this node hears from a coordinator, so that
	// Primary, the committed primary, is current.
	Ready   bool
	Primary string
	// PrimaryRuns is set when the committed primary answers a direct
	// probe as a running primary: rule 1 then fires at once.
	PrimaryRuns bool
	// DeposedFor is how long this node has run as primary while its log
	// names another primary (a brief loss of the coordinator does not
	// start it again: a node whose Raft link flaps would otherwise never
	// be fenced by either rule); AdoptWithin, how long the
	// coordinator may take to adopt a primary promoted outside pgquorum
	// (a voter's lease, the router hold and a refresh: Options.Quiet).
	DeposedFor, AdoptWithin time.Duration
	Demoting                bool // it steps down for a switchover: stopping already
	Epoch                   uint64
	NotReadyFor             time.Duration // how long this node has heard no coordinator (after the quiet period)
	FenceAfter              time.Duration
	// Members is the number of registered nodes, this one included: the
	// Raft voters. Standbys is the number of registered, active standbys
	// besides this node; Live, those among them streaming live from it.
	Members, Standbys, Live int
	// Paused: the log says automatic failover is paused. Honoured only
	// while a coordinator is heard: a node cut off cannot know whether the
	// pause still holds (a resume and a failover may have been committed
	// without it).
	Paused bool
	// Quiet is set during the quiet period after this pgquorum started:
	// its voters' leases and router hold from before, and its own, keep a
	// healthy primary at 509 for that long.
	Quiet bool
}

// streamsNeeded is how many registered standbys must stream live from this
// primary for no replacement to be possible without one of them: all of
// them (none can have been promoted), but at least one, or more than the N - M voters a
// committing majority M of the N registered nodes can leave out. A voter
// that applies a decision naming another primary re-points to it, and the
// promoted one stops streaming, so those standbys are outside any majority
// that committed a replacement.
func (v FenceView) streamsNeeded() int {
	if v.Standbys == 0 {
		return 1 // it cannot show it was not replaced
	}
	n := max(v.Members, v.Standbys+1)
	return min(v.Standbys, n-(n/2+1)+1)
}

// followed tells whether enough registered standbys stream live from it.
func (v FenceView) followed() bool { return v.Live >= v.streamsNeeded() }

// replacedUnseen is rule 2's condition besides time: what makes a node
// that cannot hear the Raft majority a possibly replaced one.
func (v FenceView) replacedUnseen() string {
	if v.Primary != v.Self {
		return fmt.Sprintf("%s is the committed primary of epoch %d", orNone(v.Primary), v.Epoch)
	}
	if !v.followed() {
		return fmt.Sprintf("only %d of %d standbys stream from it (%d needed of %d registered nodes)",
			v.Live, v.Standbys, v.streamsNeeded(), max(v.Members, v.Standbys+1))
	}
	return ""
}

// fenceable tells whether any rule may apply to this node now.
func (v FenceView) fenceable() bool {
	return v.Policy != api.FenceOff && v.Policy != "" && !(v.Paused && v.Ready) && v.DBUp && !v.InRecovery && v.Registered
}

// replacedInLog tells whether the latest decision this node knows names
// another primary, with no switchover of its own under way.
func (v FenceView) replacedInLog() bool { return v.Primary != "" && v.Primary != v.Self && !v.Demoting }

// deposed tells whether rule 1's condition besides evidence holds: it is
// replaced in a log it knows to be current (a coordinator heard).
func (v FenceView) deposed() bool { return v.Ready && v.replacedInLog() }

// deposedWait is how long rule 1 waits when the committed primary does not
// answer this node: long enough for the coordinator to adopt this node if
// it was promoted outside pgquorum while the committed primary is down.
func (v FenceView) deposedWait() time.Duration { return max(v.FenceAfter, v.AdoptWithin) }

// FenceReason says why this node must be fenced now, and by which rule;
// "" when it need not.
func FenceReason(v FenceView) string {
	if !v.fenceable() {
		return ""
	}
	if v.deposed() {
		head := fmt.Sprintf("rule 1: runs as primary, but %s is the committed primary of epoch %d", v.Primary, v.Epoch)
		switch {
		case v.PrimaryRuns:
			return head + ", and runs as one"
		case v.deposedWait() > 0 && v.DeposedFor >= v.deposedWait():
			return fmt.Sprintf("%s, and has not adopted this node for %s (its database does not answer this node)", head, v.DeposedFor.Round(time.Second))
		}
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
	if !v.fenceable() || v.Epoch == 0 {
		return ""
	}
	if v.deposed() && v.deposedWait() > 0 {
		return fmt.Sprintf("fence: rule 1 would fire in %s (%s is the committed primary of epoch %d, and this node runs as primary)",
			max(0, v.deposedWait()-v.DeposedFor).Round(time.Second), v.Primary, v.Epoch)
	}
	if v.FenceAfter <= 0 || v.Quiet {
		return ""
	}
	why := v.replacedUnseen()
	switch {
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
	View         FenceView // NotReadyFor, DeposedFor, Standbys and Live are the fencer's to fill
	Streams      streamFacts
	Window       time.Duration // how recent a live stream's signs of life are
	SteppingDown bool          // the local checker answers 503
	Demoting     bool          // this node stepped down for a switchover
	// Started is when this pgquorum started, QuietUntil when its quiet
	// period ends: a clock that started before Started was carried over a
	// restart (the fence state file), and the quiet period does not hold
	// it back again, if the previous run saved it recently (Saved).
	Started, QuietUntil time.Time
	// Saved is when the previous run of pgquorum last saved the fence
	// state (zero: never, or not known).
	Saved time.Time
}

// carriedRecently tells whether clocks carried over a restart may count
// in full: only when the previous run of pgquorum saved them at most
// fence_after before this one started (it saves them every heartbeat
// while they run: fenceStore.save). A pgquorum that crash-loops restarts
// within that bound, and its clocks keep running across its restarts; one
// stopped longer, a planned stop of the whole cluster say, starts its
// clocks afresh, quiet period included: the time it was down is no time
// its Raft member could hear a coordinator, nor its standbys stream.
func (f fenceFacts) carriedRecently() bool {
	gap := f.Started.Sub(f.Saved)
	return !f.Saved.IsZero() && f.View.FenceAfter > 0 && gap <= f.View.FenceAfter && gap >= -f.View.FenceAfter
}

// fenceMemory is the fencer's own state between steps; all but FencedFor
// persist across restarts (fenceState).
type fenceMemory struct {
	// Epoch and Primary are the latest committed decision this node has
	// applied. A restarted node's FSM holds only its snapshot until it
	// hears a leader (Raft applies the entries after it only then), so a
	// cut-off node would otherwise be back at epoch 0, where nothing is
	// fenced, at every restart.
	Epoch   uint64
	Primary string

	NotReadySince time.Time             // since when this node has heard no coordinator
	DeposedSince  time.Time             // since when it has run as primary while its log names another
	Marks         map[string]streamMark // per registered standby, when its stream last showed signs of life
	FencedFor     string                // why this node fenced itself, until the episode ends
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

// sinceFor keeps a clock: it starts when cond first holds and stops (zero)
// when it does not.
func sinceFor(cond bool, since, now time.Time) time.Time {
	switch {
	case !cond:
		return time.Time{}
	case since.IsZero():
		return now
	}
	return since
}

// fenceStep fences this node when FenceReason says so, once per episode.
// An episode ends when its database stops (the fence did its work; a
// later start as primary is a new one) or the reason no longer holds.
func fenceStep(f fenceFacts, mem fenceMemory, now time.Time) fenceIntent {
	v := f.View
	v.Demoting = f.Demoting
	in := fenceIntent{Memory: mem}
	if v.Epoch < mem.Epoch {
		v.Epoch, v.Primary = mem.Epoch, mem.Primary
	}
	in.Memory.Epoch, in.Memory.Primary = v.Epoch, v.Primary
	// Clocks and marks carried over a long stop start afresh
	// (carriedRecently).
	if !f.carriedRecently() {
		if mem.NotReadySince.Before(f.Started) {
			mem.NotReadySince, mem.Marks = time.Time{}, nil
		}
		if mem.DeposedSince.Before(f.Started) {
			mem.DeposedSince = time.Time{}
		}
	}
	// Rule 2's clock runs from the first step without a coordinator. One
	// started in this process counts only from the end of the quiet
	// period: a start is no head start towards a fence. One carried over
	// a restart (recently) counts in full, quiet period or not: a
	// pgquorum that restarts (crash-looping) must not postpone a fence
	// for ever.
	in.Memory.NotReadySince = sinceFor(!v.Ready, mem.NotReadySince, now)
	if since := in.Memory.NotReadySince; !since.IsZero() {
		if since.Before(f.Started) {
			v.Quiet = false
		} else if since.Before(f.QuietUntil) {
			since = f.QuietUntil
		}
		v.NotReadyFor = max(0, now.Sub(since))
	}
	in.Memory.DeposedSince = sinceFor(v.replacedInLog() && v.DBUp && !v.InRecovery, mem.DeposedSince, now)
	if !in.Memory.DeposedSince.IsZero() {
		v.DeposedFor = now.Sub(in.Memory.DeposedSince)
	}
	v.Standbys = len(f.Streams.Standbys)
	v.Live, in.Memory.Marks = liveStreams(f.Streams, mem.Marks, now, f.Window)
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
	store   *fenceStore
	// started is when this process started; quietUntil ends its quiet
	// period (Options.Quiet after New); carried is when the previous run
	// last saved the fence state.
	started, quietUntil, carried time.Time
	logged                       string // the inputs last logged
	saveErr                      string // the last error saving the fence state, logged once
}

// newFencer returns the fencer, with the memory a previous run of pgquorum
// left in the Raft directory.
func newFencer(opts Options, local Local, actions Actions, board *statusBoard, run *actionRunner, record chan<- api.Fence, hooks *hookRunner) *fencer {
	now := opts.Now()
	// Heartbeats well within fence_after, the bound on a restart that
	// keeps the clocks running (carriedRecently).
	every := opts.RefreshInterval
	if opts.FenceAfter > 0 {
		every = min(every, opts.FenceAfter/4)
	}
	x := &fencer{opts: opts, local: local, actions: actions, board: board, run: run, record: record, hooks: hooks,
		store: &fenceStore{dir: opts.Raft.Dir, every: every}, started: now, quietUntil: now.Add(opts.Quiet)}
	mem, saved, err := x.store.load()
	if err != nil {
		opts.Logger.Warn("fencing starts afresh", "error", err)
	}
	x.mem, x.carried = mem, saved
	if !mem.NotReadySince.IsZero() || !mem.DeposedSince.IsZero() {
		f := fenceFacts{View: FenceView{FenceAfter: opts.FenceAfter}, Started: now, Saved: saved}
		opts.Logger.Info("fence clocks carried over a restart", "saved_ago", now.Sub(saved), "count", f.carriedRecently(),
			"not_ready_since", mem.NotReadySince, "deposed_since", mem.DeposedSince)
	}
	return x
}

// facts looks up what fenceStep needs, probing the committed primary only
// when the decision depends on it. When the local probe fails, the data
// directory says whether a postmaster runs, and as what: a probe that
// times out on a busy machine must not keep a running primary from being
// fenced.
func (x *fencer) facts(ctx context.Context, st Replicated, f *consensus.Snapshot, ready, demoting bool) fenceFacts {
	probed := f.ProbeErr == nil && f.IdentityErr == nil
	up, inRecovery, nodes := probed, f.Facts.InRecovery, f.Facts.Nodes
	if !probed && x.opts.Fence != api.FenceOff && x.opts.Fence != "" {
		pm, err := x.actions.RunningServer(ctx)
		if err != nil {
			x.opts.Logger.Debug("read the postmaster's state from the data directory", "error", err)
		}
		if err == nil && pm.PID != 0 && !pm.Standby {
			up, inRecovery, nodes = true, false, x.local.KnownNodes()
		}
	}
	_, registered := repmgr.ByName(nodes, x.opts.Self)
	v := FenceView{Policy: x.opts.Fence, Self: x.opts.Self, DBUp: up, InRecovery: inRecovery,
		Registered: registered, Ready: ready, Primary: st.Primary, Epoch: st.Epoch, AdoptWithin: x.opts.Quiet,
		FenceAfter: x.opts.FenceAfter, Members: len(nodes), Paused: st.Paused(), Quiet: x.opts.Now().Before(x.quietUntil)}
	if needsPrimaryProbe(v) {
		if p, ok := repmgr.ByName(x.local.KnownNodes(), st.Primary); ok {
			pctx, cancel := context.WithTimeout(ctx, x.opts.PeerTimeout)
			inRecovery, err := x.actions.InRecovery(pctx, p)
			cancel()
			v.PrimaryRuns = err == nil && !inRecovery
		}
	}
	sf := streamFacts{Standbys: registeredStandbys(nodes, x.opts.Self), Streams: f.Facts.Server.Streams, Known: probed}
	if probed && !f.Facts.InRecovery {
		sf.Position = f.Facts.WAL.Position
	}
	return fenceFacts{View: v, Streams: sf, Window: liveWindow(x.opts.FenceAfter, x.opts.statusInterval(), x.opts.RefreshInterval),
		SteppingDown: x.local.SteppingDown() != "", Demoting: demoting, Started: x.started, QuietUntil: x.quietUntil, Saved: x.carried}
}

// step runs one step of the fencer; it says whether the switchover this
// node stepped down for is over.
func (x *fencer) step(ctx context.Context, st Replicated, f *consensus.Snapshot, ready, demoting bool) (endDemotion bool) {
	now := x.opts.Now()
	facts := x.facts(ctx, st, f, ready, demoting)
	in := fenceStep(facts, x.mem, now)
	x.mem = in.Memory
	// Once per distinct error: a read-only directory fails every step.
	if err := x.store.save(in.Memory, ready, now); err != nil && err.Error() != x.saveErr {
		x.saveErr = err.Error()
		x.opts.Logger.Warn("save the fence state: a restart of pgquorum will start fencing's clocks afresh", "error", err)
	} else if err == nil {
		x.saveErr = ""
	}
	x.board.setOutlook(in.Outlook)
	// Every input of the rules, once per change of what they see (not of
	// a countdown).
	if key := fmt.Sprint(ready, st.Epoch, st.Primary, facts.View.DBUp, facts.View.InRecovery, facts.Streams.Known, facts.View.Paused, in.Live, streamsKey(facts.Streams)); key != x.logged {
		x.logged = key
		x.opts.Logger.Info("fence inputs changed", "outlook", in.Outlook, "ready", ready, "epoch", st.Epoch,
			"primary", st.Primary, "db_up", facts.View.DBUp, "probed", facts.Streams.Known, "paused", facts.View.Paused,
			"members", facts.View.Members, "standbys", facts.Streams.Standbys, "live", in.Live, "streams", streamsText(facts.Streams), "window", facts.Window)
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
