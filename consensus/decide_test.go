package consensus

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/repmgr"
)

func node(name, typ, location string, active bool) repmgr.Node {
	return repmgr.Node{Name: name, Type: typ, Location: location, Active: active,
		Conninfo: "host=" + name + " user=repmgr dbname=repmgr"}
}

// site returns n1 as the active primary of dc1 and n2…n<size> as its standbys.
func site(size int) []repmgr.Node {
	nodes := []repmgr.Node{node("n1", repmgr.TypePrimary, "dc1", true)}
	for i := 2; i <= size; i++ {
		nodes = append(nodes, node(fmt.Sprintf("n%d", i), repmgr.TypeStandby, "dc1", true))
	}
	return nodes
}

// majorityOf is written out rather than computed, so the test does not share
// an arithmetic mistake with Majority.
var majorityOf = map[int]int{1: 1, 2: 2, 3: 2, 4: 3, 5: 3, 6: 4, 7: 4}

func TestMajority(t *testing.T) {
	for n, want := range majorityOf {
		if got := Majority(n); got != want {
			t.Errorf("Majority(%d) = %d, want %d", n, got, want)
		}
	}
}

// TestDecideVotes covers every site size from 1 to 7 with every possible
// number of votes: this node's own plus 0…size-1 peers naming it. Peers that
// do not vote for it name another node or none, which must not count.
func TestDecideVotes(t *testing.T) {
	probedAt := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	for size := 1; size <= 7; size++ {
		needed := majorityOf[size]
		for votes := 1; votes <= size; votes++ {
			t.Run(fmt.Sprintf("site%d/votes%dof%dneeded", size, votes, needed), func(t *testing.T) {
				in := Input{Self: "n1", Facts: repmgr.Facts{Nodes: site(size), ProbedAt: probedAt},
					Votes: map[string]string{}}
				var wantVoters []string = []string{"n1"}
				for i := 2; i <= size; i++ {
					peer := fmt.Sprintf("n%d", i)
					switch {
					case i <= votes:
						in.Votes[peer] = "n1"
						wantVoters = append(wantVoters, peer)
					case i%2 == 0:
						in.Votes[peer] = "" // named none
					default:
						in.Votes[peer] = "n2" // names another node
					}
				}
				v := Decide(in)
				wantState := api.StateUnknown
				if votes >= needed {
					wantState = api.StatePrimary
				}
				if v.State != wantState || v.Votes != votes || v.Needed != needed {
					t.Fatalf("Decide = %s with %d votes, %d needed; want %s, %d, %d (reason %q)",
						v.State, v.Votes, v.Needed, wantState, votes, needed, v.Reason)
				}
				if !slices.Equal(v.Voters, wantVoters) {
					t.Errorf("Voters = %v, want %v", v.Voters, wantVoters)
				}
				if v.Node != "n1" || v.Location != "dc1" || !v.CheckedAt.Equal(probedAt) {
					t.Errorf("Verdict = %+v, want node n1 in dc1 checked at the probe time", v)
				}
			})
		}
	}
}

func TestDecideStates(t *testing.T) {
	allVote := map[string]string{"n2": "n1", "n3": "n1"}
	withWitness := append(site(2), node("w", repmgr.TypeWitness, "dc1", true))
	witnessSelf := []repmgr.Node{node("n1", repmgr.TypePrimary, "dc1", true), node("n2", repmgr.TypeStandby, "dc1", true),
		node("w", repmgr.TypeWitness, "dc1", true)}
	otherSite := append(site(3), node("r1", repmgr.TypeStandby, "dc2", true), node("r2", repmgr.TypeStandby, "dc2", true),
		node("r3", repmgr.TypeStandby, "dc2", true), node("r4", repmgr.TypeStandby, "dc2", true))
	inactive := append(site(2), node("n3", repmgr.TypeStandby, "dc1", false), node("n4", repmgr.TypePrimary, "dc1", false))
	tests := []struct {
		name       string
		self       string
		facts      repmgr.Facts
		probeErr   error
		votes      map[string]string
		want       api.State
		wantVotes  int
		wantNeeded int
		wantReason string
	}{
		{name: "probe error is Down whatever the votes", self: "n1", facts: repmgr.Facts{Nodes: site(3)},
			probeErr: errors.New("connection refused"), votes: allVote, want: api.StateDown, wantReason: "connection refused"},
		{name: "in recovery is Standby even with votes", self: "n2", facts: repmgr.Facts{InRecovery: true, Nodes: site(3)},
			votes: map[string]string{"n1": "n2", "n3": "n2"}, want: api.StateStandby, wantNeeded: 2},
		{name: "in recovery and unregistered is still Standby", self: "ghost", facts: repmgr.Facts{InRecovery: true, Nodes: site(3)},
			want: api.StateStandby},
		{name: "primary with majority", self: "n1", facts: repmgr.Facts{Nodes: site(3)}, votes: allVote,
			want: api.StatePrimary, wantVotes: 3, wantNeeded: 2},
		{name: "primary without majority is Unknown", self: "n1", facts: repmgr.Facts{Nodes: site(3)},
			votes: map[string]string{"n2": "n3", "n3": ""}, want: api.StateUnknown, wantVotes: 1, wantNeeded: 2},
		{name: "primary with no votes map is Unknown", self: "n1", facts: repmgr.Facts{Nodes: site(3)},
			want: api.StateUnknown, wantVotes: 1, wantNeeded: 2},
		{name: "node not registered is Unknown", self: "ghost", facts: repmgr.Facts{Nodes: site(3)},
			votes: map[string]string{"n2": "ghost", "n3": "ghost"}, want: api.StateUnknown, wantReason: "not registered"},
		{name: "empty metadata is Unknown", self: "n1", facts: repmgr.Facts{}, want: api.StateUnknown, wantReason: "not registered"},
		{name: "witness out of recovery is never Primary", self: "w", facts: repmgr.Facts{Nodes: witnessSelf},
			votes: map[string]string{"n1": "w", "n2": "w"}, want: api.StateUnknown, wantNeeded: 2, wantReason: "witness"},
		{name: "witness peer's vote counts", self: "n1", facts: repmgr.Facts{Nodes: withWitness},
			votes: map[string]string{"w": "n1", "n2": ""}, want: api.StatePrimary, wantVotes: 2, wantNeeded: 2},
		{name: "nodes of other locations neither count nor vote", self: "n1", facts: repmgr.Facts{Nodes: otherSite},
			votes: map[string]string{"r1": "n1", "r2": "n1", "r3": "n1", "r4": "n1"}, want: api.StateUnknown, wantVotes: 1, wantNeeded: 2},
		{name: "other location's nodes do not make a lone node lose", self: "r1", facts: repmgr.Facts{Nodes: append(site(3),
			node("r1", repmgr.TypePrimary, "dc2", true))}, want: api.StatePrimary, wantVotes: 1, wantNeeded: 1},
		{name: "inactive nodes still count in site size", self: "n1", facts: repmgr.Facts{Nodes: inactive},
			votes: map[string]string{"n2": "n1"}, want: api.StateUnknown, wantVotes: 2, wantNeeded: 3},
		{name: "inactive node's vote counts like any other", self: "n1", facts: repmgr.Facts{Nodes: inactive},
			votes: map[string]string{"n2": "n1", "n3": "n1"}, want: api.StatePrimary, wantVotes: 3, wantNeeded: 3},
		{name: "vote of a peer not registered is ignored", self: "n1", facts: repmgr.Facts{Nodes: site(3)},
			votes: map[string]string{"stranger": "n1", "n2": ""}, want: api.StateUnknown, wantVotes: 1, wantNeeded: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := Decide(Input{Self: tt.self, Facts: tt.facts, ProbeErr: tt.probeErr, Votes: tt.votes})
			if v.State != tt.want || v.Votes != tt.wantVotes || v.Needed != tt.wantNeeded {
				t.Fatalf("Decide = %s, %d votes, %d needed (%q); want %s, %d, %d",
					v.State, v.Votes, v.Needed, v.Reason, tt.want, tt.wantVotes, tt.wantNeeded)
			}
			if !strings.Contains(v.Reason, tt.wantReason) || v.Reason == "" {
				t.Errorf("Reason = %q, want a reason containing %q", v.Reason, tt.wantReason)
			}
			if v.Node != tt.self {
				t.Errorf("Node = %q, want %q", v.Node, tt.self)
			}
		})
	}
}

func TestNamedPrimary(t *testing.T) {
	oldPrimary := node("n1", repmgr.TypePrimary, "dc1", false) // after a failover
	tests := []struct {
		name   string
		nodes  []repmgr.Node
		want   string
		wantOK bool
	}{
		{name: "no nodes names none", nodes: nil},
		{name: "no active primary names none", nodes: []repmgr.Node{node("n2", repmgr.TypeStandby, "dc1", true), oldPrimary}},
		{name: "one active primary", nodes: site(3), want: "n1", wantOK: true},
		{name: "two active primaries name none", nodes: append(site(2), node("n3", repmgr.TypePrimary, "dc2", true))},
		{name: "inactive old primary is ignored", nodes: []repmgr.Node{oldPrimary,
			node("n2", repmgr.TypePrimary, "dc1", true), node("n3", repmgr.TypeStandby, "dc1", true)}, want: "n2", wantOK: true},
		{name: "active witness is not a primary", nodes: []repmgr.Node{node("w", repmgr.TypeWitness, "dc1", true)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := NamedPrimary(tt.nodes)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("NamedPrimary = %q, %v; want %q, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestRealPrimary(t *testing.T) {
	down := errors.New("connection refused")
	tests := []struct {
		name            string
		answers         []StateAnswer
		want            string
		wantClaimants   []string
		wantUnreachable []string
	}{
		{name: "no answers names nobody"},
		{name: "no claimant names nobody", answers: []StateAnswer{{Node: "n1", Status: 509}, {Node: "n2", Status: 202}, {Node: "n3", Status: 503}}},
		{name: "one claimant is the real primary", answers: []StateAnswer{{Node: "n2", Status: 202}, {Node: "n1", Status: 200}},
			want: "n1", wantClaimants: []string{"n1"}},
		{name: "one claimant with unreachable nodes", answers: []StateAnswer{{Node: "n1", Status: 200}, {Node: "n3", Err: down}, {Node: "n2", Err: down}},
			want: "n1", wantClaimants: []string{"n1"}, wantUnreachable: []string{"n2", "n3"}},
		{name: "several claimants name nobody", answers: []StateAnswer{{Node: "n3", Status: 200}, {Node: "n1", Status: 200}, {Node: "n2", Status: 202}},
			wantClaimants: []string{"n1", "n3"}},
		{name: "status of an unreachable node is ignored", answers: []StateAnswer{{Node: "n1", Status: 200, Err: down}},
			wantUnreachable: []string{"n1"}},
		{name: "all unreachable", answers: []StateAnswer{{Node: "n1", Err: down}, {Node: "n2", Err: down}},
			wantUnreachable: []string{"n1", "n2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, claimants, unreachable := RealPrimary(tt.answers)
			if got != tt.want || !slices.Equal(claimants, tt.wantClaimants) || !slices.Equal(unreachable, tt.wantUnreachable) {
				t.Errorf("RealPrimary = %q, %v, %v; want %q, %v, %v",
					got, claimants, unreachable, tt.want, tt.wantClaimants, tt.wantUnreachable)
			}
		})
	}
}
