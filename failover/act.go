package failover

import (
	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/consensus"
	"github.com/pgquorum/pgquorum/repmgr"
)

// The actor's functional core: nextAction turns what this node sees of
// itself, the committed state and the actor's memory into the actions to
// try, or into a fact to look up first (a probe of the committed primary,
// the control file of the stopped local instance), or into nothing, and
// why. The actor's shell looks the fact up and asks again: a probe is made
// only when the decision needs it.

// actorFacts are what the actor sees this step.
type actorFacts struct {
	Ready bool // this node hears from a coordinator: its log is current
	// ProbeErr and IdentityErr are the local database's, from the checker.
	ProbeErr, IdentityErr error
	Facts                 repmgr.Facts  // the local database
	Known                 []repmgr.Node // repmgr.nodes, as last read
	// Primary is the committed primary's database, probed when asked for.
	Primary *primaryProbe
	// Stopped is the local instance's control file, read when asked for.
	Stopped *stoppedInstance
	// Fork is what tells whether this standby forked off the committed
	// primary, read when asked for (fork.go).
	Fork *forkProbe
}

func (f actorFacts) dbUp() bool { return f.ProbeErr == nil && f.IdentityErr == nil }

type primaryProbe struct {
	Node       repmgr.Node
	InRecovery bool
	Err        error
}

type stoppedInstance struct {
	Control repmgr.Control
	Running bool
	Err     error
}

// actorMemory is what the actor keeps between steps that decisions read.
type actorMemory struct {
	Attempts   map[actKey]*attempt
	DemotedFor uint64 // ID+1 of the switchover this node stepped down and stopped for; 0: none
}

// need is a fact the decision waits for.
type need int

const (
	needNothing need = iota
	needPrimary      // probe actIntent.Node's database
	needStopped      // read the local control file
	needFork         // read actIntent.Node's timeline history and where the local standby's WAL ends
)

// actIntent is what the actor's core asks of the shell.
type actIntent struct {
	Need need
	Node repmgr.Node // the node to probe, for needPrimary and needFork
	Run  []action    // actions to try, in order
	Why  string      // why nothing is done, when Run is empty and Need is nothing
}

// action is one action the actor tries for a decision.
type action struct {
	Kind       api.ActionKind
	Decision   api.Decision   // the decision it is for (only its Epoch for demote and restart)
	Primary    repmgr.Node    // the node to follow or rejoin
	Switchover api.Switchover // for demote and restart
	Control    string         // the control file's state, for a rejoin's log
	// Fresh begins the action anew for its decision: a rejoin of a node
	// that runs as primary again after a rejoin that succeeded.
	Fresh bool
	// Why is why a standby is rejoined: it forked off the primary.
	Why string
}

func nothing(why string) actIntent { return actIntent{Why: why} }

// nextAction does what the latest decision asks of this node, if anything.
// It acts only on a committed decision and only while it hears from a
// coordinator, so that a node catching up on an old log does not act on a
// stale one.
func nextAction(o Options, f actorFacts, st Replicated, mem actorMemory) actIntent {
	d, ok := st.Latest()
	switch {
	case !ok:
		return nothing("no decision committed yet")
	case !f.Ready:
		return nothing("no coordinator is heard: the committed state may be stale")
	}
	if in, handled := switchoverAction(o, f, st, mem); handled {
		return in
	}
	if st.Paused() {
		return nothing("automatic failover is paused")
	}
	if !f.dbUp() {
		if !o.AutoRejoin {
			return nothing("the database is down, and failover.auto_rejoin is off")
		}
		if d.Primary == o.Self || d.PromotedAt == nil {
			return nothing("the database is down, and no promoted primary of another node to rejoin")
		}
		return rejoinAction(f, d, mem)
	}
	if in, ok := rejoinRunning(o, f, d, mem); ok {
		return in
	}
	if o.Mode == api.ModeRepmgrd {
		return nothing("repmgrd promotes and follows; failover-check gates it")
	}
	return followAction(o, f, d)
}

// followAction promotes this node when it is the committed primary, and
// points a standby at it otherwise.
func followAction(o Options, f actorFacts, d api.Decision) actIntent {
	me, registered := repmgr.ByName(f.Facts.Nodes, o.Self)
	primary, known := repmgr.ByID(f.Facts.Nodes, d.PrimaryID)
	switch {
	case !registered || !known:
		return nothing("this node or the committed primary is not registered")
	case !f.Facts.InRecovery:
		return nothing("runs as primary: a primary that is not the committed one is for fencing to handle")
	case d.Primary == o.Self:
		return actIntent{Run: []action{{Kind: api.ActionPromote, Decision: d}}}
	case me.Type != repmgr.TypeStandby:
		// A former primary coming back as a standby is rejoined, not
		// followed: leave it to repmgr node rejoin.
		return nothing("registered as a " + me.Type + ", not a standby: rejoined, not followed")
	case me.UpstreamID != nil && *me.UpstreamID == primary.ID:
		// Not looked at for a fork again: see docs/failover.md, "A
		// standby that forked off the new primary" (what is left open).
		return nothing("repmgr already records the committed primary as this standby's upstream")
	}
	// Follow a committed primary only while it answers: never point a
	// standby at a dead one.
	p := f.Primary
	if p == nil || p.Node.ID != primary.ID {
		return actIntent{Need: needPrimary, Node: primary}
	}
	if p.Err != nil {
		return nothing("the committed primary does not answer: " + api.ErrorText(p.Err))
	}
	var run []action
	// Until its promotion is recorded, stream from the chosen node at once,
	// so as to vouch for it the moment it is promoted.
	if up, streams := consensus.Upstream(f.Facts); d.PromotedAt == nil && (!streams || up.ID != primary.ID) {
		run = append(run, action{Kind: api.ActionRepoint, Decision: d, Primary: primary})
	}
	if !p.InRecovery {
		// A standby ahead of the fork cannot follow: it is rewound.
		if in, follow := forkStep(o, f, d, primary); !follow {
			return in
		}
		run = append(run, action{Kind: api.ActionFollow, Decision: d, Primary: primary})
	} else if len(run) == 0 {
		return nothing("the committed primary is not promoted yet") // follow it the repmgr way once it is
	}
	return actIntent{Run: run}
}

// rejoinAction rejoins the primary of d when the local instance is a
// stopped former primary and d's primary runs as one; once begun, until it
// succeeds, whatever the data directory then looks like (the rejoin itself
// sorts that out), for as long as d stands. The runner spaces the attempts.
func rejoinAction(f actorFacts, d api.Decision, mem actorMemory) actIntent {
	a := mem.Attempts[actKey{d.Epoch, api.ActionRejoin}]
	if a != nil && a.ok {
		return nothing("the rejoin for this decision succeeded")
	}
	if a == nil || a.n == 0 {
		s := f.Stopped
		if s == nil {
			return actIntent{Need: needStopped}
		}
		if s.Err != nil || s.Running || !formerPrimaryControl[s.Control.State] {
			// Running (starting, or pgquorum merely cannot reach it), or a
			// standby's control file: not a stopped former primary.
			return nothing("not a stopped former primary")
		}
	}
	return rejoinPrimary(f, d)
}

// formerPrimaryControl are the control-file states a stopped former primary
// leaves: shut down cleanly, crashed, or crashed again during its crash
// recovery (a full WAL disk: the postmaster exits with "in crash
// recovery", which no restart clears while the disk stays full). The
// rejoin crash-recovers the last two before pg_rewind.
var formerPrimaryControl = map[string]bool{
	repmgr.StateShutDown: true, repmgr.StateInProduction: true, repmgr.StateInCrashRecovery: true,
}

// rejoinPrimary asks for the rejoin of d's primary once it answers as a
// running primary: never rejoin one that does not.
func rejoinPrimary(f actorFacts, d api.Decision) actIntent {
	control := ""
	if f.Stopped != nil {
		control = f.Stopped.Control.State
	}
	primary, ok := repmgr.ByID(f.Known, d.PrimaryID)
	if !ok {
		return nothing("the committed primary is not registered")
	}
	p := f.Primary
	if p == nil || p.Node.ID != primary.ID {
		return actIntent{Need: needPrimary, Node: primary}
	}
	if p.Err != nil || p.InRecovery {
		return nothing("the committed primary does not answer as a primary") // never rejoin one that does not
	}
	return actIntent{Run: []action{{Kind: api.ActionRejoin, Decision: d, Primary: primary, Control: control}}}
}

// switchoverAction is an old primary's part of the switchover: step down
// and stop; start again if it is aborted; rejoin its successor once that
// one is promoted. It says whether the switchover decides this step.
func switchoverAction(o Options, f actorFacts, st Replicated, mem actorMemory) (actIntent, bool) {
	n := len(st.Switchovers)
	if n == 0 || st.Switchovers[n-1].From != o.Self {
		return actIntent{}, false
	}
	sw := st.Switchovers[n-1]
	mine := mem.DemotedFor == sw.ID+1
	switch {
	case sw.Phase == api.PhaseDemoting:
		return actIntent{Run: []action{{Kind: api.ActionDemote, Decision: api.Decision{Epoch: sw.ID}, Switchover: sw}}}, true
	case sw.Phase == api.PhaseAborted && mine:
		return actIntent{Run: []action{{Kind: api.ActionRestart, Decision: api.Decision{Epoch: sw.ID}, Switchover: sw}}}, true
	case mine && (sw.Phase == api.PhasePromoting || sw.Phase == api.PhaseDone) && f.ProbeErr != nil:
		// The old primary turns into a standby whatever auto_rejoin says:
		// that is what a switchover is.
		d, ok := st.Latest()
		if !ok || d.Epoch != sw.ID+1 || d.PromotedAt == nil {
			return nothing("not before the successor runs as primary"), true
		}
		return rejoinAction(f, d, mem), true
	}
	return actIntent{}, false
}

// demotionCancelled tells whether the step-down for the switchover of ID
// demotedFor-1 no longer holds: that switchover left phase demoting (or
// is no longer recorded) while this node's demote never stopped its
// database, which still runs as a primary. So it goes for a demote
// cancelled by a newer decision, in particular one started from an old
// entry of a log being replayed after a restart: nothing else would end
// its step-down (the restart after an abort is for the latest switchover
// only, the rejoin for a stopped database), and the node would answer 503
// for good. A demote that stopped the database keeps its mark: the old
// primary then rejoins its successor.
func demotionCancelled(st Replicated, f actorFacts, mem actorMemory) bool {
	if mem.DemotedFor == 0 || !f.dbUp() || f.Facts.InRecovery {
		return false
	}
	id := mem.DemotedFor - 1
	if a := mem.Attempts[actKey{id, api.ActionDemote}]; a != nil && a.ok {
		return false
	}
	for _, sw := range st.Switchovers {
		if sw.ID == id {
			return sw.Phase != api.PhaseDemoting
		}
	}
	return true
}
