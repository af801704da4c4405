package consensus

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/repmgr"
)

// deposing is a Depositions that deposes name (node_id id), or tells
// nothing (known false).
func deposing(name string, id int, known bool) Depositions {
	return func(candidate string, cid int) (string, bool, bool) {
		if !known {
			return "", false, false
		}
		if candidate == name && cid == id {
			return "the Raft log deposes " + name + " at epoch 4", true, true
		}
		return "", false, true
	}
}

// TestVoteRefusesADeposedCandidate (issue 13, item 1): a voter that applied
// the deposition of the primary its WAL receiver streams from refuses it,
// naming the deposition, and takes no lease; it still vouches for anyone
// else Vouch allows; and it vouches for nobody while it cannot tell.
func TestVoteRefusesADeposedCandidate(t *testing.T) {
	tests := []struct {
		name       string
		deposed    Depositions
		req        api.VoteRequest
		want       bool
		wantReason string
	}{
		{name: "failover off: its WAL receiver decides", req: voteFor("n1", 1, 1), want: true, wantReason: "I stream from it"},
		{name: "nothing deposed: its WAL receiver decides", deposed: deposing("n2", 2, true), req: voteFor("n1", 1, 1), want: true,
			wantReason: "I stream from it"},
		{name: "the primary it streams from, deposed: refused, naming the deposition", deposed: deposing("n1", 1, true), req: voteFor("n1", 1, 1),
			wantReason: "the Raft log deposes n1 at epoch 4 (I stream from it"},
		{name: "another node_id of that name is not the one deposed", deposed: deposing("n1", 7, true), req: voteFor("n1", 1, 1), want: true,
			wantReason: "I stream from it"},
		{name: "its log not current since it started: nobody", deposed: deposing("", 0, false), req: voteFor("n1", 1, 1),
			wantReason: "my Raft log has not been current since I started"},
		{name: "a refusal by Vouch keeps its own reason", deposed: deposing("n1", 1, true), req: voteFor("n2", 2, 1),
			wantReason: "I stream from n1, the primary my metadata names"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newVoter("n3", n3Streaming(site(3), 1, "n1"), nil)
			v.checker.opts.Deposed = tt.deposed
			a := v.vote(tt.req)
			if a.Granted != tt.want || !strings.Contains(a.Reason, tt.wantReason) {
				t.Fatalf("vote %+v; want granted %v, reason containing %q", a, tt.want, tt.wantReason)
			}
			l, _ := v.checker.opts.Ballot.Current()
			if !tt.want && l.Holder == tt.req.Candidate {
				t.Errorf("ballot %+v after a refusal: a refusal takes no lease", l)
			}
		})
	}
}

// TestDepositionLetsTheLeaseRunOut: once deposed, the primary's lease is
// not renewed; Binds says how long the vote is still bound to it (lease
// plus router hold), and 0 after.
func TestDepositionLetsTheLeaseRunOut(t *testing.T) {
	v := newVoter("n3", n3Streaming(site(3), 1, "n1"), nil)
	if a := v.vote(voteFor("n1", 1, 1)); !a.Granted {
		t.Fatalf("vote before the deposition %+v, want granted", a)
	}
	hold := 500 * time.Millisecond
	v.checker.opts.Ballot.HoldForRouters(hold)
	lease := LeaseFor(testTTL)
	if got := v.checker.Binds("n1", 1); got != lease+hold {
		t.Fatalf("bound to n1 for %s right after its vote, want %s", got, lease+hold)
	}
	v.checker.opts.Deposed = deposing("n1", 1, true)
	v.clock.Advance(lease / 2)
	if a := v.vote(voteFor("n1", 1, 1)); a.Granted {
		t.Fatalf("vote after the deposition %+v, want refused", a)
	}
	if got := v.checker.Binds("n1", 1); got != lease/2+hold {
		t.Fatalf("bound to n1 for %s after a refused renewal, want %s: a refusal must not renew", got, lease/2+hold)
	}
	v.clock.Advance(lease/2 + hold)
	if got := v.checker.Binds("n1", 1); got != 0 {
		t.Fatalf("bound to n1 for %s after its lease and the hold, want 0", got)
	}
}

// TestBallotBinds: a lease binds the voter to its holder, and the quiet
// period after a start to anyone; another holder's lease binds it to
// nobody else, since it was granted only once the others' had run out.
func TestBallotBinds(t *testing.T) {
	clock := newFakeClock()
	b, err := NewBallot(time.Second, clock.Boot, nil)
	if err != nil {
		t.Fatal(err)
	}
	b.HoldForRouters(200 * time.Millisecond)
	if got := b.Binds("n1", 1); got != 1200*time.Millisecond {
		t.Fatalf("quiet period binds %s to n1, want 1.2s", got)
	}
	clock.Advance(1200 * time.Millisecond)
	if ok, _, _, _ := b.Grant("n2", 2); !ok {
		t.Fatal("grant to n2 refused after the quiet period")
	}
	if got := b.Binds("n1", 1); got != 0 {
		t.Fatalf("n2's lease binds %s to n1, want 0", got)
	}
	if got := b.Binds("n2", 2); got != 1200*time.Millisecond {
		t.Fatalf("n2's lease binds %s to n2, want 1.2s", got)
	}
	if got := b.Binds("n2", 5); got != 0 {
		t.Fatalf("n2's lease binds %s to node_id 5 of that name, want 0", got)
	}
}

// TestHasMajority counts voters as Decide counts votes: a majority of the
// location and, with scope cluster, of every registered row; a node_id
// once.
func TestHasMajority(t *testing.T) {
	two := append(site(3), node(4, "m4", repmgr.TypeStandby, "dc2", true), node(5, "m5", repmgr.TypeStandby, "dc2", true))
	dup := append(site(3), node(2, "n2-again", repmgr.TypeStandby, "dc1", true))
	tests := []struct {
		name   string
		scope  Scope
		nodes  []repmgr.Node
		voters []int
		want   bool
	}{
		{name: "two of three", scope: ScopeCluster, nodes: site(3), voters: []int{2, 3}, want: true},
		{name: "one of three", scope: ScopeCluster, nodes: site(3), voters: []int{3}},
		{name: "unregistered voters count for nothing", scope: ScopeCluster, nodes: site(3), voters: []int{3, 9}},
		{name: "a node_id twice counts once", scope: ScopeCluster, nodes: dup, voters: []int{2, 3}, want: false},
		{name: "cluster: the location's majority is not enough", scope: ScopeCluster, nodes: two, voters: []int{2, 3}},
		{name: "cluster: the cluster's majority without the location's is not enough", scope: ScopeCluster, nodes: two, voters: []int{3, 4, 5}},
		{name: "cluster: both", scope: ScopeCluster, nodes: two, voters: []int{2, 3, 4}, want: true},
		{name: "site: the location's majority", scope: ScopeSite, nodes: two, voters: []int{2, 3}, want: true},
		{name: "empty scope counts as cluster", nodes: two, voters: []int{2, 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			voters := map[int]bool{}
			for _, id := range tt.voters {
				voters[id] = true
			}
			if got, tally := HasMajority(tt.scope, "dc1", tt.nodes, voters); got != tt.want {
				t.Fatalf("HasMajority = %v (%s), want %v", got, tally, tt.want)
			}
		})
	}
}

type fakeDepositionSource struct{}

func (fakeDepositionSource) Deposed(candidate string, _ int) (string, bool, bool) {
	return "deposed", candidate == "n1", true
}

// TestDepositionsFrom: unknown until the controller is built, then what it
// says.
func TestDepositionsFrom(t *testing.T) {
	var holder atomic.Pointer[DepositionSource]
	read := DepositionsFrom(&holder)
	if _, _, known := read("n1", 1); known {
		t.Fatal("known before any controller")
	}
	var src DepositionSource = fakeDepositionSource{}
	holder.Store(&src)
	if _, deposed, known := read("n1", 1); !deposed || !known {
		t.Fatalf("n1 deposed %v known %v, want both", deposed, known)
	}
}
