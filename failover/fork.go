package failover

import (
	"fmt"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/consensus"
	"github.com/pgquorum/pgquorum/repmgr"
)

// A standby that received more of the old primary's WAL than the node
// chosen in its place cannot follow it: its history forked off the new
// primary's at the point where the new primary's history left the old
// timeline, and repmgr standby follow refuses ("... forked off current
// database system timeline ... before current recovery point"). It is
// rewound as a former primary is, by the rejoin (rejoin_run.go). Whether
// it forked is read from facts, not from repmgr's words: the new
// primary's timeline history file and where the standby's WAL ends.

// forkProbe is what tells whether this standby forked off the committed
// primary: read from that primary and from the local standby.
type forkProbe struct {
	Node    repmgr.Node // the primary it was read from
	Primary repmgr.Timelines
	Standby repmgr.StandbyEnd
	Err     error
}

// forkVerdict is classifyFork's answer: Forked with the fork in words, or
// not (Why then says why not, or why it cannot be told).
type forkVerdict struct {
	Forked bool
	Why    string
}

// classifyFork tells whether a standby whose WAL ends at p.Standby can
// follow the primary whose history is p.Primary, or forked off it. A fork
// it cannot see (one on the primary's own timeline number, or facts it
// could not read) is not called one: the follow is tried, as before.
func classifyFork(p forkProbe) forkVerdict {
	s, t := p.Standby, p.Primary
	switch {
	case p.Err != nil:
		return forkVerdict{Why: "cannot tell whether its history forked: " + api.ErrorText(p.Err)}
	case s.Timeline < 1 || t.Current < 1:
		return forkVerdict{Why: "cannot tell whether its history forked: timeline unknown"}
	case s.Timeline == t.Current:
		return forkVerdict{Why: fmt.Sprintf("on the primary's timeline %d", t.Current)}
	case s.Timeline > t.Current:
		return forkVerdict{Forked: true, Why: fmt.Sprintf("its WAL is on timeline %d, newer than %s's timeline %d",
			s.Timeline, p.Node.Name, t.Current)}
	}
	at, ok := t.SwitchOf(s.Timeline)
	switch {
	case !ok:
		return forkVerdict{Forked: true, Why: fmt.Sprintf("its timeline %d is not in the history of %s's timeline %d",
			s.Timeline, p.Node.Name, t.Current)}
	case s.End > at:
		return forkVerdict{Forked: true, Why: fmt.Sprintf("forked off %s's timeline %d at %s: its WAL on timeline %d goes on to %s",
			p.Node.Name, t.Current, lsnText(at), s.Timeline, lsnText(s.End))}
	}
	return forkVerdict{Why: fmt.Sprintf("its WAL on timeline %d ends at %s, not past %s's fork at %s",
		s.Timeline, lsnText(s.End), p.Node.Name, lsnText(at))}
}

// forkStep is what a standby that must follow primary, promoted, does
// about a fork: nothing to do (follow), look the facts up, rewind it (a
// rejoin, with failover.auto_rejoin), or wait for the operator.
func forkStep(o Options, f actorFacts, d api.Decision, primary repmgr.Node) (in actIntent, follow bool) {
	p := f.Fork
	if p == nil || p.Node.ID != primary.ID {
		return actIntent{Need: needFork, Node: primary}, false
	}
	// A receiver seen streaming the primary's current timeline from it is
	// proof that no fork stands in the way, whatever the separate read of
	// the WAL's end says: that read falls back to the control file's older
	// timeline when the receiver restarts in between (adversarial review).
	if up, streams := consensus.Upstream(f.Facts); streams && up.ID == primary.ID &&
		f.Facts.WAL.ReceivedTimeline != nil && int(*f.Facts.WAL.ReceivedTimeline) == p.Primary.Current {
		return actIntent{}, true
	}
	v := classifyFork(*p)
	switch {
	case !v.Forked:
		return actIntent{}, true
	case !o.AutoRejoin:
		return nothing("cannot follow " + primary.Name + ", " + v.Why +
			": failover.auto_rejoin is off, rewind it by hand (repmgr node rejoin --force-rewind, with PostgreSQL stopped)"), false
	case d.PromotedAt == nil:
		return nothing("cannot follow " + primary.Name + ", " + v.Why + ": rewound once its promotion is recorded"), false
	}
	return actIntent{Run: []action{{Kind: api.ActionRejoin, Decision: d, Primary: primary, Why: "rewinding: " + v.Why}}}, false
}
