package consensus

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/repmgr"
)

// The core is tested by feeding it events and reading its effects: no
// goroutine, no real clock.

const (
	coreRefresh = time.Second
	coreTTL     = 3 * time.Second
)

func newTestCore(clock *fakeClock) *core {
	return simCore("n1", ScopeCluster, coreRefresh, coreTTL, testPeerTimeout, openBallot(clock, coreTTL), clock.Boot)
}

// grantFrom is n's granted vote for n1, with a full lease.
func grantFrom(n repmgr.Node) PeerVote {
	return PeerVote{Answer: &api.VoteAnswer{Protocol: api.VoteProtocol, Voter: n.Name, VoterID: n.ID, VoterType: n.Type,
		SystemID: testSystemID, Timeline: 1, Candidate: "n1", Granted: true, LeaseMillis: LeaseFor(coreTTL).Milliseconds()}}
}

func only[T effect](t *testing.T, effs []effect) T {
	t.Helper()
	var found []T
	for _, e := range effs {
		if x, ok := e.(T); ok {
			found = append(found, x)
		}
	}
	if len(found) != 1 {
		var zero T
		t.Fatalf("effects %#v: want one %T", effs, zero)
	}
	return found[0]
}

// refreshed runs one refresh of c as n1, primary of site(3), to its end:
// probe, poll, every peer granting.
func refreshed(t *testing.T, c *core, clock *fakeClock, start func(time.Time) []effect) published {
	t.Helper()
	only[startProbe](t, start(clock.Now()))
	poll := only[pollPeers](t, c.ProbeDone(clock.Now(), primaryFacts(site(3)), nil))
	var effs []effect
	for _, n := range poll.nodes {
		effs = c.PeerAnswered(clock.Now(), poll.round, n.ID, grantFrom(n))
	}
	return only[published](t, effs)
}

func TestCoreRefresh(t *testing.T) {
	clock := newFakeClock()
	c := newTestCore(clock)
	effs := c.Tick(clock.Now())
	only[startProbe](t, effs)
	clock.Advance(10 * time.Millisecond)
	effs = c.ProbeDone(clock.Now(), primaryFacts(site(3)), nil)
	only[factsReady](t, effs)
	poll := only[pollPeers](t, effs)
	if len(poll.nodes) != 2 || poll.req.Candidate != "n1" || !poll.deadline.Equal(clock.Now().Add(testPeerTimeout)) {
		t.Fatalf("poll = %+v, want n2 and n3 asked for n1 until PeerTimeout from now", poll)
	}
	if effs := c.PeerAnswered(clock.Now(), poll.round, 2, grantFrom(poll.nodes[0])); len(effs) != 0 {
		t.Fatalf("effects after one of two answers: %#v, want none", effs)
	}
	clock.Advance(10 * time.Millisecond)
	effs = c.PeerAnswered(clock.Now(), poll.round, 3, grantFrom(poll.nodes[1]))
	p := only[published](t, effs)
	if p.snap.Verdict.State != api.StatePrimary || p.took != 20*time.Millisecond || !p.changed {
		t.Errorf("published %s after %s (changed %v), want a change to Primary after 20ms", p.snap.Verdict.State, p.took, p.changed)
	}
	// The next tick is a refresh interval after the probe started.
	if w := only[wakeRun](t, effs); w.after != coreRefresh-20*time.Millisecond {
		t.Errorf("next tick after %s, want %s", w.after, coreRefresh-20*time.Millisecond)
	}
	if s, effs := c.Serve(clock.Now()); s != p.snap || len(effs) != 0 {
		t.Errorf("Serve = %p with %d effects, want the published verdict from the cache", s, len(effs))
	}
}

func TestCoreServe(t *testing.T) {
	tests := []struct {
		name      string
		advance   time.Duration // from the probe's start
		wantCache bool
	}{
		{name: "just before the TTL: cached", advance: coreTTL - time.Nanosecond, wantCache: true},
		{name: "at the TTL: a new refresh, with a new probe", advance: coreTTL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			c := newTestCore(clock)
			first := refreshed(t, c, clock, func(now time.Time) []effect { _, effs := c.Serve(now); return effs })
			clock.Advance(tt.advance)
			s, effs := c.Serve(clock.Now())
			if tt.wantCache {
				if s != first.snap || len(effs) != 0 {
					t.Fatalf("Serve = %p, %#v; want the cached verdict", s, effs)
				}
				return
			}
			only[startProbe](t, effs)
			if s != nil {
				t.Fatalf("Serve served a verdict %s old", tt.advance)
			}
			if s, effs := c.Serve(clock.Now()); s != nil || len(effs) != 0 {
				t.Fatalf("a second Serve during the refresh = %p, %#v; want it to wait for the same refresh", s, effs)
			}
		})
	}
}

func TestCorePollEnds(t *testing.T) {
	tests := []struct {
		name string
		end  func(c *core, now time.Time, p pollPeers) []effect
	}{
		{name: "at the deadline without an answer", end: func(c *core, now time.Time, p pollPeers) []effect {
			return c.PollExpired(p.deadline, p.round)
		}},
		{name: "an answer at the deadline is no vote", end: func(c *core, now time.Time, p pollPeers) []effect {
			return c.PeerAnswered(p.deadline, p.round, 3, grantFrom(p.nodes[1]))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			c := newTestCore(clock)
			only[startProbe](t, c.Tick(clock.Now()))
			poll := only[pollPeers](t, c.ProbeDone(clock.Now(), primaryFacts(site(3)), nil))
			c.PeerAnswered(clock.Now(), poll.round, 2, grantFrom(poll.nodes[0]))
			p := only[published](t, tt.end(c, clock.Now(), poll))
			if v := p.snap.Verdict; v.State != api.StatePrimary || v.Votes != 2 {
				t.Errorf("verdict %s with %d votes, want Primary with n1's and n2's", v.State, v.Votes)
			}
			if effs := c.PeerAnswered(poll.deadline, poll.round, 3, grantFrom(poll.nodes[1])); len(effs) != 0 {
				t.Errorf("an answer to a finished round: %#v, want nothing", effs)
			}
		})
	}
}

// TestCoreInFlux: without its majority, a node whose verdict just changed
// polls again after fluxInterval; Run, joining a refresh started by Serve,
// is woken at its end.
func TestCoreInFlux(t *testing.T) {
	clock := newFakeClock()
	c := newTestCore(clock)
	_, effs := c.Serve(clock.Now())
	only[startProbe](t, effs)
	if effs := c.Tick(clock.Now()); len(effs) != 0 {
		t.Fatalf("Tick during a refresh: %#v, want it to join", effs)
	}
	poll := only[pollPeers](t, c.ProbeDone(clock.Now(), primaryFacts(site(3)), nil))
	effs = c.PollExpired(poll.deadline, poll.round)
	if p := only[published](t, effs); p.snap.Verdict.State != api.StateUnknown {
		t.Fatalf("verdict %s, want Unknown without votes", p.snap.Verdict.State)
	}
	if w := only[wakeRun](t, effs); w.after != fluxInterval {
		t.Errorf("next tick after %s, want fluxInterval", w.after)
	}
}

func TestCoreVote(t *testing.T) {
	clock := newFakeClock()
	c := simCore("n3", ScopeCluster, coreRefresh, coreTTL, testPeerTimeout, openBallot(clock, coreTTL), clock.Boot)
	call := &voteCall{req: voteFor("n2", 2, 2)}
	only[startProbe](t, c.Vote(clock.Now(), call))
	// Refused on the facts probed for it: answered, not probed again.
	effs := c.ProbeDone(clock.Now(), n3Streaming(site(3), 1, "n1"), nil)
	if a := only[voteAnswered](t, effs); a.call != call || a.answer.Granted {
		t.Fatalf("answer %+v, want n2 refused", a.answer)
	}
	// The same refusal on facts older than voteRefreshAge probes again, and
	// the new facts (n3 now streams from n2 on its timeline) decide.
	clock.Advance(voteRefreshAge)
	call = &voteCall{req: voteFor("n2", 2, 2)}
	only[startProbe](t, c.Vote(clock.Now(), call))
	effs = c.ProbeDone(clock.Now(), n3Streaming(promotedN2(), 2, "n2"), nil)
	if a := only[voteAnswered](t, effs); !a.answer.Granted {
		t.Fatalf("answer on new facts %+v, want granted", a.answer)
	}
}

func TestCoreStepDown(t *testing.T) {
	clock := newFakeClock()
	c := newTestCore(clock)
	refreshed(t, c, clock, c.Tick)
	c.StepDown("switchover")
	if s, _ := c.Serve(clock.Now()); s != nil {
		t.Fatalf("Serve after StepDown = %s, want the cached verdict dropped", s.Verdict.State)
	}
	clock.Advance(coreRefresh)
	effs := c.Tick(clock.Now())
	only[startProbe](t, effs)
	effs = c.ProbeDone(clock.Now(), primaryFacts(site(3)), nil)
	p := only[published](t, effs)
	if p.snap.Verdict.State != api.StateDown || p.snap.Votes != nil {
		t.Errorf("verdict %s asking %d peers, want Down asking nobody", p.snap.Verdict.State, len(p.snap.Votes))
	}
}

// TestCoreVerdictExpiresOnEitherClock: a machine suspended for longer than
// the cache TTL resumes with its monotonic clock where it stopped; its
// cached Primary verdict must not be served, nor its facts reused, since
// the boot clock, which counts the suspend, says they have expired.
func TestCoreVerdictExpiresOnEitherClock(t *testing.T) {
	tests := []struct {
		name      string
		advance   time.Duration // on every clock
		suspend   time.Duration // on the boot clock only
		wantCache bool
	}{
		{name: "no suspend, within the TTL: cached", advance: coreTTL / 2, wantCache: true},
		{name: "a short suspend within the TTL: cached", advance: coreTTL / 2, suspend: coreTTL/2 - time.Millisecond, wantCache: true},
		{name: "suspended past the TTL, monotonic clock standing still", suspend: coreTTL},
		{name: "suspended past the TTL with the monotonic clock counting half", advance: coreTTL / 2, suspend: coreTTL / 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			c := newTestCore(clock)
			first := refreshed(t, c, clock, func(now time.Time) []effect { _, effs := c.Serve(now); return effs })
			if first.snap.Verdict.State != api.StatePrimary {
				t.Fatalf("first verdict %s, want Primary", first.snap.Verdict.State)
			}
			clock.Advance(tt.advance)
			clock.Suspend(tt.suspend)
			s, effs := c.Serve(clock.Now())
			if tt.wantCache {
				if s != first.snap {
					t.Fatalf("Serve = %p, %#v; want the cached verdict", s, effs)
				}
				return
			}
			if s != nil {
				t.Fatalf("Serve served a Primary verdict %s old on the monotonic clock, %s on the boot clock",
					tt.advance, tt.advance+tt.suspend)
			}
			only[startProbe](t, effs) // the facts are as old: probed again
		})
	}
}

// TestAgeTakesTheOldestClock: each clock can only make facts older, never
// younger: a wall clock stepped back extends nothing.
func TestAgeTakesTheOldestClock(t *testing.T) {
	probed := time.Now() // carries a monotonic reading
	tests := []struct {
		name       string
		now        time.Time
		boot, want time.Duration
	}{
		{name: "all agree", now: probed.Add(time.Second), boot: time.Second, want: time.Second},
		{name: "boot clock ahead (a suspend)", now: probed.Add(time.Second), boot: time.Hour, want: time.Hour},
		{name: "wall clock ahead (stepped by NTP after a pause)", now: probed.Round(0).Add(time.Minute), boot: time.Second, want: time.Minute},
		{name: "wall clock stepped back", now: probed.Round(0).Add(-time.Hour), boot: time.Second, want: time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := age(tt.now, probed, 100*time.Hour+tt.boot, 100*time.Hour); got != tt.want {
				t.Errorf("age = %s, want %s", got, tt.want)
			}
		})
	}
}

// TestCoreDoubleFault is issue 13's item 9 through two cores: n3's
// pgquorum is stopped, then n1's PostgreSQL is killed and n2 committed and
// promoted. n1's pgquorum, its database down, vouches for the committed n2
// once the lease it gave itself has run out, and n2 is confirmed by 2 of 3.
func TestCoreDoubleFault(t *testing.T) {
	clock := newFakeClock()
	n1 := simCore("n1", ScopeCluster, coreRefresh, coreTTL, testPeerTimeout, openBallot(clock, coreTTL), clock.Boot)
	n1.opts.Committed = committedTo("n2", 2, true)
	n2 := simCore("n2", ScopeCluster, coreRefresh, coreTTL, testPeerTimeout, openBallot(clock, coreTTL), clock.Boot)

	// n1, the primary, reads its facts and vouches for itself.
	_, effs := n1.Facts(clock.Now(), 0)
	only[startProbe](t, effs)
	n1.ProbeDone(clock.Now(), primaryFacts(site(3)), nil)
	if a := only[voteAnswered](t, n1.Vote(clock.Now(), &voteCall{req: voteFor("n1", 1, 1)})); !a.answer.Granted {
		t.Fatalf("n1's own vote: %+v", a.answer)
	}

	// n2's refresh: its own vote, n1's (probed again: down), n3 silent.
	n2Facts := repmgr.Facts{Nodes: promotedN2(), Server: repmgr.Server{SystemID: testSystemID, Timeline: 2}}
	refresh := func() Verdict {
		t.Helper()
		only[startProbe](t, n2.Tick(clock.Now()))
		poll := only[pollPeers](t, n2.ProbeDone(clock.Now(), n2Facts, nil))
		var effs []effect
		for _, n := range poll.nodes {
			v := PeerVote{Err: errors.New("connection refused")}
			if n.Name == "n1" {
				effs := n1.Vote(clock.Now(), &voteCall{req: poll.req})
				if len(effs) > 0 {
					if _, probe := effs[0].(startProbe); probe {
						effs = n1.ProbeDone(clock.Now(), repmgr.Facts{}, errors.New("connection refused"))
					}
				}
				a := only[voteAnswered](t, effs).answer
				v = PeerVote{Answer: &a}
			}
			effs = n2.PeerAnswered(clock.Now(), poll.round, n.ID, v)
		}
		p := only[published](t, effs)
		return p.snap.Verdict
	}
	clock.Advance(coreTTL) // n1's facts are too old to vote on: probed again
	if v := refresh(); v.State != api.StateUnknown || !strings.Contains(v.Refusals["n1"], "I vouch for n1") {
		t.Fatalf("within n1's own lease: %s %v, want Unknown, n1 bound by its lease", v.State, v.Refusals)
	}
	clock.Advance(LeaseFor(coreTTL))
	if v := refresh(); v.State != api.StatePrimary || !slices.Equal(v.Voters, []string{"n1", "n2"}) {
		t.Fatalf("once n1's lease ran out: %s, voters %v, refusals %v; want Primary on n1 and n2", v.State, v.Voters, v.Refusals)
	}
}

// TestCoreSilentRound: a round that ends at its deadline with peers silent
// leaves a confirmed verdict served to its expiry, as if the round had not
// ended yet; a round that learns anything replaces it at once.
func TestCoreSilentRound(t *testing.T) {
	refused := func(n repmgr.Node) PeerVote {
		v := grantFrom(n)
		v.Answer.Granted, v.Answer.Reason, v.Answer.LeaseMillis = false, "deposed", 0
		return v
	}
	tests := []struct {
		name     string
		after    time.Duration                   // from the first verdict's probe to the second round
		facts    func(repmgr.Facts) repmgr.Facts // of the second round
		answer   func(n repmgr.Node) *PeerVote   // n2's answer (nil: silent); n3 stays silent
		wantKept bool
		want     api.State // the new verdict's, when not kept
	}{
		{name: "both peers silent", after: coreRefresh, wantKept: true},
		{name: "one grants, one silent: a new majority", after: coreRefresh,
			answer: func(n repmgr.Node) *PeerVote { v := grantFrom(n); return &v }, want: api.StatePrimary},
		{name: "one refuses, one silent", after: coreRefresh,
			answer: func(n repmgr.Node) *PeerVote { v := refused(n); return &v }, want: api.StateUnknown},
		{name: "an answer from someone else", after: coreRefresh,
			answer: func(n repmgr.Node) *PeerVote { v := grantFrom(n); v.Answer.Voter = "n9"; return &v }, want: api.StateUnknown},
		{name: "the first verdict expires while the round runs", after: coreTTL - testPeerTimeout/2, want: api.StateUnknown},
		{name: "another timeline", after: coreRefresh, want: api.StateUnknown,
			facts: func(f repmgr.Facts) repmgr.Facts { f.Server.Timeline = 2; return f }},
		{name: "another repmgr.nodes", after: coreRefresh, want: api.StateUnknown,
			facts: func(f repmgr.Facts) repmgr.Facts { f.Nodes = site(5); return f }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			c := newTestCore(clock)
			first := refreshed(t, c, clock, c.Tick)
			clock.Advance(tt.after)
			only[startProbe](t, c.Tick(clock.Now()))
			facts := primaryFacts(site(3))
			if tt.facts != nil {
				facts = tt.facts(facts)
			}
			poll := only[pollPeers](t, c.ProbeDone(clock.Now(), facts, nil))
			if tt.answer != nil {
				c.PeerAnswered(clock.Now(), poll.round, 2, *tt.answer(poll.nodes[0]))
			}
			clock.Advance(testPeerTimeout)
			p := only[published](t, c.PollExpired(clock.Now(), poll.round))
			if !tt.wantKept {
				if p.snap == first.snap || p.snap.Verdict.State != tt.want {
					t.Fatalf("published %s (the first verdict: %v), want a new verdict %s", p.snap.Verdict.State, p.snap == first.snap, tt.want)
				}
				return
			}
			if p.snap != first.snap || p.changed {
				t.Fatalf("published %s (%s), changed %v; want the first verdict kept", p.snap.Verdict.State, p.snap.Verdict.Reason, p.changed)
			}
			if s, _ := c.Serve(clock.Now()); s != first.snap {
				t.Fatalf("Serve after the silent round = %v, want the first verdict", s)
			}
			clock.Advance(first.snap.Facts.ProbedAt.Add(coreTTL).Sub(clock.Now()))
			if s, _ := c.Serve(clock.Now()); s != nil {
				t.Fatalf("Serve at the first verdict's expiry = %s, want none: a silent round must not extend it", s.Verdict.State)
			}
		})
	}
}

// TestCoreSecondSilentRound: a confirmed verdict outlives one silent round,
// not two in a row: a primary really cut off answers 509 after its second
// unanswered round, before its verdict's expiry.
func TestCoreSecondSilentRound(t *testing.T) {
	clock := newFakeClock()
	c := newTestCore(clock)
	first := refreshed(t, c, clock, c.Tick)
	silent := func() published {
		t.Helper()
		clock.Advance(coreRefresh)
		only[startProbe](t, c.Tick(clock.Now()))
		poll := only[pollPeers](t, c.ProbeDone(clock.Now(), primaryFacts(site(3)), nil))
		clock.Advance(testPeerTimeout)
		return only[published](t, c.PollExpired(clock.Now(), poll.round))
	}
	if p := silent(); p.snap != first.snap {
		t.Fatalf("first silent round published %s, want the first verdict kept", p.snap.Verdict.State)
	}
	p := silent()
	if p.snap == first.snap || p.snap.Verdict.State != api.StateUnknown || !p.changed {
		t.Fatalf("second silent round published %s (first verdict: %v), want a change to Unknown", p.snap.Verdict.State, p.snap == first.snap)
	}
	if !clock.Now().Before(first.snap.Facts.ProbedAt.Add(coreTTL)) {
		t.Fatalf("the test's rounds ran past the first verdict's expiry: it proves nothing")
	}
	if s, _ := c.Serve(clock.Now()); s == nil || s.Verdict.State != api.StateUnknown {
		t.Fatalf("Serve after the second silent round: %v, want Unknown", s)
	}
}
