package consensus

import (
	"testing"
	"time"
)

// TestDepositionIsReadUnderTheBallotsLock: the coordinator's
// /internal/v1/deposition reads whether a voter applied the deposition, then
// Ballot.Binds, on another goroutine than the vote. Sequence (found by
// review): n1 stalls longer than a lease plus the router hold, so voter n3
// is no longer bound to it; the coordinator deposes n1. n1 resumes and asks
// n3 for a vote; n3 reads "not deposed"; Raft applies the deposition; the
// coordinator reads "applied" and Binds. Were the check and the grant two
// steps, Binds could read 0 there, n3 be counted released, and then grant
// n1 a fresh lease. Read under the ballot's lock, Binds waits for the grant
// and sees its lease.
func TestDepositionIsReadUnderTheBallotsLock(t *testing.T) {
	v := newVoter("n3", n3Streaming(site(3), 1, "n1"), nil)
	if a := v.vote(voteFor("n1", 1, 1)); !a.Granted {
		t.Fatalf("vote before the stall %+v, want granted", a)
	}
	hold := LeaseFor(testTTL) / 2
	v.checker.opts.Ballot.HoldForRouters(hold)
	v.clock.Advance(LeaseFor(testTTL) + hold) // n1 stalled: its lease and the hold have run out
	applied := false
	reported := make(chan time.Duration, 1)
	v.checker.opts.Deposed = func(candidate string, id int) (string, bool, bool) {
		if applied {
			return "the Raft log deposes n1", candidate == "n1" && id == 1, true
		}
		// This call read the FSM before the deposition was applied; right
		// after it, Raft applies the entry and the coordinator reads Binds.
		applied = true
		if v.checker.opts.Ballot.mu.TryLock() {
			v.checker.opts.Ballot.mu.Unlock()
			t.Error("the deposition was read outside the ballot's lock: a Binds between the read and the grant sees no lease")
		}
		go func() { reported <- v.checker.Binds("n1", 1) }()
		return "", false, true
	}
	a := v.vote(voteFor("n1", 1, 1))
	bound := <-reported
	if a.Granted && bound == 0 {
		t.Fatalf("n3 answered the coordinator \"applied, bound 0\" and granted the deposed n1 a lease of %d ms", a.LeaseMillis)
	}
	if a.Granted && bound < time.Duration(a.LeaseMillis)*time.Millisecond {
		t.Errorf("the coordinator read n3 bound to n1 for %s, less than the %d ms lease it granted", bound, a.LeaseMillis)
	}
}
