package consensus

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestVoteProbesOnceWhenItsOwnProbeIsSlow: Vote's doc says it "never blocks
// longer than one probe of the local database". A refusal on facts that this
// very call probed must not probe again because the probe itself took 100 ms.
func TestVoteProbesOnceWhenItsOwnProbeIsSlow(t *testing.T) {
	v := newVoter("n3", n3Streaming(site(3), 1, "n1"), nil)
	v.prober.during = func() { v.clock.Advance(150 * time.Millisecond) } // a slow database
	a := v.vote(voteFor("n2", 2, 2))
	if n := v.prober.Calls(); n != 1 || a.Granted {
		t.Fatalf("%d probes for one vote refused on the facts it just probed (%q), want 1", n, a.Reason)
	}
}

// TestVoteBallotRefusalDoesNotProbe: a refusal by the ballot (the quiet
// lease after a start, or a lease that cannot be recorded) rests on no fact,
// and a new probe cannot change it.
func TestVoteBallotRefusalDoesNotProbe(t *testing.T) {
	tests := []struct {
		name   string
		ballot func(c *fakeClock) *Ballot
	}{
		{name: "quiet lease after a start", ballot: func(c *fakeClock) *Ballot { b, _ := NewBallot(testVoteLease, c.Mono, nil); return b }},
		{name: "lease that cannot be recorded", ballot: func(c *fakeClock) *Ballot {
			b, _ := NewBallot(testVoteLease, c.Mono, &memLeases{found: true, err: errors.New("disk full")})
			return b
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newVoter("n3", n3Streaming(site(3), 1, "n1"), nil)
			v.checker.opts.Ballot = tt.ballot(v.clock)
			v.checker.Facts(context.Background())
			v.clock.Advance(voteRefreshAge)
			before := v.prober.Calls()
			a := v.vote(voteFor("n1", 1, 1))
			if n := v.prober.Calls() - before; n != 0 || a.Granted {
				t.Fatalf("%d probes for a vote the ballot refused (%q), want 0", n, a.Reason)
			}
		})
	}
}
