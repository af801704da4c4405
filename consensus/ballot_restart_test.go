package consensus

import (
	"testing"
	"time"
)

// TestReviewRestartWithShorterLeaseHonoursTheLongerOne: docs/quorum.md
// ("Restarts") promises that a pgquorum restarted with a shorter cache_ttl
// (another profile) honours the votes its predecessor gave for the longer
// one, and configuration.md calls a rolling change safe. Both cases below
// let the restarted ballot give the vote to Y while X still holds a lease of
// the longer length that the predecessor granted and that X counted (X runs
// the longer cache_ttl, so it counts only leases of at least the longer L).
//
// Timeline on the voter v (default profile L_old = 3.3 s, fast profile
// L_new = 1.1 s, router_hold 600 ms), with g the predecessor's last grant to
// X (recorded at g: with refresh_interval 1 s every renewal is saved):
//
//	renewal: v restarts fast at g+1s (the record is fresh: 1 s < 3.3 s); X's
//	  next poll renews at g+1s: Grant sets Until = g+1s+1.1s, shortening
//	  the g+3.3s lease it loaded (ballot.go Grant: b.cur = next
//	  unconditionally); Y is then granted at g+2.7s, 0.6 s before X's
//	  lease from g ends and 1.2 s before its router hold ends.
//	lengthless: the record was written by a version without lease_ns
//	  (Length 0); v restarts fast at g+1.2s: NewBallot judges it by its own
//	  L_new (recorded = max(1.1s, 0)), finds it stale and grants Y at
//	  g+1.2s+1.1s+0.6s = g+2.9s. The record's horizon told the length:
//	  Until - Saved = 2 x 3.3 s.
//
// X's verdict V1 (facts read before g, served up to cache_ttl 3 s) may
// still be served at g+2.7s/g+2.9s; Y's first 200 needs only v's vote and
// its own, both fast-profile ballots that restarted the same way.
func TestBallotRestartWithShorterLeaseHonoursTheLongerOne(t *testing.T) {
	const (
		oldL = 3300 * time.Millisecond // LeaseFor(3s): default profile
		newL = 1100 * time.Millisecond // LeaseFor(1s): fast profile
		hold = 600 * time.Millisecond  // fast profile's router_hold
	)
	tests := []struct {
		name      string
		length    time.Duration // Length in the record (0: a record of an older version)
		restartAt time.Duration // after g
		renewAt   time.Duration // after g, X's renewal on the restarted ballot; 0: none
	}{
		{name: "a renewal after the restart shortens the longer lease X counted", length: oldL, restartAt: time.Second, renewAt: time.Second},
		{name: "a record without lease_ns from a longer lease is judged by the new length", length: 0, restartAt: 1200 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			g := clock.Mono()
			// What the predecessor (L_old) saved when it granted X at g.
			store := &memLeases{found: true, lease: Lease{Holder: "X", HolderID: 7, Until: g + 2*oldL, Saved: g, Length: tt.length}}
			clock.Advance(tt.restartAt)
			b, err := NewBallot(newL, clock.Mono, store)
			if err != nil {
				t.Fatal(err)
			}
			b.HoldForRouters(hold)
			if tt.renewAt != 0 {
				clock.Advance(g + tt.renewAt - clock.Mono())
				mustGrant(t, b, "X", 7)
			}
			// X's lease from g runs until g+oldL; the hold follows it.
			mustRefuseUntil := g + oldL + hold
			for at := clock.Mono(); at < mustRefuseUntil; at += 100 * time.Millisecond {
				clock.Advance(at - clock.Mono())
				if granted, l, _, _ := b.Grant("Y", 8); granted {
					t.Fatalf("Y granted at g+%s (lease %+v), but X holds the lease the predecessor granted at g for %s until g+%s, plus the router hold %s: refuse until g+%s",
						at-g, l, oldL, oldL, hold, mustRefuseUntil-g)
				}
			}
		})
	}
}
