package consensus

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/repmgr"
)

// testVoteLease is the lease of a Checker built with testTTL.
var testVoteLease = LeaseFor(testTTL)

// voter is a Checker answering votes as name on the facts its prober
// returns, with an open ballot.
type voter struct {
	checker *Checker
	prober  *fakeProber
	clock   *fakeClock
}

func newVoter(name string, facts repmgr.Facts, probeErr error) *voter {
	v := &voter{prober: &fakeProber{facts: facts, err: probeErr}, clock: newFakeClock()}
	v.checker = NewChecker(Options{
		Identity: Identity{Name: name}, RefreshInterval: time.Hour, CacheTTL: testTTL, PeerTimeout: testPeerTimeout,
		Addresses: Addresses{Port: 5999}, Now: v.clock.Now, Boot: v.clock.Boot, Ballot: openBallot(v.clock, testTTL),
	}, v.prober, newFakePeers(nil, nil))
	return v
}

func (v *voter) vote(req api.VoteRequest) api.VoteAnswer {
	return v.checker.Vote(context.Background(), req)
}

// n3Streaming are the facts of the standby n3 of site(3) on timeline tl,
// streaming from sender, with nodes as its metadata.
func n3Streaming(nodes []repmgr.Node, tl int, sender string) repmgr.Facts {
	f := standbyFacts(nodes, tl, sender, 5432)
	f.Server.Port = 5432
	return f
}

// promotedN2 is site(3)'s metadata once repmgr has recorded n2's promotion.
func promotedN2() []repmgr.Node {
	nodes := site(3)
	nodes[0].Active = false
	nodes[1].Type = repmgr.TypePrimary
	return nodes
}

// TestVote: one vote asked of a fresh voter, on facts probed for it.
func TestVote(t *testing.T) {
	fromN1 := n3Streaming(site(3), 1, "n1")
	w := node(9, "w", repmgr.TypeWitness, "dc3", true)
	witnessFacts := repmgr.Facts{Nodes: append(site(3), w), Server: repmgr.Server{SystemID: "1111111111111111111", Timeline: 4, Port: 5432}}
	twice := append(site(3), node(4, "n3", repmgr.TypeStandby, "dc1", true))
	tests := []struct {
		name       string
		self       string
		facts      repmgr.Facts
		probeErr   error
		req        api.VoteRequest
		want       api.VoteAnswer // Reason is checked by wantReason
		wantReason string
	}{
		{name: "standby grants the primary it streams from and names itself", self: "n3", facts: fromN1, req: voteFor("n1", 1, 1),
			want: api.VoteAnswer{Protocol: api.VoteProtocol, Voter: "n3", VoterID: 3, VoterType: repmgr.TypeStandby,
				SystemID: testSystemID, Timeline: 1, Candidate: "n1", Granted: true,
				LeaseMillis: testVoteLease.Milliseconds(), LeaseHolder: "n1"},
			wantReason: "I stream from it on timeline 1"},
		{name: "standby refuses another candidate and names itself", self: "n3", facts: fromN1, req: voteFor("n2", 2, 2),
			want: api.VoteAnswer{Protocol: api.VoteProtocol, Voter: "n3", VoterID: 3, VoterType: repmgr.TypeStandby,
				SystemID: testSystemID, Timeline: 1, Candidate: "n2"},
			wantReason: "I stream from n1, the primary my metadata names"},
		{name: "witness answers with its own system identifier and timeline", self: "w", facts: witnessFacts, req: voteFor("n1", 1, 1),
			want: api.VoteAnswer{Protocol: api.VoteProtocol, Voter: "w", VoterID: 9, VoterType: repmgr.TypeWitness,
				SystemID: "1111111111111111111", Timeline: 4, Candidate: "n1", Granted: true,
				LeaseMillis: testVoteLease.Milliseconds(), LeaseHolder: "n1"},
			wantReason: "my metadata names it the active primary"},
		{name: "another protocol refused", self: "n3", facts: fromN1,
			req: func() api.VoteRequest { r := voteFor("n1", 1, 1); r.Protocol = api.VoteProtocol + 1; return r }(),
			want: api.VoteAnswer{Protocol: api.VoteProtocol, Voter: "n3", VoterID: 3, VoterType: repmgr.TypeStandby,
				SystemID: testSystemID, Timeline: 1, Candidate: "n1"},
			wantReason: "I speak vote protocol 1, not 2"},
		{name: "probe error refused with the reason on one line", self: "n3", probeErr: errors.New("dial tcp:\n  connection refused"),
			req:        voteFor("n1", 1, 1),
			want:       api.VoteAnswer{Protocol: api.VoteProtocol, Voter: "n3", Candidate: "n1"},
			wantReason: "my database is unreachable: dial tcp: connection refused"},
		{name: "identity error refused with the reason", self: "n3",
			facts: func() repmgr.Facts { f := fromN1; f.Server.Port = 5433; return f }(), req: voteFor("n1", 1, 1),
			want: api.VoteAnswer{Protocol: api.VoteProtocol, Voter: "n3", VoterID: 3, VoterType: repmgr.TypeStandby,
				SystemID: testSystemID, Timeline: 1, Candidate: "n1"},
			wantReason: "my database.dsn reaches another node's database: database.dsn reaches a server on port 5433"},
		{name: "unregistered voter refuses", self: "n9", facts: fromN1, req: voteFor("n1", 1, 1),
			want:       api.VoteAnswer{Protocol: api.VoteProtocol, Voter: "n9", SystemID: testSystemID, Timeline: 1, Candidate: "n1"},
			wantReason: `"n9" is not registered in my repmgr.nodes`},
		{name: "voter registered twice refuses", self: "n3", facts: n3Streaming(twice, 1, "n1"), req: voteFor("n1", 1, 1),
			want:       api.VoteAnswer{Protocol: api.VoteProtocol, Voter: "n3", SystemID: testSystemID, Timeline: 1, Candidate: "n1"},
			wantReason: "registered 2 times"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newVoter(tt.self, tt.facts, tt.probeErr)
			a := v.vote(tt.req)
			if !strings.Contains(a.Reason, tt.wantReason) || strings.Contains(a.Reason, "\n") {
				t.Errorf("Reason = %q, want one line containing %q", a.Reason, tt.wantReason)
			}
			a.Reason = ""
			if a != tt.want {
				t.Errorf("Vote =\n  %+v\nwant\n  %+v", a, tt.want)
			}
			if n := v.prober.Calls(); n != 1 {
				t.Errorf("%d probes for a vote on fresh facts, want 1", n)
			}
			if l, _ := v.checker.opts.Ballot.Current(); (l.Holder != "") != tt.want.Granted {
				t.Errorf("ballot lease %+v after a vote granted %v: a lease is taken exactly when the vote is granted", l, tt.want.Granted)
			}
		})
	}
}

// TestVoteLease: a standby that vouched for n1 does not vouch for n2, which
// it now streams from, until n1's lease has run out.
func TestVoteLease(t *testing.T) {
	v := newVoter("n3", n3Streaming(site(3), 1, "n1"), nil)
	if a := v.vote(voteFor("n1", 1, 1)); !a.Granted || a.LeaseHolder != "n1" {
		t.Fatalf("vote for n1 = %+v, want granted", a)
	}
	// n1 fails, n2 is promoted on timeline 2 and n3 follows it before it
	// has replayed repmgr's metadata change.
	v.prober.set(n3Streaming(site(3), 2, "n2"), nil)
	v.clock.Advance(time.Second)
	a := v.vote(voteFor("n2", 2, 2))
	wantMillis := (testVoteLease - time.Second).Milliseconds()
	if a.Granted || a.LeaseHolder != "n1" || a.LeaseMillis != wantMillis {
		t.Fatalf("vote for n2 within n1's lease = %+v; want refused, lease_holder n1, lease_ms %d", a, wantMillis)
	}
	for _, want := range []string{"I vouch for n1 for another", "I stream from it on timeline 2"} {
		if !strings.Contains(a.Reason, want) {
			t.Errorf("Reason = %q, want it to contain %q", a.Reason, want)
		}
	}
	v.clock.Advance(testVoteLease - time.Second - time.Millisecond)
	if a := v.vote(voteFor("n2", 2, 2)); a.Granted || a.LeaseHolder != "n1" || a.LeaseMillis != 1 {
		t.Fatalf("vote for n2 a millisecond before n1's lease ends = %+v; want refused, lease_holder n1, lease_ms 1", a)
	}
	v.clock.Advance(time.Millisecond)
	if a := v.vote(voteFor("n2", 2, 2)); !a.Granted || a.LeaseHolder != "n2" || a.LeaseMillis != testVoteLease.Milliseconds() {
		t.Fatalf("vote for n2 once n1's lease ended = %+v; want granted for a lease", a)
	}
	if a := v.vote(voteFor("n1", 1, 1)); a.Granted || !strings.Contains(a.Reason, "older than mine") {
		t.Fatalf("vote for the old primary n1 = %+v; want refused for its older timeline", a)
	}
}

// TestVoteReprobe: a vote refused on facts 100 ms old or older is answered
// again on a new probe, once; other answers stand on the facts at hand.
func TestVoteReprobe(t *testing.T) {
	fromN1 := n3Streaming(site(3), 1, "n1")
	fromN2 := n3Streaming(site(3), 2, "n2") // n2 promoted, n3 following it
	tests := []struct {
		name       string
		cached     repmgr.Facts // probed first, and cached
		cachedErr  error
		leaseTo    string // a lease granted before the vote
		now        repmgr.Facts
		age        time.Duration // of the cached facts when the vote is asked
		req        api.VoteRequest
		wantProbes int // during the vote
		wantGrant  bool
		wantReason string
	}{
		{name: "refusal on facts 100ms old probes once more and answers on the new facts",
			cached: fromN1, now: fromN2, age: voteRefreshAge, req: voteFor("n2", 2, 2),
			wantProbes: 1, wantGrant: true, wantReason: "I stream from it on timeline 2"},
		{name: "refusal on facts a minute old probes once more and answers on the new facts",
			cached: fromN1, now: fromN2, age: time.Minute, req: voteFor("n2", 2, 2),
			wantProbes: 1, wantGrant: true, wantReason: "I stream from it"},
		{name: "refusal the new facts confirm probes exactly once",
			cached: fromN1, now: fromN1, age: time.Minute, req: voteFor("n2", 2, 2),
			wantProbes: 1, wantReason: "I stream from n1"},
		{name: "refusal on facts just under 100ms old stands without a probe",
			cached: fromN1, now: fromN2, age: voteRefreshAge - time.Nanosecond, req: voteFor("n2", 2, 2),
			wantReason: "I stream from n1"},
		{name: "refusal on a probe error 100ms old probes once more",
			cachedErr: errors.New("connection refused"), now: fromN2, age: voteRefreshAge, req: voteFor("n2", 2, 2),
			wantProbes: 1, wantGrant: true},
		{name: "grant on old facts needs no probe",
			cached: fromN1, now: fromN2, age: time.Minute, req: voteFor("n1", 1, 1),
			wantGrant: true, wantReason: "I stream from it on timeline 1"},
		{name: "refusal because of another node's lease does not probe",
			cached: fromN2, leaseTo: "n1", now: fromN1, age: time.Minute, req: voteFor("n2", 2, 2),
			wantReason: "I vouch for n1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newVoter("n3", tt.cached, tt.cachedErr)
			v.checker.Facts(context.Background())
			if tt.leaseTo != "" {
				n, _ := repmgr.ByName(tt.cached.Nodes, tt.leaseTo)
				mustGrant(t, v.checker.opts.Ballot, n.Name, n.ID)
			}
			v.prober.set(tt.now, nil)
			v.clock.Advance(tt.age)
			before := v.prober.Calls()
			a := v.vote(tt.req)
			if probes := v.prober.Calls() - before; probes != tt.wantProbes {
				t.Errorf("%d probes during the vote, want %d", probes, tt.wantProbes)
			}
			if a.Granted != tt.wantGrant || !strings.Contains(a.Reason, tt.wantReason) {
				t.Errorf("Vote = granted %v (%q), want %v (%q)", a.Granted, a.Reason, tt.wantGrant, tt.wantReason)
			}
		})
	}
}

// TestOwnVoteSharesTheBallot: a primary's own vote takes the lease of the
// ballot it answers its peers from. Demoted and following n2 within that
// lease, it does not vouch for n2.
func TestOwnVoteSharesTheBallot(t *testing.T) {
	h := newHarness(site(3), false, votesForN1)
	s := h.checker.Snapshot(context.Background())
	if s.Verdict.State != api.StatePrimary || s.SelfVote.Answer == nil || !s.SelfVote.Answer.Granted {
		t.Fatalf("verdict %s, own vote %+v; want Primary with its own vote", s.Verdict.State, s.SelfVote.Answer)
	}
	if l, remaining := h.checker.opts.Ballot.Current(); l.Holder != "n1" || l.HolderID != 1 || remaining != testVoteLease {
		t.Fatalf("ballot after the own vote = %+v for %s, want n1's for %s", l, remaining, testVoteLease)
	}
	// n1 is rejoined as a standby of n2, whose promotion it has replayed.
	demoted := primaryFacts(promotedN2())
	demoted.InRecovery, demoted.Server.Timeline = true, 2
	demoted.WAL = repmgr.WAL{ReceiverStatus: repmgr.StreamingState, SenderHost: "n2", SenderPort: 5432}
	h.prober.set(demoted, nil)
	h.clock.Advance(time.Minute)
	a := h.checker.Vote(context.Background(), voteFor("n2", 2, 2))
	if a.Granted || a.LeaseHolder != "n1" || a.LeaseMillis != (testVoteLease-time.Minute).Milliseconds() {
		t.Fatalf("n1's vote for n2 within its own lease = %+v; want refused, lease_holder n1", a)
	}
	if !strings.Contains(a.Reason, "I vouch for n1") || !strings.Contains(a.Reason, "I stream from it") {
		t.Errorf("Reason = %q, want the lease named and Vouch's grant behind it", a.Reason)
	}
	h.clock.Advance(testVoteLease - time.Minute)
	if a := h.checker.Vote(context.Background(), voteFor("n2", 2, 2)); !a.Granted || a.LeaseHolder != "n2" {
		t.Fatalf("n1's vote for n2 once its own lease ended = %+v; want granted", a)
	}
}
