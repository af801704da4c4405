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

// granted is a valid vote from n for candidate.
func granted(n repmgr.Node, candidate string) PeerVote {
	return PeerVote{Answer: &api.VoteAnswer{Protocol: api.VoteProtocol, Voter: n.Name, VoterID: n.ID, VoterType: n.Type,
		SystemID: testSystemID, Timeline: 1, Candidate: candidate, Granted: true}}
}

// refused is n's refusal, for reason.
func refused(n repmgr.Node, candidate, reason string) PeerVote {
	v := granted(n, candidate)
	v.Answer.Granted, v.Answer.Reason = false, reason
	return v
}

// with returns pv's answer changed by edit: how a vote is made invalid.
func with(pv PeerVote, edit func(*api.VoteAnswer)) PeerVote {
	a := *pv.Answer
	edit(&a)
	return PeerVote{Answer: &a}
}

// input is n1 judging itself on nodes, its own vote granted, with votes.
func input(nodes []repmgr.Node, votes map[int]PeerVote) Input {
	me, _ := repmgr.ByName(nodes, "n1")
	return Input{Identity: Identity{Name: "n1"}, Scope: ScopeCluster, Facts: primaryFacts(nodes),
		SelfVote: granted(me, "n1"), Votes: votes}
}

// TestDecideVotes covers every site size from 1 to 7 with every possible
// number of votes: this node's own plus 0…size-1 peers vouching for it. The
// peers that do not vouch refuse or do not answer, which must not count.
func TestDecideVotes(t *testing.T) {
	probedAt := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	for size := 1; size <= 7; size++ {
		needed := majorityOf[size]
		for votes := 1; votes <= size; votes++ {
			t.Run(fmt.Sprintf("site%d/votes%dof%dneeded", size, votes, needed), func(t *testing.T) {
				nodes := site(size)
				in := input(nodes, map[int]PeerVote{})
				in.Facts.ProbedAt = probedAt
				wantVoters := []string{"n1"}
				for _, n := range nodes[1:] {
					switch {
					case n.ID <= votes:
						in.Votes[n.ID] = granted(n, "n1")
						wantVoters = append(wantVoters, n.Name)
					case n.ID%2 == 0:
						in.Votes[n.ID] = refused(n, "n1", "my metadata names n2 the active primary")
					default:
						in.Votes[n.ID] = PeerVote{Err: errors.New("connection refused")}
					}
				}
				v := Decide(in)
				wantState := api.StateUnknown
				if votes >= needed {
					wantState = api.StatePrimary
				}
				if v.State != wantState || v.Votes != votes || v.Needed != needed || v.ClusterVotes != votes || v.ClusterNeeded != needed {
					t.Fatalf("Decide = %s with %d/%d votes, %d/%d needed; want %s, %d, %d (reason %q)",
						v.State, v.Votes, v.ClusterVotes, v.Needed, v.ClusterNeeded, wantState, votes, needed, v.Reason)
				}
				slices.Sort(wantVoters)
				if !slices.Equal(v.Voters, wantVoters) {
					t.Errorf("Voters = %v, want %v", v.Voters, wantVoters)
				}
				if v.Node != "n1" || v.Location != "dc1" || !v.CheckedAt.Equal(probedAt) || v.Timeline != 1 {
					t.Errorf("Verdict = %+v, want node n1 in dc1 on timeline 1, checked at the probe time", v)
				}
				if wantState == api.StateUnknown && len(v.Refusals) != size-votes {
					t.Errorf("Refusals = %v, want one for each of the %d nodes that did not vouch", v.Refusals, size-votes)
				}
			})
		}
	}
}

func TestDecideStates(t *testing.T) {
	nodes := site(3)
	allVote := map[int]PeerVote{2: granted(nodes[1], "n1"), 3: granted(nodes[2], "n1")}
	witnessSelf := []repmgr.Node{node(1, "n1", repmgr.TypeWitness, "dc1", true), node(2, "n2", repmgr.TypePrimary, "dc1", true)}
	twice := append(site(3), node(4, "n1", repmgr.TypeStandby, "dc1", true))
	tests := []struct {
		name       string
		in         Input
		want       api.State
		wantVotes  int
		wantNeeded int
		wantReason string
	}{
		{name: "probe error is Down whatever the votes",
			in:   func() Input { in := input(nodes, allVote); in.ProbeErr = errors.New("connection\nrefused"); return in }(),
			want: api.StateDown, wantReason: "local database unreachable: connection refused"},
		{name: "another node's database is Down whatever the votes",
			in:   func() Input { in := input(nodes, allVote); in.IdentityErr = errors.New("port 5433"); return in }(),
			want: api.StateDown, wantReason: "not this node's database: port 5433"},
		{name: "in recovery is Standby even with votes",
			in:   func() Input { in := input(nodes, allVote); in.Facts.InRecovery = true; return in }(),
			want: api.StateStandby, wantNeeded: 2, wantReason: "in recovery"},
		{name: "primary with majority", in: input(nodes, allVote), want: api.StatePrimary, wantVotes: 3, wantNeeded: 2,
			wantReason: `3 votes (2 needed) in location "dc1", 3 (2 needed) in the cluster of 3 nodes`},
		{name: "primary without majority is Unknown", in: input(nodes, map[int]PeerVote{3: refused(nodes[2], "n1", "busy")}),
			want: api.StateUnknown, wantVotes: 1, wantNeeded: 2, wantReason: "running as primary without a majority"},
		{name: "own vote refused: peers alone may not suffice",
			in: func() Input {
				in := input(nodes, map[int]PeerVote{2: granted(nodes[1], "n1")})
				in.SelfVote = refused(nodes[0], "n1", "my metadata names n2 the active primary")
				return in
			}(), want: api.StateUnknown, wantVotes: 1, wantNeeded: 2},
		{name: "own vote refused: peers that are a majority suffice",
			in: func() Input {
				in := input(nodes, allVote)
				in.SelfVote = refused(nodes[0], "n1", "my metadata names n2 the active primary")
				return in
			}(), want: api.StatePrimary, wantVotes: 2, wantNeeded: 2},
		{name: "node not registered is Unknown", in: func() Input { in := input(nodes[1:], nil); return in }(),
			want: api.StateUnknown, wantReason: "not registered"},
		{name: "empty metadata is Unknown", in: input(nil, nil), want: api.StateUnknown, wantReason: "not registered"},
		{name: "name registered twice is Unknown", in: input(twice, allVote), want: api.StateUnknown,
			wantReason: `node "n1" is registered 2 times in repmgr.nodes (node_id [1 4])`},
		{name: "name registered twice, the node_id of repmgr.conf tells",
			in:   func() Input { in := input(twice, allVote); in.Identity.NodeID = 1; return in }(),
			want: api.StatePrimary, wantVotes: 3, wantNeeded: 3},
		{name: "witness out of recovery is never Primary",
			in: Input{Identity: Identity{Name: "n1"}, Facts: primaryFacts(witnessSelf), SelfVote: granted(witnessSelf[0], "n1"),
				Votes: map[int]PeerVote{2: granted(witnessSelf[1], "n1")}},
			want: api.StateUnknown, wantNeeded: 2, wantReason: "witness"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := Decide(tt.in)
			if v.State != tt.want || v.Votes != tt.wantVotes || v.Needed != tt.wantNeeded {
				t.Fatalf("Decide = %s, %d votes, %d needed (%q); want %s, %d, %d",
					v.State, v.Votes, v.Needed, v.Reason, tt.want, tt.wantVotes, tt.wantNeeded)
			}
			if !strings.Contains(v.Reason, tt.wantReason) || v.Reason == "" || strings.Contains(v.Reason, "\n") {
				t.Errorf("Reason = %q, want one line containing %q", v.Reason, tt.wantReason)
			}
			for name := range v.Refusals {
				if slices.Contains(v.Voters, name) {
					t.Errorf("%s is both a voter and refused: %v", name, v.Refusals)
				}
			}
		})
	}
}

// TestDecideCountsOnlyValidVotes: n1 has its own vote and n2's; n3's answer
// would make the majority of a 4-node site (3 of 4) unless it is invalid.
func TestDecideCountsOnlyValidVotes(t *testing.T) {
	nodes := site(4)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	base := func(v3 PeerVote) map[int]PeerVote {
		return map[int]PeerVote{2: granted(n2, "n1"), 3: v3, 4: refused(nodes[3], "n1", "down")}
	}
	witness := node(3, "n3", repmgr.TypeWitness, "dc1", true)
	withWitness := []repmgr.Node{n1, n2, witness, nodes[3]}
	dupName := append(site(3), node(5, "n2", repmgr.TypeStandby, "dc1", true))
	tests := []struct {
		name       string
		nodes      []repmgr.Node
		votes      map[int]PeerVote
		want       api.State
		wantVotes  int
		wantRefuse string // in the refusal of the node the test is about
		about      string
	}{
		{name: "a valid vote counts", nodes: nodes, votes: base(granted(n3, "n1")), want: api.StatePrimary, wantVotes: 3},
		{name: "no answer", nodes: nodes, votes: base(PeerVote{Err: errors.New("timeout")}), want: api.StateUnknown, wantVotes: 2,
			about: "n3", wantRefuse: "no answer: timeout"},
		{name: "not asked", nodes: nodes, votes: map[int]PeerVote{2: granted(n2, "n1")}, want: api.StateUnknown, wantVotes: 2,
			about: "n3", wantRefuse: "not asked"},
		{name: "refused", nodes: nodes, votes: base(refused(n3, "n1", "I stream from n2")), want: api.StateUnknown, wantVotes: 2,
			about: "n3", wantRefuse: "refused: I stream from n2"},
		{name: "answer from this node itself: its address leads back here", nodes: nodes,
			votes: base(with(granted(n3, "n1"), func(a *api.VoteAnswer) { a.Voter, a.VoterID = "n1", 1 })),
			want:  api.StateUnknown, wantVotes: 2, about: "n3", wantRefuse: "from this node itself"},
		{name: "answer from this node under another name", nodes: nodes,
			votes: base(with(granted(n3, "n1"), func(a *api.VoteAnswer) { a.VoterID = 1 })),
			want:  api.StateUnknown, wantVotes: 2, about: "n3", wantRefuse: "from this node itself"},
		{name: "answer as another registered node", nodes: nodes,
			votes: base(granted(n2, "n1")), want: api.StateUnknown, wantVotes: 2, about: "n3", wantRefuse: `answered as "n2" (node_id 2), not as "n3" (node_id 3)`},
		{name: "answer with the right name but another node_id", nodes: nodes,
			votes: base(with(granted(n3, "n1"), func(a *api.VoteAnswer) { a.VoterID = 9 })),
			want:  api.StateUnknown, wantVotes: 2, about: "n3", wantRefuse: "node_id 9"},
		{name: "another system identifier: another cluster", nodes: nodes,
			votes: base(with(granted(n3, "n1"), func(a *api.VoteAnswer) { a.SystemID = "42" })),
			want:  api.StateUnknown, wantVotes: 2, about: "n3", wantRefuse: `system identifier "42" is not ours`},
		{name: "no system identifier", nodes: nodes,
			votes: base(with(granted(n3, "n1"), func(a *api.VoteAnswer) { a.SystemID = "" })),
			want:  api.StateUnknown, wantVotes: 2, about: "n3", wantRefuse: "system identifier"},
		{name: "another protocol", nodes: nodes,
			votes: base(with(granted(n3, "n1"), func(a *api.VoteAnswer) { a.Protocol = 2 })),
			want:  api.StateUnknown, wantVotes: 2, about: "n3", wantRefuse: "vote protocol 2"},
		{name: "a vote about another candidate", nodes: nodes,
			votes: base(granted(n3, "n2")), want: api.StateUnknown, wantVotes: 2, about: "n3", wantRefuse: `answered about "n2"`},
		{name: "a witness votes with a system identifier of its own", nodes: withWitness,
			votes: base(with(granted(witness, "n1"), func(a *api.VoteAnswer) { a.SystemID = "99" })), want: api.StatePrimary, wantVotes: 3},
		{name: "a standby cannot pass for a witness to skip the identifier", nodes: nodes,
			votes: base(with(granted(n3, "n1"), func(a *api.VoteAnswer) { a.VoterType, a.SystemID = repmgr.TypeWitness, "99" })),
			want:  api.StateUnknown, wantVotes: 2, about: "n3", wantRefuse: "system identifier"},
		{name: "a registered witness must answer as one", nodes: withWitness,
			votes: base(with(granted(witness, "n1"), func(a *api.VoteAnswer) { a.VoterType = repmgr.TypeStandby })),
			want:  api.StateUnknown, wantVotes: 2, about: "n3", wantRefuse: "registered as a witness but answered as a standby"},
		{name: "two rows with a peer's name count that peer once", nodes: dupName,
			votes: map[int]PeerVote{2: granted(n2, "n1"), 3: refused(n3, "n1", "no"), 5: granted(n2, "n1")},
			want:  api.StateUnknown, wantVotes: 2, about: "n2 (node_id 5)", wantRefuse: `not as "n2" (node_id 5)`},
		{name: "a vote keyed by an unregistered node_id is ignored", nodes: nodes,
			votes: map[int]PeerVote{2: granted(n2, "n1"), 7: granted(node(7, "n7", repmgr.TypeStandby, "dc1", true), "n1")},
			want:  api.StateUnknown, wantVotes: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := Decide(input(tt.nodes, tt.votes))
			if v.State != tt.want || v.Votes != tt.wantVotes {
				t.Fatalf("Decide = %s with %d votes (%q, refusals %v); want %s with %d", v.State, v.Votes, v.Reason, v.Refusals, tt.want, tt.wantVotes)
			}
			if tt.about != "" && tt.want != api.StatePrimary && !strings.Contains(v.Refusals[tt.about], tt.wantRefuse) {
				t.Errorf("refusal of %s = %q, want it to contain %q", tt.about, v.Refusals[tt.about], tt.wantRefuse)
			}
		})
	}
}

// TestDecideScope runs two locations with a witness: dc1 holds n1 (primary),
// n2, n3; dc2 holds r1, r2; the witness w sits in dc3. Six nodes: the cluster
// majority is 4.
func TestDecideScope(t *testing.T) {
	n := site(3)
	r1, r2 := node(4, "r1", repmgr.TypeStandby, "dc2", true), node(5, "r2", repmgr.TypeStandby, "dc2", true)
	w := node(6, "w", repmgr.TypeWitness, "dc3", true)
	all := []repmgr.Node{n[0], n[1], n[2], r1, r2, w}
	// Four nodes: dc1 with two, dc2 with one, the witness breaking the tie.
	small := []repmgr.Node{n[0], n[1], r1, w}
	votes := func(nodes []repmgr.Node, cand string, ids ...int) map[int]PeerVote {
		m := map[int]PeerVote{}
		for _, id := range ids {
			x, _ := repmgr.ByID(nodes, id)
			m[id] = granted(x, cand)
		}
		return m
	}
	promotedR1 := []repmgr.Node{node(1, "n1", repmgr.TypePrimary, "dc1", false), n[1], n[2],
		node(4, "r1", repmgr.TypePrimary, "dc2", true), r2, w}
	tests := []struct {
		name              string
		self              string
		nodes             []repmgr.Node
		votes             map[int]PeerVote
		scope             Scope
		want              api.State
		wantSite, wantAll int
		wantNeeded        [2]int
	}{
		{name: "cluster: the site and the cluster vouch", self: "n1", nodes: all, votes: votes(all, "n1", 2, 3, 6),
			scope: ScopeCluster, want: api.StatePrimary, wantSite: 3, wantAll: 4, wantNeeded: [2]int{2, 4}},
		{name: "cluster: the whole site without the cluster majority is not enough", self: "n1", nodes: all, votes: votes(all, "n1", 2, 3),
			scope: ScopeCluster, want: api.StateUnknown, wantSite: 3, wantAll: 3, wantNeeded: [2]int{2, 4}},
		{name: "cluster: the cluster majority without the site is not enough", self: "n1", nodes: all, votes: votes(all, "n1", 4, 5, 6),
			scope: ScopeCluster, want: api.StateUnknown, wantSite: 1, wantAll: 4, wantNeeded: [2]int{2, 4}},
		{name: "site: the site alone is enough", self: "n1", nodes: all, votes: votes(all, "n1", 2, 3),
			scope: ScopeSite, want: api.StatePrimary, wantSite: 3, wantAll: 3, wantNeeded: [2]int{2, 4}},
		{name: "cluster: a second site promoting its own primary never has the cluster", self: "r1", nodes: promotedR1,
			votes: votes(promotedR1, "r1", 5), scope: ScopeCluster, want: api.StateUnknown, wantSite: 2, wantAll: 2, wantNeeded: [2]int{2, 4}},
		{name: "site: a second site promoting its own primary has its site", self: "r1", nodes: promotedR1,
			votes: votes(promotedR1, "r1", 5), scope: ScopeSite, want: api.StatePrimary, wantSite: 2, wantAll: 2, wantNeeded: [2]int{2, 4}},
		{name: "witness breaks the tie for the site that keeps it", self: "n1", nodes: small, votes: votes(small, "n1", 2, 6),
			scope: ScopeCluster, want: api.StatePrimary, wantSite: 2, wantAll: 3, wantNeeded: [2]int{2, 3}},
		{name: "without the witness, half the cluster is no majority", self: "n1", nodes: small, votes: votes(small, "n1", 2),
			scope: ScopeCluster, want: api.StateUnknown, wantSite: 2, wantAll: 2, wantNeeded: [2]int{2, 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			me, _ := repmgr.ByName(tt.nodes, tt.self)
			v := Decide(Input{Identity: Identity{Name: tt.self}, Scope: tt.scope, Facts: primaryFacts(tt.nodes),
				SelfVote: granted(me, tt.self), Votes: tt.votes})
			if v.State != tt.want || v.Votes != tt.wantSite || v.ClusterVotes != tt.wantAll ||
				v.Needed != tt.wantNeeded[0] || v.ClusterNeeded != tt.wantNeeded[1] {
				t.Fatalf("Decide = %s, votes %d/%d needed %d/%d (%q); want %s, %d/%d needed %v",
					v.State, v.Votes, v.ClusterVotes, v.Needed, v.ClusterNeeded, v.Reason, tt.want, tt.wantSite, tt.wantAll, tt.wantNeeded)
			}
			if v.Scope != tt.scope {
				t.Errorf("Scope = %q, want %q", v.Scope, tt.scope)
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
