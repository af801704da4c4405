package failover

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/repmgr"
)

// The actor's cluster: p the primary of epoch 1, s2 and s3 standbys, each
// at a host of its own name.
var (
	actP  = repmgr.Node{ID: 1, Name: "p", Type: repmgr.TypePrimary, Priority: 100, Conninfo: "host=p port=5432"}
	actS2 = repmgr.Node{ID: 2, Name: "s2", Type: repmgr.TypeStandby, Priority: 100, Conninfo: "host=s2 port=5432", UpstreamID: intp(1)}
	actS3 = repmgr.Node{ID: 3, Name: "s3", Type: repmgr.TypeStandby, Priority: 100, Conninfo: "host=s3 port=5432", UpstreamID: intp(1)}
)

func intp(i int) *int { return &i }

// tl4 is the history of a primary promoted to timeline 4 at 0/70BC648.
var tl4 = repmgr.Timelines{Current: 4, History: []repmgr.TimelineSwitch{{Timeline: 1, Switch: 0x3000000}, {Timeline: 2, Switch: 0x5000000}, {Timeline: 3, Switch: 0x70BC648}}}

// standbyFacts are the facts of a standby streaming from upstream, with
// repmgr.nodes as nodes.
func standbyFacts(upstream string, nodes ...repmgr.Node) actorFacts {
	f := actorFacts{Ready: true, Facts: repmgr.Facts{InRecovery: true, Nodes: nodes}, Known: nodes}
	if upstream != "" {
		f.Facts.WAL.SenderHost, f.Facts.WAL.SenderPort = upstream, 5432
	}
	return f
}

// streamingTimeline is f with its WAL receiver streaming timeline tli, the
// newest the standby knows of.
func streamingTimeline(f actorFacts, tli int32) actorFacts {
	f.Facts.WAL.ReceiverStatus, f.Facts.WAL.ReceivedTimeline, f.Facts.Server.Timeline = repmgr.StreamingState, &tli, int(tli)
	return f
}

// answers are what the actor's shell would find when nextAction asks.
type answers struct {
	primaryInRecovery bool
	primaryErr        error
	control           string // "": the instance runs
	// timelines and end are the committed primary's timeline history and
	// where the local WAL ends; forkErr, the failure to read them.
	timelines repmgr.Timelines
	end       repmgr.StandbyEnd
	forkErr   error
}

// decideAll runs nextAction as the actor's shell does, answering its
// needs from a, and says what it asked and what it decided.
func decideAll(o Options, f actorFacts, st Replicated, mem actorMemory, a answers) []string {
	var out []string
	in := nextAction(o, f, st, mem)
	for asked := 0; in.Need != needNothing; asked++ {
		if asked == 3 {
			return append(out, "more than three facts needed")
		}
		switch in.Need {
		case needPrimary:
			out = append(out, "probe "+in.Node.Name)
			f.Primary = &primaryProbe{Node: in.Node, InRecovery: a.primaryInRecovery, Err: a.primaryErr}
		case needStopped:
			out = append(out, "control file")
			f.Stopped = &stoppedInstance{Control: repmgr.Control{State: a.control}, Running: a.control == ""}
		case needFork:
			out = append(out, "timelines "+in.Node.Name)
			f.Fork = &forkProbe{Node: in.Node, Primary: a.timelines, Standby: a.end, Err: a.forkErr}
		}
		in = nextAction(o, f, st, mem)
	}
	for _, act := range in.Run {
		out = append(out, fmt.Sprintf("%s %d %s", act.Kind, act.Decision.Epoch, act.Primary.Name))
	}
	if len(in.Run) == 0 {
		out = append(out, "nothing: "+in.Why)
	}
	return out
}

// chose is the state where epoch 2 chose node in place of p, promoted when
// promoted is set.
func chose(node repmgr.Node, promoted bool) Replicated {
	st := promotedState()
	st.Epoch, st.Primary, st.PrimaryID = 2, node.Name, node.ID
	d := api.Decision{Epoch: 2, Primary: node.Name, PrimaryID: node.ID, OldPrimary: "p", At: t0}
	if promoted {
		at := t0
		d.PromotedAt = &at
	}
	st.History = append(st.History, d)
	return st
}

func TestNextAction(t *testing.T) {
	all := []repmgr.Node{actP, actS2, actS3}
	asS3 := Options{Self: "s3", Mode: api.ModePgquorum}
	asS2 := Options{Self: "s2", Mode: api.ModePgquorum}
	asP := Options{Self: "p", Mode: api.ModePgquorum, AutoRejoin: true}
	down := func(f actorFacts) actorFacts { f.ProbeErr = errors.New("connection refused"); return f }
	tests := []struct {
		name  string
		opts  Options
		facts actorFacts
		state Replicated
		mem   actorMemory
		a     answers
		want  []string // each a prefix
	}{
		{name: "no decision yet: nothing", opts: asS3, facts: standbyFacts("p", all...), state: Replicated{},
			want: []string{"nothing: no decision committed yet"}},
		{name: "no coordinator heard: nothing, the log may be stale", opts: asS3,
			facts: func() actorFacts { f := standbyFacts("p", all...); f.Ready = false; return f }(), state: chose(actS2, false),
			want: []string{"nothing: no coordinator is heard"}},
		{name: "the chosen node promotes", opts: asS2, facts: standbyFacts("", all...), state: chose(actS2, false),
			want: []string{"promote 2 "}},
		{name: "paused: the chosen node does not promote", opts: asS2, facts: standbyFacts("", all...),
			state: func() Replicated { st := chose(actS2, false); st.Pause = &Pause{Paused: true}; return st }(),
			want:  []string{"nothing: automatic failover is paused"}},
		{name: "failover.mode repmgrd: the chosen node leaves it to repmgrd", opts: Options{Self: "s2", Mode: api.ModeRepmgrd},
			facts: standbyFacts("", all...), state: chose(actS2, false), want: []string{"nothing: repmgrd promotes"}},
		{name: "another standby re-points at once to the chosen node, and waits for its promotion to follow", opts: asS3,
			facts: standbyFacts("p", all...), state: chose(actS2, false), a: answers{primaryInRecovery: true},
			want: []string{"probe s2", "repoint 2 s2"}},
		{name: "another standby, once the chosen node runs as primary, re-points and follows", opts: asS3,
			facts: standbyFacts("p", all...), state: chose(actS2, false),
			want: []string{"probe s2", "timelines s2", "repoint 2 s2", "follow 2 s2"}},
		{name: "a standby streaming from the promoted primary follows it the repmgr way", opts: asS3,
			facts: standbyFacts("s2", all...), state: chose(actS2, true),
			want: []string{"probe s2", "timelines s2", "follow 2 s2"}},
		{name: "a standby behind the fork follows", opts: asS3,
			facts: standbyFacts("p", all...), state: chose(actS2, true), a: answers{timelines: tl4, end: repmgr.StandbyEnd{Timeline: 3, End: 0x70B0000}},
			want: []string{"probe s2", "timelines s2", "follow 2 s2"}},
		{name: "a standby past the fork is rewound, with auto_rejoin", opts: Options{Self: "s3", Mode: api.ModePgquorum, AutoRejoin: true},
			facts: standbyFacts("p", all...), state: chose(actS2, true), a: answers{timelines: tl4, end: repmgr.StandbyEnd{Timeline: 3, End: 0x70BD000}},
			want: []string{"probe s2", "timelines s2", "rejoin 2 s2"}},
		{name: "a standby past the fork is left to the operator without auto_rejoin", opts: asS3,
			facts: standbyFacts("p", all...), state: chose(actS2, true), a: answers{timelines: tl4, end: repmgr.StandbyEnd{Timeline: 3, End: 0x70BD000}},
			want: []string{"probe s2", "timelines s2", "nothing: cannot follow s2, forked off s2's timeline 4 at 0/70BC648"}},
		{name: "a standby past the fork waits for the promotion to be recorded", opts: Options{Self: "s3", Mode: api.ModePgquorum, AutoRejoin: true},
			facts: standbyFacts("p", all...), state: chose(actS2, false), a: answers{timelines: tl4, end: repmgr.StandbyEnd{Timeline: 3, End: 0x70BD000}},
			want: []string{"probe s2", "timelines s2", "nothing: cannot follow s2, forked off s2's timeline 4 at 0/70BC648: its WAL on timeline 3 goes on to 0/70BD000: rewound once"}},
		{name: "a standby whose fork cannot be read follows, as before", opts: Options{Self: "s3", Mode: api.ModePgquorum, AutoRejoin: true},
			facts: standbyFacts("p", all...), state: chose(actS2, true), a: answers{forkErr: errors.New("permission denied for function pg_read_file")},
			want: []string{"probe s2", "timelines s2", "follow 2 s2"}},
		{name: "a rewind under way goes on while the standby runs", opts: Options{Self: "s3", Mode: api.ModePgquorum, AutoRejoin: true},
			facts: standbyFacts("", all...), state: chose(actS2, true),
			mem:  actorMemory{Attempts: map[actKey]*attempt{{2, api.ActionRejoin}: {n: 1, why: "rewinding"}}},
			want: []string{"probe s2", "rejoin 2 s2"}},
		{name: "a standby never points at a committed primary that does not answer", opts: asS3,
			facts: standbyFacts("p", all...), state: chose(actS2, false), a: answers{primaryErr: errors.New("timeout")},
			want: []string{"probe s2", "nothing: the committed primary does not answer: timeout"}},
		{name: "a standby repmgr already records under the committed primary, streaming from it, does nothing", opts: asS3,
			facts: streamingTimeline(standbyFacts("p", all...), 1), state: promotedState(), want: []string{"nothing: repmgr already records"}},
		{name: "a node running as primary that is not the committed one is left to fencing", opts: asS3,
			facts: func() actorFacts { f := standbyFacts("", all...); f.Facts.InRecovery = false; return f }(), state: chose(actS2, false),
			want: []string{"nothing: runs as primary"}},
		{name: "a former primary registered as such is rejoined, not followed", opts: Options{Self: "p"},
			facts: standbyFacts("", all...), state: chose(actS2, true), want: []string{"nothing: registered as a primary"}},
		{name: "a stopped former primary rejoins the promoted primary with auto_rejoin", opts: asP,
			facts: down(standbyFacts("", all...)), state: chose(actS2, true), a: answers{control: repmgr.StateShutDown},
			want: []string{"control file", "probe s2", "rejoin 2 s2"}},
		{name: "a crashed former primary (in production) rejoins too", opts: asP,
			facts: down(standbyFacts("", all...)), state: chose(actS2, true), a: answers{control: repmgr.StateInProduction},
			want: []string{"control file", "probe s2", "rejoin 2 s2"}},
		{name: "a former primary whose crash recovery failed (WAL disk full) rejoins too", opts: asP,
			facts: down(standbyFacts("", all...)), state: chose(actS2, true), a: answers{control: repmgr.StateInCrashRecovery},
			want: []string{"control file", "probe s2", "rejoin 2 s2"}},
		{name: "a running instance pgquorum cannot reach is not rejoined", opts: asP,
			facts: down(standbyFacts("", all...)), state: chose(actS2, true), a: answers{control: ""},
			want: []string{"control file", "nothing: not a stopped former primary"}},
		{name: "a stopped standby's control file is not rejoined", opts: asP,
			facts: down(standbyFacts("", all...)), state: chose(actS2, true), a: answers{control: "shut down in recovery"},
			want: []string{"control file", "nothing: not a stopped former primary"}},
		{name: "never rejoin a primary that does not answer as one", opts: asP,
			facts: down(standbyFacts("", all...)), state: chose(actS2, true), a: answers{control: repmgr.StateShutDown, primaryInRecovery: true},
			want: []string{"control file", "probe s2", "nothing: the committed primary does not answer as a primary"}},
		{name: "not before the new primary's promotion is recorded", opts: asP,
			facts: down(standbyFacts("", all...)), state: chose(actS2, false), want: []string{"nothing: the database is down, and no promoted primary"}},
		{name: "without auto_rejoin a stopped former primary stays down", opts: Options{Self: "p"},
			facts: down(standbyFacts("", all...)), state: chose(actS2, true), want: []string{"nothing: the database is down, and failover.auto_rejoin is off"}},
		{name: "a rejoin that failed is asked for again whatever the control file says (the runner spaces the attempts)", opts: asP,
			facts: down(standbyFacts("", all...)), state: chose(actS2, true), a: answers{control: "in archive recovery"},
			mem:  actorMemory{Attempts: map[actKey]*attempt{{2, api.ActionRejoin}: {n: maxAttempts}}},
			want: []string{"probe s2", "rejoin 2 s2"}},
		{name: "a rejoin that succeeded is not asked for again", opts: asP,
			facts: down(standbyFacts("", all...)), state: chose(actS2, true), a: answers{control: repmgr.StateShutDown},
			mem:  actorMemory{Attempts: map[actKey]*attempt{{2, api.ActionRejoin}: {n: 1, ok: true}}},
			want: []string{"nothing: the rejoin for this decision succeeded"}},
		{name: "the old primary of a switchover steps down", opts: Options{Self: "p"},
			facts: standbyFacts("", all...), state: switchingState(api.PhaseDemoting), want: []string{"demote 1 "}},
		{name: "an aborted switchover: the old primary that stopped starts again", opts: Options{Self: "p"},
			facts: down(standbyFacts("", all...)), state: switchingState(api.PhaseAborted), mem: actorMemory{DemotedFor: 2},
			want: []string{"restart 1 "}},
		{name: "an aborted switchover this node did not stop for is not its to restart", opts: Options{Self: "p"},
			facts: func() actorFacts { f := standbyFacts("", all...); f.Facts.InRecovery = false; return f }(), state: switchingState(api.PhaseAborted),
			want: []string{"nothing: runs as primary"}},
		{name: "once the target runs as primary, the old primary rejoins it, auto_rejoin or not", opts: Options{Self: "p"},
			facts: down(standbyFacts("", all...)), state: switchingState(api.PhasePromoting), mem: actorMemory{DemotedFor: 2}, a: answers{control: repmgr.StateShutDown},
			want: []string{"control file", "probe s2", "rejoin 2 s2"}},
		{name: "the old primary waits for the target's promotion to rejoin it", opts: Options{Self: "p"},
			facts: down(standbyFacts("", all...)),
			state: func() Replicated {
				st := switchingState(api.PhasePromoting)
				st.History[1].PromotedAt = nil
				return st
			}(), mem: actorMemory{DemotedFor: 2}, want: []string{"nothing: not before the successor runs as primary"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := decideAll(tt.opts, tt.facts, tt.state, tt.mem, tt.a)
			if !matches(got, tt.want) {
				t.Fatalf("step:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(tt.want, "\n  "))
			}
		})
	}
}
