package consensus

import (
	"context"
	"errors"
	"maps"
	"testing"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/repmgr"
)

// TestPollAsksOnlyTheSitesPeers: the nodes of other locations are
// configured to vote for n1, so polling them would also change the verdict.
func TestPollAsksOnlyTheSitesPeers(t *testing.T) {
	twoSites := append(site(3), node("r1", repmgr.TypeStandby, "dc2", true), node("r2", repmgr.TypeStandby, "dc2", true))
	everyoneVotes := map[string]peerAnswer{"n2": {primary: "n1"}, "n3": {primary: ""},
		"r1": {primary: "n1"}, "r2": {primary: "n1"}}
	tests := []struct {
		name       string
		nodes      []repmgr.Node
		inRecovery bool
		probeErr   error
		wantPolls  map[string]int
		want       api.State
	}{
		{name: "primary polls its site's peers once each, never itself or dc2", nodes: twoSites,
			wantPolls: map[string]int{addr("n2"): 1, addr("n3"): 1}, want: api.StatePrimary},
		{name: "standby polls nobody", nodes: twoSites, inRecovery: true, wantPolls: map[string]int{}, want: api.StateStandby},
		{name: "down node polls nobody", nodes: twoSites, probeErr: errors.New("refused"), wantPolls: map[string]int{},
			want: api.StateDown},
		{name: "lone node of its site polls nobody", nodes: []repmgr.Node{node("n1", repmgr.TypePrimary, "dc9", true),
			node("r1", repmgr.TypeStandby, "dc2", true)}, wantPolls: map[string]int{}, want: api.StatePrimary},
		{name: "unregistered node polls nobody", nodes: twoSites[1:], wantPolls: map[string]int{}, want: api.StateUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(tt.nodes, tt.inRecovery, everyoneVotes)
			h.prober.set(repmgr.Facts{Nodes: tt.nodes, InRecovery: tt.inRecovery}, tt.probeErr)
			s := h.checker.Snapshot(context.Background())
			primary, state := h.peers.calls()
			if !maps.Equal(primary, tt.wantPolls) || len(state) != 0 {
				t.Errorf("polled /primary %v and /state %v, want /primary %v only", primary, state, tt.wantPolls)
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
	if s.Votes["n2"] != "" || s.PeerErrs["n2"] == nil || s.Verdict.Votes != 2 {
		t.Errorf("n2 without address: vote %q, error %v, votes %d; want no vote, an error, 2 votes",
			s.Votes["n2"], s.PeerErrs["n2"], s.Verdict.Votes)
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
		if name, ok := NamedPrimary(first.Facts.Nodes); !ok || name != "n1" || first.ProbeErr != nil {
			t.Errorf("facts name %q (%v), error %v; want n1", name, ok, first.ProbeErr)
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
