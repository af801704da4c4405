package failover

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/repmgr"
)

func TestFenceStep(t *testing.T) {
	primaryView := FenceView{Policy: api.FenceStop, Self: "p", DBUp: true, Registered: true, Ready: true, Primary: "s2", Epoch: 2,
		FenceAfter: 30 * time.Second, AdoptWithin: 8 * time.Second, Members: 3}
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
	stream := func(name string) repmgr.Stream {
		return repmgr.Stream{Name: name, State: repmgr.StreamingState, Reply: &reply, Flush: &pos}
	}
	following := streamFacts{Standbys: standbys, Position: &pos, Known: true, Streams: []repmgr.Stream{stream("s2"), stream("s3")}}
	marksAt := func(at time.Time, names ...string) map[string]streamMark {
		m := map[string]streamMark{}
		for _, n := range names {
			m[n] = streamMark{LSN: 4096, FlushAt: at, Reply: reply, ReplyAt: at, Streaming: true}
		}
		return m
	}
	started := t0.Add(-time.Hour) // this process started an hour before t0, its quiet period long over
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
			fence: "s2 is the committed primary of epoch 2", mem2: fenceMemory{DeposedSince: t0, FencedFor: "rule 1: runs as primary, but s2 is the committed primary of epoch 2, and runs as one"}},
		{name: "not twice in one episode",
			facts: fenceFacts{View: view(func(v *FenceView) { v.PrimaryRuns = true })}, mem: fenceMemory{FencedFor: "earlier"},
			mem2: fenceMemory{DeposedSince: t0, FencedFor: "earlier"}},
		{name: "rule 1: a deposed primary whose successor does not answer it is not fenced before the coordinator could adopt it",
			facts: fenceFacts{View: primaryView}, mem: fenceMemory{DeposedSince: t0}, at: 29 * time.Second,
			mem2: fenceMemory{DeposedSince: t0}, clear: true},
		// Issue 17, review finding 1: node1 cut off from node2's database
		// only was never fenced.
		{name: "rule 1: a deposed primary whose successor does not answer it is fenced after fence_after, not adopted",
			facts: fenceFacts{View: primaryView}, mem: fenceMemory{DeposedSince: t0}, at: 30 * time.Second,
			fence: "rule 1: runs as primary, but s2 is the committed primary of epoch 2, and has not adopted this node for 30s",
			mem2:  fenceMemory{DeposedSince: t0, FencedFor: "rule 1: runs as primary, but s2 is the committed primary of epoch 2, and has not adopted this node for 30s (its database does not answer this node)"}},
		{name: "rule 1 waits for an adoption longer than fence_after",
			facts: fenceFacts{View: view(func(v *FenceView) { v.FenceAfter = time.Second })}, mem: fenceMemory{DeposedSince: t0}, at: 7 * time.Second,
			mem2: fenceMemory{DeposedSince: t0}, clear: true},
		{name: "rule 1's clock starts when it hears another committed primary",
			facts: fenceFacts{View: primaryView}, at: time.Second, mem2: fenceMemory{DeposedSince: t0.Add(time.Second)}, clear: true},
		{name: "rule 1's clock goes on through a brief loss of the coordinator",
			facts: fenceFacts{View: view(func(v *FenceView) { v.Ready = false })}, mem: fenceMemory{DeposedSince: t0}, at: 2 * time.Second,
			mem2: fenceMemory{DeposedSince: t0, NotReadySince: t0.Add(2 * time.Second)}, clear: true},
		{name: "rule 1 not for a primary stepping down for a switchover",
			facts: fenceFacts{View: primaryView, Demoting: true}, mem: fenceMemory{DeposedSince: t0}, at: time.Hour, clear: true},
		{name: "no coordinator starts the clock",
			facts: fenceFacts{View: view(cutOff), Streams: streamFacts{Standbys: standbys, Known: true}}, at: time.Second,
			mem2: fenceMemory{NotReadySince: t0.Add(time.Second)}, clear: true},
		{name: "a coordinator heard again stops it",
			facts: fenceFacts{View: view(func(v *FenceView) { v.Primary = "p" })}, mem: fenceMemory{NotReadySince: t0}, at: time.Minute, clear: true},
		{name: "rule 2: no coordinator for fence_after and no standby streams from it",
			facts: fenceFacts{View: view(cutOff), Streams: streamFacts{Standbys: standbys, Known: true}, Window: 11 * time.Second},
			mem:   fenceMemory{NotReadySince: t0}, at: 30 * time.Second, fence: "rule 2: no coordinator for 30s",
			mem2: fenceMemory{NotReadySince: t0, FencedFor: "rule 2: no coordinator for 30s (failover.fence_after 30s), and only 0 of 2 standbys stream from it (2 needed of 3 registered nodes)"}},
		{name: "rule 2: no coordinator for fence_after, and another node is the committed primary",
			facts: fenceFacts{View: view(func(v *FenceView) { v.Ready = false }), Streams: following, Window: 11 * time.Second},
			mem:   fenceMemory{NotReadySince: t0}, at: 30 * time.Second, fence: "and s2 is the committed primary of epoch 2",
			mem2: fenceMemory{NotReadySince: t0, DeposedSince: t0.Add(30 * time.Second), FencedFor: "rule 2: no coordinator for 30s (failover.fence_after 30s), and s2 is the committed primary of epoch 2",
				Marks: marksAt(t0.Add(30*time.Second), "s2", "s3")}},
		{name: "never the committed primary both standbys follow live, with no coordinator for long",
			facts: fenceFacts{View: view(cutOff), Streams: following, Window: 11 * time.Second},
			mem:   fenceMemory{NotReadySince: t0}, at: time.Hour, clear: true,
			mem2: fenceMemory{NotReadySince: t0, Marks: marksAt(t0.Add(time.Hour), "s2", "s3")}},
		// Review finding 2: a stale "paused" in the log of a node cut off
		// kept it from ever being fenced.
		{name: "rule 2: a pause in the log of a node that hears no coordinator does not hold",
			facts: fenceFacts{View: view(func(v *FenceView) { v.Ready, v.Paused = false, true }), Streams: following, Window: 11 * time.Second},
			mem:   fenceMemory{NotReadySince: t0}, at: 30 * time.Second, fence: "rule 2: no coordinator for 30s (failover.fence_after 30s), and s2 is the committed primary",
			mem2: fenceMemory{NotReadySince: t0, DeposedSince: t0.Add(30 * time.Second), FencedFor: "rule 2: no coordinator for 30s (failover.fence_after 30s), and s2 is the committed primary of epoch 2",
				Marks: marksAt(t0.Add(30*time.Second), "s2", "s3")}},
		{name: "paused, hearing a coordinator: no fence",
			facts:  fenceFacts{View: view(func(v *FenceView) { v.PrimaryRuns, v.Paused = true, true }), SteppingDown: true},
			mem2:   fenceMemory{DeposedSince: t0},
			stepUp: true, clear: true},
		// Review finding 3: a probe that fails while the postmaster runs
		// as primary (the fencer's facts say DBUp) leaves the marks to age.
		{name: "rule 2: with the local probe failing, the last marks age out",
			facts: fenceFacts{View: view(cutOff), Streams: streamFacts{Standbys: standbys}, Window: 11 * time.Second},
			mem:   fenceMemory{NotReadySince: t0, Marks: marksAt(t0.Add(18*time.Second), "s2", "s3")}, at: 30 * time.Second,
			fence: "only 0 of 2 standbys stream from it",
			mem2: fenceMemory{NotReadySince: t0, Marks: marksAt(t0.Add(18*time.Second), "s2", "s3"),
				FencedFor: "rule 2: no coordinator for 30s (failover.fence_after 30s), and only 0 of 2 standbys stream from it (2 needed of 3 registered nodes)"}},
		{name: "with the local probe failing for less than the window, the streams still count",
			facts: fenceFacts{View: view(cutOff), Streams: streamFacts{Standbys: standbys}, Window: 11 * time.Second},
			mem:   fenceMemory{NotReadySince: t0, Marks: marksAt(t0.Add(20*time.Second), "s2", "s3")}, at: 30 * time.Second,
			mem2: fenceMemory{NotReadySince: t0, Marks: marksAt(t0.Add(20*time.Second), "s2", "s3")}, clear: true},
		// Review finding 6: the quiet period after a start no longer holds
		// back a clock a previous run of pgquorum started.
		{name: "the quiet period does not count towards rule 2",
			facts: fenceFacts{View: view(cutOff, func(v *FenceView) { v.Quiet = true }), Streams: streamFacts{Standbys: standbys, Known: true},
				Started: t0, QuietUntil: t0.Add(10 * time.Second)},
			mem: fenceMemory{NotReadySince: t0}, at: 9 * time.Second, mem2: fenceMemory{NotReadySince: t0}, clear: true},
		{name: "after the quiet period, rule 2's clock counts from its end",
			facts: fenceFacts{View: view(cutOff), Streams: streamFacts{Standbys: standbys, Known: true}, Started: t0, QuietUntil: t0.Add(10 * time.Second)},
			mem:   fenceMemory{NotReadySince: t0}, at: 39 * time.Second, mem2: fenceMemory{NotReadySince: t0}, clear: true},
		{name: "rule 2: a clock carried over a restart counts in full, quiet period or not",
			facts: fenceFacts{View: view(cutOff, func(v *FenceView) { v.Quiet = true }), Streams: streamFacts{Standbys: standbys, Known: true},
				Started: t0.Add(25 * time.Second), QuietUntil: t0.Add(35 * time.Second), Saved: t0.Add(24 * time.Second)},
			mem: fenceMemory{NotReadySince: t0}, at: 30 * time.Second, fence: "rule 2: no coordinator for 30s",
			mem2: fenceMemory{NotReadySince: t0, FencedFor: "rule 2: no coordinator for 30s (failover.fence_after 30s), and only 0 of 2 standbys stream from it (2 needed of 3 registered nodes)"}},
		// A restarted node's FSM holds nothing past its snapshot until it
		// hears a leader: the decision it kept stands for it.
		{name: "rule 2: a restarted node cut off fences on the decision it kept, not at epoch 0",
			facts: fenceFacts{View: view(cutOff, func(v *FenceView) { v.Epoch, v.Primary, v.Quiet = 0, "", true }), Streams: streamFacts{Standbys: standbys, Known: true},
				Started: t0.Add(25 * time.Second), QuietUntil: t0.Add(35 * time.Second), Saved: t0.Add(24 * time.Second)},
			mem: fenceMemory{Epoch: 2, Primary: "s2", NotReadySince: t0}, at: 30 * time.Second, fence: "and s2 is the committed primary of epoch 2",
			mem2: fenceMemory{Epoch: 2, Primary: "s2", NotReadySince: t0, DeposedSince: t0.Add(30 * time.Second), FencedFor: "rule 2: no coordinator for 30s (failover.fence_after 30s), and s2 is the committed primary of epoch 2"}},
		// Review: a planned stop of the whole cluster left a clock in the
		// fence state file that fenced the primary at its first step hours
		// later, before its Raft member could hear a leader.
		{name: "a clock carried over a stop longer than fence_after starts afresh, quiet period included",
			facts: fenceFacts{View: view(cutOff, func(v *FenceView) { v.Quiet = true }), Streams: streamFacts{Standbys: standbys, Known: true},
				Started: t0.Add(time.Hour), QuietUntil: t0.Add(time.Hour + 10*time.Second), Saved: t0.Add(time.Hour - 31*time.Second)},
			mem: fenceMemory{NotReadySince: t0, Marks: marksAt(t0, "s2", "s3")}, at: time.Hour + time.Second,
			mem2: fenceMemory{NotReadySince: t0.Add(time.Hour + time.Second)}, clear: true},
		{name: "rule 2: the fresh clock of a long stop counts from the end of the quiet period",
			facts: fenceFacts{View: view(cutOff), Streams: streamFacts{Standbys: standbys, Known: true},
				Started: t0.Add(time.Hour), QuietUntil: t0.Add(time.Hour + 10*time.Second)},
			mem: fenceMemory{NotReadySince: t0.Add(time.Hour + time.Second)}, at: time.Hour + 40*time.Second, fence: "rule 2: no coordinator for 30s",
			mem2: fenceMemory{NotReadySince: t0.Add(time.Hour + time.Second),
				FencedFor: "rule 2: no coordinator for 30s (failover.fence_after 30s), and only 0 of 2 standbys stream from it (2 needed of 3 registered nodes)"}},
		{name: "a clock carried without the time of its save starts afresh",
			facts: fenceFacts{View: view(cutOff, func(v *FenceView) { v.Quiet = true }), Streams: streamFacts{Standbys: standbys, Known: true},
				Started: t0.Add(25 * time.Second), QuietUntil: t0.Add(35 * time.Second)},
			mem: fenceMemory{NotReadySince: t0}, at: 30 * time.Second, mem2: fenceMemory{NotReadySince: t0.Add(30 * time.Second)}, clear: true},
		{name: "rule 1: a deposition carried over a long stop starts afresh",
			facts: fenceFacts{View: view(func(v *FenceView) { v.Quiet = true }), Started: t0.Add(time.Hour), QuietUntil: t0.Add(time.Hour + 10*time.Second),
				Saved: t0.Add(time.Hour - time.Minute)},
			mem: fenceMemory{DeposedSince: t0}, at: time.Hour + time.Second, mem2: fenceMemory{DeposedSince: t0.Add(time.Hour + time.Second)}, clear: true},
		{name: "rule 1: a deposition carried over a quick restart counts in full",
			facts: fenceFacts{View: view(func(v *FenceView) { v.Quiet = true }), Started: t0.Add(time.Hour), QuietUntil: t0.Add(time.Hour + 10*time.Second),
				Saved: t0.Add(time.Hour - time.Second)},
			mem: fenceMemory{DeposedSince: t0}, at: time.Hour + time.Second, fence: "rule 1: runs as primary, but s2 is the committed primary of epoch 2, and has not adopted this node for 1h0m1s",
			mem2: fenceMemory{DeposedSince: t0, FencedFor: "rule 1: runs as primary, but s2 is the committed primary of epoch 2, and has not adopted this node for 1h0m1s (its database does not answer this node)"}},
		{name: "never at epoch 0, carried clock or not",
			facts: fenceFacts{View: view(cutOff, func(v *FenceView) { v.Epoch, v.Primary = 0, "" }), Streams: streamFacts{Standbys: standbys, Known: true},
				Started: t0.Add(25 * time.Second), QuietUntil: t0.Add(35 * time.Second), Saved: t0.Add(24 * time.Second)},
			mem: fenceMemory{NotReadySince: t0}, at: time.Hour, mem2: fenceMemory{NotReadySince: t0}, clear: true},
		{name: "no coordinator for less than fence_after does not",
			facts: fenceFacts{View: view(cutOff), Streams: streamFacts{Standbys: standbys, Known: true}, Started: started}, mem: fenceMemory{NotReadySince: t0}, at: 29 * time.Second,
			mem2: fenceMemory{NotReadySince: t0}, clear: true},
		{name: "the episode ends when the database stops",
			facts: fenceFacts{View: view(func(v *FenceView) { v.DBUp, v.PrimaryRuns = false, true })}, mem: fenceMemory{FencedFor: "x"}},
		{name: "a fenced node back as a standby answers again and ends its demotion",
			facts: fenceFacts{View: view(func(v *FenceView) { v.InRecovery = true }), SteppingDown: true, Demoting: true},
			mem:   fenceMemory{FencedFor: "x"}, stepUp: true, end: true, clear: true},
		{name: "a primary stepping down for a switchover stays down",
			facts: fenceFacts{View: primaryView, SteppingDown: true, Demoting: true}, clear: true},
		{name: "fence off: no fence",
			facts: fenceFacts{View: view(func(v *FenceView) { v.PrimaryRuns, v.Policy = true, api.FenceOff })}, mem2: fenceMemory{DeposedSince: t0}, clear: true},
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
			want := tt.mem2
			if want.Epoch == 0 && want.Primary == "" { // the latest decision known, kept
				want.Epoch, want.Primary = tt.facts.View.Epoch, tt.facts.View.Primary
			}
			if !reflect.DeepEqual(in.Memory, want) {
				t.Errorf("memory %+v, want %+v", in.Memory, want)
			}
		})
	}
}

// TestStreamsNeeded: rule 2 counts live streams against the registered
// cluster (the Raft voters), not against the standbys alone (review
// finding 5): with a witness, or more nodes than standbys, a majority of
// the standbys is not enough.
func TestStreamsNeeded(t *testing.T) {
	tests := []struct {
		name                    string
		members, standbys, live int
		followed                bool
	}{
		{"three nodes: both standbys", 3, 2, 2, true},
		{"three nodes: one standby", 3, 2, 1, false},
		{"two nodes: the standby streams", 2, 1, 1, true},
		{"two nodes: the standby does not", 2, 1, 0, false},
		{"a primary, a standby and a witness: the only standby streams (none to promote)", 3, 1, 1, true},
		{"five nodes, four standbys: three stream", 5, 4, 3, true},
		{"five nodes, four standbys: two stream", 5, 4, 2, false},
		// Two of three standbys are a majority of the standbys, but the
		// standby that does not stream, the witness and this node make a
		// Raft majority of five without them.
		{"five nodes, three standbys and a witness: two stream", 5, 3, 2, false},
		{"five nodes, three standbys and a witness: all three stream", 5, 3, 3, true},
		{"no active standby registered: it cannot show it was not replaced", 2, 0, 0, false},
	}
	for _, tt := range tests {
		v := FenceView{Members: tt.members, Standbys: tt.standbys, Live: tt.live}
		if got := v.followed(); got != tt.followed {
			t.Errorf("%s: followed %v, want %v (needed %d)", tt.name, got, tt.followed, v.streamsNeeded())
		}
	}
}

// TestLiveStreams: a registered standby streams live from this primary
// only when this node saw its reply_time change and its flush position move
// (or catch up) within the window, by this node's clock; a status alone is
// no evidence, nor is a reply age computed with the standby's clock.
func TestLiveStreams(t *testing.T) {
	const window = 11 * time.Second
	f := func(v float64) *float64 { return &v }
	i := func(v int64) *int64 { return &v }
	now := t0.Add(time.Minute)
	long, short := now.Add(-12*time.Second), now.Add(-5*time.Second)
	mark := func(lsn int64, flushAt time.Time, reply float64, replyAt time.Time, streaming bool) *streamMark {
		return &streamMark{LSN: lsn, FlushAt: flushAt, Reply: reply, ReplyAt: replyAt, Streaming: streaming}
	}
	tests := []struct {
		name   string
		stream *repmgr.Stream // nil: no walsender
		known  bool
		pos    int64
		mark   *streamMark // the last step's, if any
		live   bool
		mark2  *streamMark
	}{
		{name: "first seen: the benefit of the doubt for one window", known: true,
			stream: &repmgr.Stream{State: repmgr.StreamingState, Reply: f(7), Flush: i(100)}, pos: 100, live: true, mark2: mark(100, now, 7, now, true)},
		{name: "streaming, replied again, caught up", known: true, stream: &repmgr.Stream{State: repmgr.StreamingState, Reply: f(8), Flush: i(100)}, pos: 100,
			mark: mark(100, long, 7, long, true), live: true, mark2: mark(100, now, 8, now, true)},
		// Review finding 4: reply_age is now() - reply_time, two clocks;
		// a standby whose clock runs ahead shows a young reply for ever.
		{name: "its reply_time has not changed for longer than the window, however young its age looks", known: true,
			stream: &repmgr.Stream{State: repmgr.StreamingState, ReplyAge: f(-30), Reply: f(7), Flush: i(100)}, pos: 100,
			mark: mark(100, long, 7, long, true), mark2: mark(100, now, 7, long, true)},
		{name: "its reply_time changed within the window, however old its age looks", known: true,
			stream: &repmgr.Stream{State: repmgr.StreamingState, ReplyAge: f(3600), Reply: f(7), Flush: i(100)}, pos: 100,
			mark: mark(100, long, 7, short, true), live: true, mark2: mark(100, now, 7, short, true)},
		{name: "catching up is not streaming", known: true, stream: &repmgr.Stream{State: "catchup", Reply: f(8), Flush: i(50)}, pos: 100,
			mark: mark(40, long, 7, long, true), mark2: mark(50, now, 8, now, false)},
		{name: "no reply yet", known: true, stream: &repmgr.Stream{State: repmgr.StreamingState, Flush: i(100)}, pos: 100, mark2: mark(100, now, 0, time.Time{}, true)},
		{name: "no flush reported yet", known: true, stream: &repmgr.Stream{State: repmgr.StreamingState, Reply: f(1)}, pos: 100},
		// The one-way partition: its replies come, its WAL does not.
		{name: "replies, but its flush has stood behind for longer than the window", known: true,
			stream: &repmgr.Stream{State: repmgr.StreamingState, Reply: f(8), Flush: i(50)}, pos: 100,
			mark: mark(50, long, 7, long, true), mark2: mark(50, long, 8, now, true)},
		{name: "behind, but advancing", known: true, stream: &repmgr.Stream{State: repmgr.StreamingState, Reply: f(8), Flush: i(60)}, pos: 100,
			mark: mark(50, long, 7, long, true), live: true, mark2: mark(60, now, 8, now, true)},
		{name: "behind, for less than the window", known: true, stream: &repmgr.Stream{State: repmgr.StreamingState, Reply: f(8), Flush: i(50)}, pos: 100,
			mark: mark(50, short, 7, long, true), live: true, mark2: mark(50, short, 8, now, true)},
		{name: "gone from pg_stat_replication: its mark stays, not streaming", known: true, pos: 100,
			mark: mark(100, short, 7, short, true), mark2: mark(100, short, 7, short, false)},
		{name: "the probe failed: the mark stands, live while within the window", pos: 100,
			mark: mark(100, short, 7, short, true), live: true, mark2: mark(100, short, 7, short, true)},
		{name: "the probe failed: the mark stands, and ages out", pos: 100,
			mark: mark(100, long, 7, short, true), mark2: mark(100, long, 7, short, true)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			facts := streamFacts{Standbys: []string{"s2"}, Position: &tt.pos, Known: tt.known,
				Streams: []repmgr.Stream{{Name: "unregistered", State: repmgr.StreamingState, Reply: f(0), Flush: &tt.pos}}}
			if tt.stream != nil {
				s := *tt.stream
				s.Name = "s2"
				facts.Streams = append(facts.Streams, s)
			}
			var marks map[string]streamMark
			if tt.mark != nil {
				marks = map[string]streamMark{"s2": *tt.mark}
			}
			live, next := liveStreams(facts, marks, now, window)
			if want := map[bool]int{false: 0, true: 1}[tt.live]; live != want {
				t.Errorf("live %d, want %d", live, want)
			}
			var want map[string]streamMark
			if tt.mark2 != nil {
				want = map[string]streamMark{"s2": *tt.mark2}
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

// TestFencerProbeFailsPostmasterRuns: review finding 3. The local probe
// fails (a busy machine) while postmaster.pid names a live postmaster with
// no standby.signal: the fence does not wait for the probe. With a
// standby.signal, or no postmaster, nothing is fenced.
func TestFencerProbeFailsPostmasterRuns(t *testing.T) {
	for _, tt := range []struct {
		name       string
		postmaster repmgr.RunningServer
		calls      []string
	}{
		{"a postmaster without standby.signal runs: fenced", repmgr.RunningServer{PID: 4242}, []string{"probe s2", "stop"}},
		{"a postmaster with standby.signal runs: not fenced", repmgr.RunningServer{PID: 4242, Standby: true}, nil},
		{"no postmaster: not fenced", repmgr.RunningServer{}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			local := localAs("-")
			local.facts.ProbeErr = errors.New("probe local node: timeout: context deadline exceeded")
			local.facts.Facts = repmgr.Facts{} // a failed probe says nothing
			actions := &fakeActions{inRecovery: map[string]bool{"s2": false}, postmaster: tt.postmaster}
			c := newShells(t, shellOpts("p"), local, actions, &fakeReporters{}, chose(actS2, true))
			c.act.step(context.Background())
			if got := actions.called(); !reflect.DeepEqual(got, tt.calls) {
				t.Errorf("calls %q, want %q", got, tt.calls)
			}
		})
	}
}

// TestFencerClockSurvivesRestart: review finding 6. A pgquorum that hears
// no coordinator leaves its clock in the Raft directory; started again (a
// crash loop), with an FSM that holds no decision until it hears a leader,
// it fences on the decision it kept as soon as fence_after has passed since
// the first run lost its coordinator, although its own quiet period has
// just begun. At epoch 0 it never does.
func TestFencerClockSurvivesRestart(t *testing.T) {
	for _, tt := range []struct {
		name  string
		state Replicated
		fence bool
	}{
		{"a restart during rule 2's clock: fenced in the quiet period", func() Replicated { st := chose(actS2, true); st.Primary = "p"; return st }(), true},
		{"a cluster's first start (epoch 0): never", Replicated{}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			now := t0
			opts := shellOpts("p")
			opts.Raft.Dir, opts.FenceAfter, opts.Quiet = dir, 10*time.Second, 5*time.Second
			opts.Now = func() time.Time { return now }
			// The first run: no coordinator, standbys not streaming.
			first := newShells(t, opts, localAs("-"), &fakeActions{}, &fakeReporters{}, tt.state)
			first.act.ready = func() bool { return false }
			for range 3 {
				first.act.step(context.Background())
				now = now.Add(2 * time.Second)
			}
			b, err := os.ReadFile(filepath.Join(dir, fenceStateFile))
			if err != nil || !strings.Contains(string(b), "not_ready_since") {
				t.Fatalf("fence state %q, %v: want rule 2's clock", b, err)
			}
			// Restarted 6 s after the first run lost its coordinator, then
			// stepping until 12 s: within the new run's quiet period, past
			// fence_after since the first run's clock started.
			// Its FSM holds no decision until it hears a leader.
			actions := &fakeActions{}
			second := newShells(t, opts, localAs("-"), actions, &fakeReporters{}, Replicated{})
			second.act.ready = func() bool { return false }
			for range 4 {
				second.act.step(context.Background())
				now = now.Add(2 * time.Second)
			}
			if fenced := reflect.DeepEqual(actions.called(), []string{"stop"}); fenced != tt.fence {
				t.Errorf("calls %q; want a fence: %v", actions.called(), tt.fence)
			}
		})
	}
}

// TestFenceStoreOnlyMarksMoved: a state that only moves the marks is
// written at most every refresh interval; a clock that starts, at once.
func TestFenceStoreOnlyMarksMoved(t *testing.T) {
	s := &fenceStore{dir: t.TempDir(), every: time.Second}
	marks := func(at time.Time) map[string]streamMark {
		return map[string]streamMark{"s2": {LSN: 1, FlushAt: at, ReplyAt: at, Streaming: true}}
	}
	written := func() fenceMemory {
		t.Helper()
		m, _, err := (&fenceStore{dir: s.dir}).load()
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	steps := []struct {
		at   time.Duration
		mem  fenceMemory
		want fenceMemory
	}{
		{0, fenceMemory{NotReadySince: t0, Marks: marks(t0)}, fenceMemory{NotReadySince: t0, Marks: marks(t0)}},
		{500 * time.Millisecond, fenceMemory{NotReadySince: t0, Marks: marks(t0.Add(500 * time.Millisecond))}, fenceMemory{NotReadySince: t0, Marks: marks(t0)}},
		{time.Second, fenceMemory{NotReadySince: t0, Marks: marks(t0.Add(time.Second))}, fenceMemory{NotReadySince: t0, Marks: marks(t0.Add(time.Second))}},
		{1100 * time.Millisecond, fenceMemory{DeposedSince: t0, Marks: marks(t0.Add(time.Second))}, fenceMemory{DeposedSince: t0, Marks: marks(t0.Add(time.Second))}},
	}
	for i, st := range steps {
		if err := s.save(st.mem, false, t0.Add(st.at)); err != nil {
			t.Fatal(err)
		}
		if got := written(); !reflect.DeepEqual(got, st.want) {
			t.Errorf("step %d: written %+v, want %+v", i, got, st.want)
		}
	}
}

// TestFenceStoreHeartbeat: while a clock runs, the state is written at
// least every interval with the time of the save, which the next run
// reads (carriedRecently); with no clock running, only changes are.
func TestFenceStoreHeartbeat(t *testing.T) {
	s := &fenceStore{dir: t.TempDir(), every: time.Second}
	clock := fenceMemory{NotReadySince: t0}
	steps := []struct {
		at    time.Duration
		mem   fenceMemory
		saved time.Duration // the time the file says it was saved at
	}{
		{0, clock, 0},
		{500 * time.Millisecond, clock, 0},
		{time.Second, clock, time.Second},
		{1100 * time.Millisecond, fenceMemory{}, 1100 * time.Millisecond},
		{5 * time.Second, fenceMemory{}, 1100 * time.Millisecond},
		{5100 * time.Millisecond, fenceMemory{DeposedSince: t0}, 5100 * time.Millisecond},
		{5200 * time.Millisecond, fenceMemory{DeposedSince: t0}, 5100 * time.Millisecond},
		{6100 * time.Millisecond, fenceMemory{DeposedSince: t0}, 6100 * time.Millisecond},
	}
	for i, st := range steps {
		if err := s.save(st.mem, true, t0.Add(st.at)); err != nil {
			t.Fatal(err)
		}
		m, saved, err := (&fenceStore{dir: s.dir}).load()
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(m, st.mem) || !saved.Equal(t0.Add(st.saved)) {
			t.Errorf("step %d: written %+v saved at %s, want %+v saved at %s", i, m, saved, st.mem, t0.Add(st.saved))
		}
	}
	// A new run beats at its first step: its predecessor's time is not its own.
	next := &fenceStore{dir: s.dir, every: time.Second}
	if _, _, err := next.load(); err != nil {
		t.Fatal(err)
	}
	if err := next.save(fenceMemory{DeposedSince: t0}, true, t0.Add(6200*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if _, saved, err := next.load(); err != nil || !saved.Equal(t0.Add(6200*time.Millisecond)) {
		t.Errorf("a new run's first save: saved at %s (%v), want %s", saved, err, t0.Add(6200*time.Millisecond))
	}
}

// TestFenceLogKeepsPending: fences not recorded yet survive a restart of
// pgquorum in the Raft directory, and the file goes once all are recorded.
func TestFenceLogKeepsPending(t *testing.T) {
	dir := t.TempDir()
	l := &fenceLog{opts: Options{Raft: RaftOptions{Dir: dir}}}
	pending := []api.Fence{{Node: "p", At: t0, Reason: "rule 2: no coordinator for 3s"}, {Node: "p", At: t0.Add(time.Minute), Reason: "rule 1: runs as primary"}}
	l.keep(pending)
	got, err := (&fenceLog{opts: l.opts}).load()
	if err != nil || !reflect.DeepEqual(got, pending) {
		t.Fatalf("loaded %+v, %v; want %+v", got, err, pending)
	}
	l.keep(nil)
	if _, err := os.Stat(filepath.Join(dir, pendingFencesFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the file of pending fences is still there once all are recorded: %v", err)
	}
	if got, err := l.load(); err != nil || got != nil {
		t.Errorf("loaded %+v, %v; want none", got, err)
	}
}
