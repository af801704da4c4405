package consensus

import (
	"context"
	"errors"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/repmgr"
)

// The cache TTL is long in real time because go-cache expires entries on the
// real clock; the tests move the Checker's own clock instead.
const (
	testTTL         = time.Hour
	testPeerTimeout = 100 * time.Millisecond
)

type harness struct {
	checker *Checker
	prober  *fakeProber
	peers   *fakePeers
	clock   *fakeClock
}

// newHarness returns a Checker for n1 with nodes registered and peers
// answering as given (keyed by node name).
func newHarness(nodes []repmgr.Node, inRecovery bool, answers map[string]peerAnswer) *harness {
	byAddr := map[string]peerAnswer{}
	for name, a := range answers {
		byAddr[addr(name)] = a
	}
	facts := primaryFacts(nodes)
	facts.InRecovery = inRecovery
	h := &harness{
		prober: &fakeProber{facts: facts},
		peers:  newFakePeers(nodes, byAddr),
		clock:  newFakeClock(),
	}
	h.checker = NewChecker(Options{
		Identity: Identity{Name: "n1"}, RefreshInterval: time.Hour, CacheTTL: testTTL, PeerTimeout: testPeerTimeout,
		Addresses: Addresses{Port: 5999}, Now: h.clock.Now, Boot: h.clock.Boot, Ballot: openBallot(h.clock, testTTL),
	}, h.prober, h.peers)
	return h
}

var votesForN1 = map[string]peerAnswer{"n2": grant, "n3": grant}

// TestSnapshotConcurrentCallersShareOneProbe parks every caller inside the
// shared computation before the probe may finish, then counts probes.
func TestSnapshotConcurrentCallersShareOneProbe(t *testing.T) {
	const callers = 16
	h := newHarness(site(3), false, votesForN1)
	h.prober.gate = make(chan struct{})
	results := make([]*Snapshot, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = h.checker.Snapshot(context.Background())
		}()
	}
	waitFor(t, 10*time.Second, "every caller to wait on the shared refresh", func() bool {
		h.checker.mu.Lock()
		defer h.checker.mu.Unlock()
		return len(h.checker.serving) == callers
	})
	close(h.prober.gate)
	wg.Wait()
	if n := h.prober.Calls(); n != 1 {
		t.Errorf("%d concurrent callers caused %d probes, want 1", callers, n)
	}
	for i, s := range results {
		if s != results[0] {
			t.Fatalf("caller %d got a different snapshot than caller 0", i)
		}
	}
	if vote, _ := h.peers.calls(); !maps.Equal(vote, map[string]int{addr("n2"): 1, addr("n3"): 1}) {
		t.Errorf("peer polls = %v, want one per peer", vote)
	}
	if v := results[0].Verdict; v.State != api.StatePrimary || v.Votes != 3 {
		t.Errorf("verdict = %+v, want Primary with 3 votes", v)
	}
}

func TestSnapshotCache(t *testing.T) {
	tests := []struct {
		name      string
		advance   time.Duration
		wantProbe bool
	}{
		{name: "served at once without a probe", advance: 0},
		{name: "served at half the TTL without a probe", advance: testTTL / 2},
		{name: "served just before the TTL without a probe", advance: testTTL - time.Nanosecond},
		{name: "probed again at the TTL", advance: testTTL, wantProbe: true},
		{name: "probed again past the TTL", advance: testTTL + time.Minute, wantProbe: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(site(3), false, votesForN1)
			first := h.checker.Snapshot(context.Background())
			h.clock.Advance(tt.advance)
			second := h.checker.Snapshot(context.Background())
			probes, polls := h.prober.Calls(), totalCalls(h.peers)
			if tt.wantProbe {
				if probes != 2 || polls != 4 || second == first || !second.Verdict.CheckedAt.Equal(h.clock.Now()) {
					t.Fatalf("%d probes, %d polls, same snapshot %v; want a new probe and poll checked now",
						probes, polls, second == first)
				}
				return
			}
			if probes != 1 || polls != 2 || second != first {
				t.Fatalf("%d probes, %d polls, same snapshot %v; want the cached one", probes, polls, second == first)
			}
		})
	}
}

func totalCalls(p *fakePeers) int {
	vote, state := p.calls()
	n := 0
	for _, c := range vote {
		n += c
	}
	for _, c := range state {
		n += c
	}
	return n
}

// TestStalePrimaryNeverServed: once its facts are CacheTTL old, a Primary
// verdict is not served, whether it aged in the cache or while computed.
func TestStalePrimaryNeverServed(t *testing.T) {
	t.Run("aged in cache: new probe, old verdict not returned", func(t *testing.T) {
		h := newHarness(site(3), false, votesForN1)
		old := h.checker.Snapshot(context.Background())
		if old.Verdict.State != api.StatePrimary {
			t.Fatalf("first verdict = %s, want Primary", old.Verdict.State)
		}
		h.prober.set(repmgr.Facts{}, errors.New("connection refused"))
		h.clock.Advance(testTTL + time.Second)
		s := h.checker.Snapshot(context.Background())
		if s == old || s.Verdict.State != api.StateDown || h.prober.Calls() != 2 {
			t.Fatalf("after the TTL: verdict %s, %d probes, same snapshot %v; want Down from a new probe",
				s.Verdict.State, h.prober.Calls(), s == old)
		}
	})
	t.Run("suspended past the TTL: the boot clock expires it", func(t *testing.T) {
		h := newHarness(site(3), false, votesForN1)
		old := h.checker.Snapshot(context.Background())
		h.prober.set(repmgr.Facts{}, errors.New("connection refused"))
		h.clock.Suspend(testTTL)
		s := h.checker.Snapshot(context.Background())
		if s == old || s.Verdict.State == api.StatePrimary || h.prober.Calls() != 2 {
			t.Fatalf("after a suspend of the TTL: verdict %s, %d probes, same snapshot %v; want a new probe's",
				s.Verdict.State, h.prober.Calls(), s == old)
		}
	})
	t.Run("refresh slower than the TTL is not Primary", func(t *testing.T) {
		h := newHarness(site(3), false, votesForN1)
		h.prober.during = func() { h.clock.Advance(testTTL + time.Second) }
		s := h.checker.Snapshot(context.Background())
		if s.Verdict.State == api.StatePrimary {
			t.Fatalf("verdict from facts %s old is Primary; want it refused", h.clock.Now().Sub(s.Facts.ProbedAt))
		}
	})
}

// TestHangingPeer: a peer that answers only when its ctx ends costs the
// refresh at most PeerTimeout and casts no vote. The bound asserted is 10×
// PeerTimeout, a correctness bound on a shared machine, not a benchmark.
func TestHangingPeer(t *testing.T) {
	tests := []struct {
		name      string
		answers   map[string]peerAnswer
		want      api.State
		wantVotes int
	}{
		{name: "one of two peers hangs: majority from the other", want: api.StatePrimary, wantVotes: 2,
			answers: map[string]peerAnswer{"n2": {hang: true}, "n3": grant}},
		{name: "both peers hang: no majority", want: api.StateUnknown, wantVotes: 1,
			answers: map[string]peerAnswer{"n2": {hang: true}, "n3": {hang: true}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(site(3), false, tt.answers)
			start := time.Now()
			s := h.checker.Snapshot(context.Background())
			if took := time.Since(start); took >= 10*testPeerTimeout {
				t.Errorf("refresh took %s with a hanging peer, want well under %s", took, 10*testPeerTimeout)
			}
			if s.Verdict.State != tt.want || s.Verdict.Votes != tt.wantVotes {
				t.Errorf("verdict = %s with %d votes, want %s with %d", s.Verdict.State, s.Verdict.Votes, tt.want, tt.wantVotes)
			}
			if v := s.Votes[2]; v.Answer != nil || !errors.Is(v.Err, context.DeadlineExceeded) {
				t.Errorf("hanging n2: answer %+v, error %v; want none and a deadline error", v.Answer, v.Err)
			}
		})
	}
}

// TestPeerDeafToItsContext: a Peers implementation that ignores its ctx
// still cannot hold a refresh or /realPrimary past PeerTimeout.
func TestPeerDeafToItsContext(t *testing.T) {
	deaf := make(chan struct{})
	defer close(deaf)
	h := newHarness(site(3), false, map[string]peerAnswer{"n2": {deaf: deaf, status: 202}, "n3": {status: 202}})
	start := time.Now()
	s := h.checker.Snapshot(context.Background())
	if took := time.Since(start); took >= 10*testPeerTimeout {
		t.Errorf("refresh took %s with a deaf peer, want well under %s", took, 10*testPeerTimeout)
	}
	if s.Verdict.State != api.StatePrimary || s.Verdict.Votes != 2 || !errors.Is(s.Votes[2].Err, context.DeadlineExceeded) {
		t.Errorf("verdict %s with %d votes, n2 error %v; want Primary with 2 and a deadline error for n2", s.Verdict.State, s.Verdict.Votes, s.Votes[2].Err)
	}
	start = time.Now()
	r := h.checker.RealPrimary(context.Background())
	if took := time.Since(start); took >= 10*testPeerTimeout {
		t.Errorf("/realPrimary took %s with a deaf peer", took)
	}
	if r.Primary != "n1" || len(r.Unreachable) != 1 || r.Unreachable[0] != "n2" {
		t.Errorf("RealPrimary = %+v, want n1 with n2 unreachable", r)
	}
}

// TestSnapshotWithinAnswersWhileRefreshing: a health check whose verdict
// has expired and whose refresh hangs gets an answer by its own deadline:
// Down when the database was last seen down, Unknown otherwise; the next
// caller gets the refresh's verdict once it ends.
func TestSnapshotWithinAnswersWhileRefreshing(t *testing.T) {
	for _, tt := range []struct {
		name     string
		probeErr error
		want     api.State
	}{
		{name: "database last seen up: Unknown", want: api.StateUnknown},
		{name: "database last seen down: Down", probeErr: errors.New("connection refused"), want: api.StateDown},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(site(3), false, votesForN1)
			h.prober.set(primaryFacts(site(3)), tt.probeErr)
			h.checker.Snapshot(context.Background())
			gate := make(chan struct{})
			h.prober.mu.Lock()
			h.prober.gate = gate
			h.prober.mu.Unlock()
			h.clock.Advance(testTTL)
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			s := h.checker.SnapshotWithin(ctx)
			if s.Verdict.State != tt.want || !strings.Contains(s.Verdict.Reason, "refreshing") || s.Verdict.Node != "n1" {
				t.Fatalf("verdict %s (%q) of %q, want %s refreshing of n1", s.Verdict.State, s.Verdict.Reason, s.Verdict.Node, tt.want)
			}
			if h.checker.Valid(s) {
				t.Error("the placeholder verdict is Valid")
			}
			close(gate)
			if s := h.checker.Snapshot(context.Background()); strings.Contains(s.Verdict.Reason, "refreshing") {
				t.Errorf("after the refresh: %s %q, want its verdict", s.Verdict.State, s.Verdict.Reason)
			}
		})
	}
}
