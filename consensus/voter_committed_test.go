package consensus

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/repmgr"
)

// committedTo is a CommittedPrimary naming name (node_id id), or nothing.
func committedTo(name string, id int, ok bool) CommittedPrimary {
	return func() (string, int, bool) { return name, id, ok }
}

// TestVoteForTheCommittedPrimary: a voter whose database is down, or a
// witness, vouches for the primary the Raft log commits, through its ballot,
// and for no other (issue 13, item 9: the double fault).
func TestVoteForTheCommittedPrimary(t *testing.T) {
	down := errors.New("connection refused")
	w := node(9, "w", repmgr.TypeWitness, "dc3", true)
	witnessFacts := repmgr.Facts{Nodes: append(site(3), w), Server: repmgr.Server{SystemID: "1111111111111111111", Timeline: 4, Port: 5432}}
	tests := []struct {
		name       string
		self       string
		facts      repmgr.Facts // read once while its database was up
		neverUp    bool         // no probe ever succeeded
		downNow    bool         // its database is down at the vote
		committed  CommittedPrimary
		firstVote  *api.VoteRequest // granted before, while up
		req        api.VoteRequest
		want       bool
		wantReason string
		wantID     int
		wantSysID  string
	}{
		{name: "database down: vouches for the committed primary", self: "n3", facts: n3Streaming(site(3), 1, "n1"),
			downNow: true, committed: committedTo("n2", 2, true), req: voteFor("n2", 2, 2), want: true,
			wantReason: "the Raft log commits n2 (node_id 2)", wantID: 3, wantSysID: testSystemID},
		{name: "database down: not for another", self: "n3", facts: n3Streaming(site(3), 1, "n1"),
			downNow: true, committed: committedTo("n2", 2, true), req: voteFor("n1", 1, 1),
			wantReason: "my database is unreachable", wantID: 3, wantSysID: testSystemID},
		{name: "database down: not when the node_id differs", self: "n3", facts: n3Streaming(site(3), 1, "n1"),
			downNow: true, committed: committedTo("n2", 5, true), req: voteFor("n2", 2, 2), wantReason: "node_id 5"},
		{name: "database down: not while the log may be behind", self: "n3", facts: n3Streaming(site(3), 1, "n1"),
			downNow: true, committed: committedTo("n2", 2, false), req: voteFor("n2", 2, 2), wantReason: "my database is unreachable"},
		{name: "database down, failover off: refuses as before", self: "n3", facts: n3Streaming(site(3), 1, "n1"),
			downNow: true, req: voteFor("n2", 2, 2), wantReason: "my database is unreachable"},
		{name: "database down since the start: it knows not its own row", self: "n3", neverUp: true, downNow: true,
			committed: committedTo("n2", 2, true), req: voteFor("n2", 2, 2), wantReason: "my database is unreachable"},
		{name: "database down: not for another cluster", self: "n3", facts: n3Streaming(site(3), 1, "n1"), downNow: true,
			committed: committedTo("n2", 2, true),
			req:       func() api.VoteRequest { r := voteFor("n2", 2, 2); r.SystemID = "42"; return r }(), wantReason: "system identifier"},
		{name: "database down: the lease it gave still binds it", self: "n3", facts: n3Streaming(site(3), 1, "n1"),
			downNow: true, committed: committedTo("n2", 2, true), firstVote: ptr(voteFor("n1", 1, 1)), req: voteFor("n2", 2, 2),
			wantReason: "I vouch for n1 for another"},
		{name: "witness: vouches for the committed primary over its metadata", self: "w", facts: witnessFacts,
			committed: committedTo("n2", 2, true), req: voteFor("n2", 2, 2), want: true, wantReason: "the Raft log commits n2",
			wantID: 9, wantSysID: "1111111111111111111"},
		{name: "witness: not for the primary its metadata names but the log does not", self: "w", facts: witnessFacts,
			committed: committedTo("n2", 2, true), req: voteFor("n1", 1, 1), wantReason: "the Raft log commits n2",
			wantID: 9, wantSysID: "1111111111111111111"},
		{name: "witness, failover off: its metadata as before", self: "w", facts: witnessFacts,
			req: voteFor("n1", 1, 1), want: true, wantReason: "my metadata names it", wantID: 9, wantSysID: "1111111111111111111"},
		{name: "witness, log may be behind: its metadata", self: "w", facts: witnessFacts, committed: committedTo("n2", 2, false),
			req: voteFor("n1", 1, 1), want: true, wantReason: "my metadata names it", wantID: 9, wantSysID: "1111111111111111111"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newVoter(tt.self, tt.facts, nil)
			v.checker.opts.Committed = tt.committed
			if tt.neverUp {
				v.prober.set(repmgr.Facts{}, down)
			}
			v.checker.Facts(context.Background())
			if tt.firstVote != nil {
				if a := v.vote(*tt.firstVote); !a.Granted {
					t.Fatalf("first vote %+v, want granted", a)
				}
			}
			if tt.downNow {
				v.prober.set(repmgr.Facts{}, down)
				v.clock.Advance(testTTL) // the facts read while up are too old to vote on
			}
			a := v.vote(tt.req)
			if a.Granted != tt.want || !strings.Contains(a.Reason, tt.wantReason) {
				t.Fatalf("vote %+v; want granted %v, reason containing %q", a, tt.want, tt.wantReason)
			}
			if tt.wantID != 0 && (a.VoterID != tt.wantID || a.SystemID != tt.wantSysID) {
				t.Errorf("answer names node_id %d, system identifier %q; want %d, %q (its own, last read)", a.VoterID, a.SystemID, tt.wantID, tt.wantSysID)
			}
			if l, _ := v.checker.opts.Ballot.Current(); tt.want && l.Holder != tt.req.Candidate {
				t.Errorf("ballot %+v after a granted vote: want its lease to %s", l, tt.req.Candidate)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

type fakeController struct{}

func (fakeController) Committed() (string, int, uint64, bool) { return "n2", 2, 7, true }

// TestCommittedFrom reads whatever the pointer holds when asked: nothing
// until the controller is built.
func TestCommittedFrom(t *testing.T) {
	var holder atomic.Pointer[CommittedSource]
	read := CommittedFrom(&holder)
	if _, _, ok := read(); ok {
		t.Fatal("committed before any controller")
	}
	var src CommittedSource = fakeController{}
	holder.Store(&src)
	if name, id, ok := read(); !ok || name != "n2" || id != 2 {
		t.Fatalf("read %q %d %v, want n2 2 true", name, id, ok)
	}
}
