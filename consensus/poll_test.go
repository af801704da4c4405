package consensus

import (
	"context"
	"errors"
	"maps"
	"testing"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/repmgr"
)

// TestPollAsks: with scope cluster a primary asks every other registered node
// once, with scope site only those of its location; nodes that are no
// candidate ask nobody. n3 refuses, so the verdict tells whom was asked.
func TestPollAsks(t *testing.T) {
	twoSites := append(site(3), node(4, "r1", repmgr.TypeStandby, "dc2", true), node(5, "r2", repmgr.TypeStandby, "dc2", true))
	everyoneVotes := map[string]peerAnswer{"n2": grant, "n3": {refuse: "no"}, "r1": grant, "r2": grant}
	withWitness := append(site(3), node(4, "w", repmgr.TypeWitness, "dc1", true))
	tests := []struct {
		name       string
		nodes      []repmgr.Node
		self       string
		scope      Scope
		inRecovery bool
		probeErr   error
		wantPolls  map[string]int
		want       api.State
	}{
		{name: "cluster scope: every other node once, never itself", nodes: twoSites, scope: ScopeCluster,
			wantPolls: map[string]int{addr("n2"): 1, addr("n3"): 1, addr("r1"): 1, addr("r2"): 1}, want: api.StatePrimary},
		{name: "site scope: its location's nodes once, never dc2's", nodes: twoSites, scope: ScopeSite,
			wantPolls: map[string]int{addr("n2"): 1, addr("n3"): 1}, want: api.StatePrimary},
		{name: "standby polls nobody", nodes: twoSites, inRecovery: true, wantPolls: map[string]int{}, want: api.StateStandby},
		{name: "down node polls nobody", nodes: twoSites, probeErr: errors.New("refused"), wantPolls: map[string]int{},
			want: api.StateDown},
		{name: "site scope: lone node of its site polls nobody and needs only itself", nodes: []repmgr.Node{node(1, "n1", repmgr.TypePrimary, "dc9", true),
			node(2, "r1", repmgr.TypeStandby, "dc2", true)}, scope: ScopeSite, wantPolls: map[string]int{}, want: api.StatePrimary},
		{name: "cluster scope: lone node of its site needs the other location too", nodes: []repmgr.Node{node(1, "n1", repmgr.TypePrimary, "dc9", true),
			node(2, "r1", repmgr.TypeStandby, "dc2", true)}, scope: ScopeCluster, wantPolls: map[string]int{addr("r1"): 1}, want: api.StatePrimary},
		{name: "unregistered node polls nobody", nodes: twoSites[1:], wantPolls: map[string]int{}, want: api.StateUnknown},
		{name: "witness polls nobody", nodes: withWitness, self: "w", wantPolls: map[string]int{}, want: api.StateUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(tt.nodes, tt.inRecovery, everyoneVotes)
			if tt.self != "" {
				h.checker.opts.Identity.Name = tt.self
			}
			if tt.scope != "" {
				h.checker.opts.Scope = tt.scope
			}
			facts := primaryFacts(tt.nodes)
			facts.InRecovery = tt.inRecovery
			h.prober.set(facts, tt.probeErr)
			s := h.checker.Snapshot(context.Background())
			vote, state := h.peers.calls()
			if !maps.Equal(vote, tt.wantPolls) || len(state) != 0 {
				t.Errorf("asked for votes %v and /state %v, want votes %v only", vote, state, tt.wantPolls)
			}
			if s.Verdict.State != tt.want {
				t.Errorf("verdict = %s (%s), want %s", s.Verdict.State, s.Verdict.Reason, tt.want)
			}
		})
	}
}

func TestPollPeerWithoutAddressCastsNoVote(t *testing.T) {
	nodes := site(3)
	nodes[1].Conninfo = "host=/var/run/postgresql user=repmgr" // a socket is no address for a peer
	h := newHarness(nodes, false, votesForN1)
	s := h.checker.Snapshot(context.Background())
	if v := s.Votes[2]; v.Answer != nil || v.Err == nil || s.Verdict.Votes != 2 {
		t.Errorf("n2 without address: answer %+v, error %v, votes %d; want no answer, an error, 2 votes",
			v.Answer, v.Err, s.Verdict.Votes)
	}
}

func TestFactsDoesNotPollPeers(t *testing.T) {
	t.Run("on an empty cache: one probe, no poll, then cached", func(t *testing.T) {
		h := newHarness(site(3), false, votesForN1)
		first := h.checker.Facts(context.Background())
		second := h.checker.Facts(context.Background())
		if totalCalls(h.peers) != 0 || h.prober.Calls() != 1 || first != second {
			t.Fatalf("%d peer calls, %d probes, cached %v; want 0, 1, true",
				totalCalls(h.peers), h.prober.Calls(), first == second)
		}
		if p, ok := repmgr.NamedPrimary(first.Facts.Nodes); !ok || p.Name != "n1" || first.ProbeErr != nil {
			t.Errorf("facts name %q (%v), error %v; want n1", p.Name, ok, first.ProbeErr)
		}
	})
	t.Run("after a refresh: served from it without a probe", func(t *testing.T) {
		h := newHarness(site(3), false, votesForN1)
		h.checker.Snapshot(context.Background())
		h.checker.Facts(context.Background())
		if h.prober.Calls() != 1 {
			t.Fatalf("%d probes, want the refresh's facts reused", h.prober.Calls())
		}
	})
	t.Run("probe error is reported, not hidden", func(t *testing.T) {
		h := newHarness(site(3), false, votesForN1)
		h.prober.set(repmgr.Facts{}, errors.New("refused"))
		if s := h.checker.Facts(context.Background()); s.ProbeErr == nil || totalCalls(h.peers) != 0 {
			t.Fatalf("Facts = %+v with %d peer calls, want the probe error and no poll", s, totalCalls(h.peers))
		}
	})
	t.Run("stale facts are probed again", func(t *testing.T) {
		h := newHarness(site(3), false, votesForN1)
		first := h.checker.Facts(context.Background())
		h.clock.Advance(testTTL)
		if second := h.checker.Facts(context.Background()); second == first || h.prober.Calls() != 2 {
			t.Fatalf("%d probes after the TTL, want 2", h.prober.Calls())
		}
	})
}
