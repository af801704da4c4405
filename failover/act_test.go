package failover

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

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

// standbyFacts are the facts of a standby streaming from upstream, with
// repmgr.nodes as nodes.
func standbyFacts(upstream string, nodes ...repmgr.Node) actorFacts {
	f := actorFacts{Ready: true, Facts: repmgr.Facts{InRecovery: true, Nodes: nodes}, Known: nodes}
	if upstream != "" {
		f.Facts.WAL.SenderHost, f.Facts.WAL.SenderPort = upstream, 5432
	}
	return f
}

// answers are what the actor's shell would find when nextAction asks.
type answers struct {
	primaryInRecovery bool
	primaryErr        error
	control           string // "": the instance runs
}

// decideAll runs nextAction as the actor's shell does, answering its
// needs from a, and says what it asked and what it decided.
func decideAll(o Options, f actorFacts, st Replicated, mem actorMemory, a answers) []string {
	var out []string
	in := nextAction(o, f, st, mem)
	for asked := 0; in.Need != needNothing; asked++ {
		if asked == 2 {
			return append(out, "more than two facts needed")
		}
		switch in.Need {
		case needPrimary:
			out = append(out, "probe "+in.Node.Name)
			f.Primary = &primaryProbe{Node: in.Node, InRecovery: a.primaryInRecovery, Err: a.primaryErr}
		case needStopped:
			out = append(out, "control file")
			f.Stopped = &stoppedInstance{Control: repmgr.Control{State: a.control}, Running: a.control == ""}
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
			want: []string{"probe s2", "repoint 2 s2", "follow 2 s2"}},
		{name: "a standby streaming from the promoted primary follows it the repmgr way", opts: asS3,
			facts: standbyFacts("s2", all...), state: chose(actS2, true),
			want: []string{"probe s2", "follow 2 s2"}},
		{name: "a standby never points at a committed primary that does not answer", opts: asS3,
			facts: standbyFacts("p", all...), state: chose(actS2, false), a: answers{primaryErr: errors.New("timeout")},
			want: []string{"probe s2", "nothing: the committed primary does not answer: timeout"}},
		{name: "a standby repmgr already records under the committed primary does nothing", opts: asS3,
			facts: standbyFacts("p", all...), state: promotedState(), want: []string{"nothing: repmgr already records"}},
		{name: "a node running as primary that is not the committed one is left to fencing", opts: asS3,
			facts: func() actorFacts { f := standbyFacts("", all...); f.Facts.InRecovery = false; return f }(), state: chose(actS2, false),
			want: []string{"nothing: runs as primary"}},
		{name: "a former primary registered as such is rejoined, not followed", opts: Options{Self: "p"},
			facts: standbyFacts("", all...), state: chose(actS2, true), want: []string{"nothing: registered as a primary"}},
		{name: "a stopped former primary rejoins the promoted primary with auto_rejoin", opts: asP,
			facts: down(standbyFacts("", all...)), state: chose(actS2, true), a: answers{control: "shut down"},
			want: []string{"control file", "probe s2", "rejoin 2 s2"}},
		{name: "a crashed former primary (in production) rejoins too", opts: asP,
			facts: down(standbyFacts("", all...)), state: chose(actS2, true), a: answers{control: "in production"},
			want: []string{"control file", "probe s2", "rejoin 2 s2"}},
		{name: "a running instance pgquorum cannot reach is not rejoined", opts: asP,
			facts: down(standbyFacts("", all...)), state: chose(actS2, true), a: answers{control: ""},
			want: []string{"control file", "nothing: not a stopped former primary"}},
		{name: "a stopped standby's control file is not rejoined", opts: asP,
			facts: down(standbyFacts("", all...)), state: chose(actS2, true), a: answers{control: "shut down in recovery"},
			want: []string{"control file", "nothing: not a stopped former primary"}},
		{name: "never rejoin a primary that does not answer as one", opts: asP,
			facts: down(standbyFacts("", all...)), state: chose(actS2, true), a: answers{control: "shut down", primaryInRecovery: true},
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
			facts: down(standbyFacts("", all...)), state: chose(actS2, true), a: answers{control: "shut down"},
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
			facts: down(standbyFacts("", all...)), state: switchingState(api.PhasePromoting), mem: actorMemory{DemotedFor: 2}, a: answers{control: "shut down"},
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

func TestFenceStep(t *testing.T) {
	primaryView := FenceView{Policy: api.FenceStop, Self: "p", DBUp: true, Registered: true, Ready: true, Primary: "s2", Epoch: 2, FenceAfter: 30 * time.Second}
	// cutOff: the committed primary, hearing no coordinator.
	cutOff := func(v *FenceView) { v.Ready, v.Primary = false, "p" }
	view := func(edits ...func(*FenceView)) FenceView {
		v := primaryView
		for _, e := range edits {
			e(&v)
		}
		return v
	}
	pos, reply := int64(4096), 1.0
	standbys := []string{"s2", "s3"}
	following := streamFacts{Standbys: standbys, Position: &pos, Streams: []repmgr.Stream{
		{Name: "s2", State: "streaming", ReplyAge: &reply, Flush: &pos}, {Name: "s3", State: "streaming", ReplyAge: &reply, Flush: &pos}}}
	tests := []struct {
		name   string
		facts  fenceFacts
		mem    fenceMemory
		at     time.Duration
		fence  string // a part of the reason; "" for no fence
		stepUp bool
		end    bool // the demotion ends
		clear  bool // the last fence is no longer shown
		mem2   fenceMemory
	}{
		{name: "rule 1: a primary while another committed primary runs is fenced",
			facts: fenceFacts{View: view(func(v *FenceView) { v.PrimaryRuns = true })},
			fence: "s2 is the committed primary of epoch 2", mem2: fenceMemory{FencedFor: "rule 1: runs as primary, but s2 is the committed primary of epoch 2, and runs as one"}},
		{name: "not twice in one episode",
			facts: fenceFacts{View: view(func(v *FenceView) { v.PrimaryRuns = true })}, mem: fenceMemory{FencedFor: "earlier"},
			mem2: fenceMemory{FencedFor: "earlier"}},
		{name: "a primary whose committed successor does not run is not fenced (it is adopted)",
			facts: fenceFacts{View: primaryView}, clear: true},
		{name: "no coordinator starts the clock",
			facts: fenceFacts{View: view(cutOff), Streams: streamFacts{Standbys: standbys}}, at: time.Second,
			mem2: fenceMemory{NotReadySince: t0.Add(time.Second)}, clear: true},
		{name: "a coordinator heard again stops it",
			facts: fenceFacts{View: view(func(v *FenceView) { v.Primary = "p" })}, mem: fenceMemory{NotReadySince: t0}, at: time.Minute, clear: true},
		{name: "rule 2: no coordinator for fence_after and no standby streams from it",
			facts: fenceFacts{View: view(cutOff), Streams: streamFacts{Standbys: standbys}, Window: 11 * time.Second},
			mem:   fenceMemory{NotReadySince: t0}, at: 30 * time.Second, fence: "rule 2: no coordinator for 30s",
			mem2: fenceMemory{NotReadySince: t0, FencedFor: "rule 2: no coordinator for 30s (failover.fence_after 30s), and only 0 of 2 standbys stream from it"}},
		{name: "rule 2: no coordinator for fence_after, and another node is the committed primary",
			facts: fenceFacts{View: view(func(v *FenceView) { v.Ready = false }), Streams: following, Window: 11 * time.Second},
			mem:   fenceMemory{NotReadySince: t0}, at: 30 * time.Second, fence: "and s2 is the committed primary of epoch 2",
			mem2: fenceMemory{NotReadySince: t0, FencedFor: "rule 2: no coordinator for 30s (failover.fence_after 30s), and s2 is the committed primary of epoch 2",
				Flushes: map[string]flushMark{"s2": {4096, t0.Add(30 * time.Second)}, "s3": {4096, t0.Add(30 * time.Second)}}}},
		{name: "never the committed primary both standbys follow live, with no coordinator for long",
			facts: fenceFacts{View: view(cutOff), Streams: following, Window: 11 * time.Second},
			mem:   fenceMemory{NotReadySince: t0}, at: time.Hour, clear: true,
			mem2: fenceMemory{NotReadySince: t0, Flushes: map[string]flushMark{"s2": {4096, t0.Add(time.Hour)}, "s3": {4096, t0.Add(time.Hour)}}}},
		{name: "the quiet period does not start the clock",
			facts: fenceFacts{View: view(cutOff, func(v *FenceView) { v.Quiet = true })}, at: time.Second, clear: true},
		{name: "no coordinator for less than fence_after does not",
			facts: fenceFacts{View: view(cutOff), Streams: streamFacts{Standbys: standbys}}, mem: fenceMemory{NotReadySince: t0}, at: 29 * time.Second,
			mem2: fenceMemory{NotReadySince: t0}, clear: true},
		{name: "the episode ends when the database stops",
			facts: fenceFacts{View: view(func(v *FenceView) { v.DBUp, v.PrimaryRuns = false, true })}, mem: fenceMemory{FencedFor: "x"}},
		{name: "a fenced node back as a standby answers again and ends its demotion",
			facts: fenceFacts{View: view(func(v *FenceView) { v.InRecovery = true }), SteppingDown: true, Demoting: true},
			mem:   fenceMemory{FencedFor: "x"}, stepUp: true, end: true, clear: true},
		{name: "a primary stepping down for a switchover stays down",
			facts: fenceFacts{View: primaryView, SteppingDown: true, Demoting: true}, clear: true},
		{name: "paused: no fence",
			facts:  fenceFacts{View: view(func(v *FenceView) { v.PrimaryRuns, v.Paused = true, true }), SteppingDown: true},
			stepUp: true, clear: true},
		{name: "fence off: no fence",
			facts: fenceFacts{View: view(func(v *FenceView) { v.PrimaryRuns, v.Policy = true, api.FenceOff })}, clear: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := fenceStep(tt.facts, tt.mem, t0.Add(tt.at))
			if (tt.fence == "") != (in.Fence == "") || !strings.Contains(in.Fence, tt.fence) {
				t.Errorf("fence %q, want one saying %q", in.Fence, tt.fence)
			}
			if in.StepUp != tt.stepUp || in.EndDemotion != tt.end || in.ClearShown != tt.clear {
				t.Errorf("step up %v, end demotion %v, clear %v; want %v, %v, %v", in.StepUp, in.EndDemotion, in.ClearShown, tt.stepUp, tt.end, tt.clear)
			}
			if !reflect.DeepEqual(in.Memory, tt.mem2) {
				t.Errorf("memory %+v, want %+v", in.Memory, tt.mem2)
			}
		})
	}
}

// TestLiveStreams: a registered standby streams live from this primary
// only with a recent reply and a flush position that moves or has caught
// up; a status alone is no evidence.
func TestLiveStreams(t *testing.T) {
	const window = 11 * time.Second
	f := func(v float64) *float64 { return &v }
	i := func(v int64) *int64 { return &v }
	now := t0.Add(time.Minute)
	tests := []struct {
		name   string
		stream repmgr.Stream
		pos    int64
		mark   *flushMark // the last step's, if any
		live   bool
		mark2  *flushMark
	}{
		{name: "streaming, replied, caught up", stream: repmgr.Stream{State: "streaming", ReplyAge: f(1), Flush: i(100)}, pos: 100,
			mark: &flushMark{100, t0}, live: true, mark2: &flushMark{100, now}},
		{name: "streaming, its last reply older than the window", stream: repmgr.Stream{State: "streaming", ReplyAge: f(12), Flush: i(100)}, pos: 100,
			mark2: &flushMark{100, now}},
		{name: "catching up is not streaming", stream: repmgr.Stream{State: "catchup", ReplyAge: f(1), Flush: i(50)}, pos: 100,
			mark2: &flushMark{50, now}},
		{name: "no reply yet", stream: repmgr.Stream{State: "streaming", Flush: i(100)}, pos: 100, mark2: &flushMark{100, now}},
		{name: "no flush reported yet", stream: repmgr.Stream{State: "streaming", ReplyAge: f(1)}, pos: 100},
		// The one-way partition: its replies come, its WAL does not.
		{name: "replies, but its flush has stood behind for longer than the window",
			stream: repmgr.Stream{State: "streaming", ReplyAge: f(1), Flush: i(50)}, pos: 100,
			mark: &flushMark{50, now.Add(-12 * time.Second)}, mark2: &flushMark{50, now.Add(-12 * time.Second)}},
		{name: "behind, but advancing", stream: repmgr.Stream{State: "streaming", ReplyAge: f(1), Flush: i(60)}, pos: 100,
			mark: &flushMark{50, now.Add(-12 * time.Second)}, live: true, mark2: &flushMark{60, now}},
		{name: "behind, for less than the window", stream: repmgr.Stream{State: "streaming", ReplyAge: f(1), Flush: i(50)}, pos: 100,
			mark: &flushMark{50, now.Add(-5 * time.Second)}, live: true, mark2: &flushMark{50, now.Add(-5 * time.Second)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.stream.Name = "s2"
			facts := streamFacts{Standbys: []string{"s2"}, Position: &tt.pos,
				Streams: []repmgr.Stream{tt.stream, {Name: "unregistered", State: "streaming", ReplyAge: f(0), Flush: &tt.pos}}}
			var marks map[string]flushMark
			if tt.mark != nil {
				marks = map[string]flushMark{"s2": *tt.mark}
			}
			live, next := liveStreams(facts, marks, now, window)
			if want := map[bool]int{false: 0, true: 1}[tt.live]; live != want {
				t.Errorf("live %d, want %d", live, want)
			}
			var want map[string]flushMark
			if tt.mark2 != nil {
				want = map[string]flushMark{"s2": *tt.mark2}
			}
			if !reflect.DeepEqual(next, want) {
				t.Errorf("marks %+v, want %+v", next, want)
			}
		})
	}
}

// TestRegisteredStandbys: the standbys a replacement would come from are
// the active standbys besides this node; not a witness, not an inactive row
// (a former primary's).
func TestRegisteredStandbys(t *testing.T) {
	nodes := []repmgr.Node{{Name: "p", Type: repmgr.TypePrimary, Active: true}, {Name: "s2", Type: repmgr.TypeStandby, Active: true},
		{Name: "s3", Type: repmgr.TypeStandby}, {Name: "w", Type: repmgr.TypeWitness, Active: true}, {Name: "old", Type: repmgr.TypePrimary}}
	if got := registeredStandbys(nodes, "p"); !reflect.DeepEqual(got, []string{"s2"}) {
		t.Errorf("registeredStandbys = %q, want [s2]", got)
	}
}

func TestNeedsPrimaryProbe(t *testing.T) {
	v := FenceView{Policy: api.FenceStop, Self: "p", DBUp: true, Ready: true, Primary: "s2"}
	if !needsPrimaryProbe(v) {
		t.Error("a primary hearing of another committed primary must probe it")
	}
	for name, edit := range map[string]func(*FenceView){
		"a standby":             func(v *FenceView) { v.InRecovery = true },
		"the committed primary": func(v *FenceView) { v.Primary = "p" },
		"no coordinator heard":  func(v *FenceView) { v.Ready = false },
		"fencing off":           func(v *FenceView) { v.Policy = api.FenceOff },
		"its database is down":  func(v *FenceView) { v.DBUp = false },
		"no primary committed":  func(v *FenceView) { v.Primary = "" },
	} {
		w := v
		edit(&w)
		if needsPrimaryProbe(w) {
			t.Errorf("%s probes the committed primary", name)
		}
	}
}
