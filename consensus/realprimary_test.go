package consensus

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/repmgr"
)

// cluster is n1 (primary), n2, n3 in dc1 and r1 in dc2: /realPrimary asks
// every location.
func cluster() []repmgr.Node {
	return append(site(3), node(4, "r1", repmgr.TypeStandby, "dc2", true))
}

func TestRealPrimarySharedAndCached(t *testing.T) {
	const callers = 8
	answers := map[string]peerAnswer{"n2": {status: 202}, "n3": {status: 202}, "r1": {status: 202}}
	h := newHarness(cluster(), false, answers)
	h.prober.gate = make(chan struct{})
	results := make([]RealPrimaryResult, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = h.checker.RealPrimary(context.Background())
		}()
	}
	// Every caller waits in the /realPrimary flight; its leader also waits
	// for the facts of the gated probe.
	waitFor(t, 10*time.Second, "every caller to wait on the shared answer", func() bool {
		h.checker.mu.Lock()
		waiting := len(h.checker.probing)
		h.checker.mu.Unlock()
		return goroutinesIn("singleflight.(*Group).Do(") >= callers && waiting == 1
	})
	close(h.prober.gate)
	wg.Wait()
	want := RealPrimaryResult{Primary: "n1", Claimants: []string{"n1"}, Asked: 4, CheckedAt: h.clock.Now()}
	for i, r := range results {
		if !equalResult(r, want) {
			t.Fatalf("caller %d got %+v, want %+v", i, r, want)
		}
	}
	_, state := h.peers.calls()
	wantState := map[string]int{addr("n2"): 1, addr("n3"): 1, addr("r1"): 1}
	if !maps.Equal(state, wantState) {
		t.Fatalf("/state asked %v, want once per other node %v", state, wantState)
	}
	if again := h.checker.RealPrimary(context.Background()); !equalResult(again, want) {
		t.Errorf("second call = %+v, want the cached %+v", again, want)
	}
	if _, state := h.peers.calls(); !maps.Equal(state, wantState) || h.prober.Calls() != 1 {
		t.Errorf("second call asked /state %v and probed %d times, want it served from cache", state, h.prober.Calls())
	}
}

func TestRealPrimaryAnswers(t *testing.T) {
	tests := []struct {
		name      string
		answers   map[string]peerAnswer
		probeErr  error
		want      RealPrimaryResult
		wantSplit bool
	}{
		{name: "split brain: two claimants name nobody", answers: map[string]peerAnswer{
			"n2": {status: 202}, "n3": {status: 202}, "r1": {status: 200}},
			want: RealPrimaryResult{Claimants: []string{"n1", "r1"}, Asked: 4}, wantSplit: true},
		{name: "hanging and failing nodes are unreachable, and cost n1 the cluster majority", answers: map[string]peerAnswer{
			"n2": {status: 202}, "n3": {hang: true}, "r1": {err: errors.New("refused")}},
			want: RealPrimaryResult{Unreachable: []string{"n3", "r1"}, Asked: 4}},
		{name: "a hanging node is unreachable", answers: map[string]peerAnswer{
			"n2": {status: 202}, "n3": {hang: true}, "r1": {status: 202}},
			want: RealPrimaryResult{Primary: "n1", Claimants: []string{"n1"}, Unreachable: []string{"n3"}, Asked: 4}},
		{name: "this node without majority: nobody", answers: map[string]peerAnswer{
			"n2": {status: 202, refuse: "no"}, "n3": {status: 202, refuse: "no"}, "r1": {status: 202, refuse: "no"}},
			want: RealPrimaryResult{Asked: 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(cluster(), false, tt.answers)
			start := time.Now()
			sv := h.checker.Survey(context.Background())
			got := sv.RealPrimary
			// Three PeerTimeouts at most: the verdict's poll, /state, and
			// /state of the claimants again.
			if took := time.Since(start); took >= 10*testPeerTimeout {
				t.Errorf("RealPrimary took %s, want well under %s", took, 10*testPeerTimeout)
			}
			tt.want.CheckedAt = h.clock.Now()
			if !equalResult(got, tt.want) {
				t.Errorf("RealPrimary = %+v, want %+v", got, tt.want)
			}
			if sv.SplitBrain != tt.wantSplit {
				t.Errorf("SplitBrain = %v, want %v", sv.SplitBrain, tt.wantSplit)
			}
		})
	}
}

// TestRealPrimaryWhileDown: with its database down, the node still asks the
// nodes it last saw registered, and answers 503 for itself.
func TestRealPrimaryWhileDown(t *testing.T) {
	answers := map[string]peerAnswer{"n2": {status: 200}, "n3": {status: 202}, "r1": {status: 202}}
	h := newHarness(cluster(), false, answers)
	h.checker.Snapshot(context.Background())
	h.prober.set(repmgr.Facts{}, errors.New("connection refused"))
	h.clock.Advance(testTTL)
	got := h.checker.RealPrimary(context.Background())
	want := RealPrimaryResult{Primary: "n2", Claimants: []string{"n2"}, Asked: 4, CheckedAt: h.clock.Now()}
	if !equalResult(got, want) {
		t.Errorf("RealPrimary = %+v, want %+v", got, want)
	}
}

func equalResult(a, b RealPrimaryResult) bool {
	return a.Primary == b.Primary && slices.Equal(a.Claimants, b.Claimants) &&
		slices.Equal(a.Unreachable, b.Unreachable) && a.Asked == b.Asked && a.CheckedAt.Equal(b.CheckedAt)
}
