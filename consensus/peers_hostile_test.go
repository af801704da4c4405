package consensus

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/client"
	"github.com/pgquorum/pgquorum/internal/hostilepeer"
)

// peerVote is a granted vote of n2 for n1 that Decide counts in site(3): a
// hostile peer wraps it in a broken exchange, which must make it count for
// nothing.
var peerVote = fmt.Sprintf(`{"protocol":1,"voter":"n2","voter_id":2,"voter_type":"standby","system_identifier":%q,"timeline":1,"candidate":"n1","granted":true,"reason":"ok","lease_ms":%d}`,
	testSystemID, LeaseFor(testTTL).Milliseconds())

// TestCheckerWithHostilePeer: n1 runs as primary in a site of three; n3 is
// down, so n1 is Primary only if n2's answer counts. A hostile n2 wrapping a
// valid vote in a broken exchange leaves n1 Unknown, within its refresh
// bound; the control, the same vote well sent, makes it Primary.
func TestCheckerWithHostilePeer(t *testing.T) {
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := closed.Addr().String()
	closed.Close()
	cases := append([]hostilepeer.Case{{Name: "control: well-formed vote", Behave: hostilepeer.WellFormed(peerVote)}}, hostilepeer.Cases(peerVote)...)
	for _, tt := range cases {
		t.Run(tt.Name, func(t *testing.T) {
			nodes := site(3)
			clock := newFakeClock()
			checker := NewChecker(Options{
				Identity: Identity{Name: "n1"}, RefreshInterval: time.Hour, CacheTTL: testTTL, PeerTimeout: testPeerTimeout,
				Addresses: Addresses{Port: 5999, Overrides: map[string]string{"n2": hostilepeer.Serve(t, tt.Behave), "n3": down}},
				Now:       clock.Now, Ballot: openBallot(clock, testTTL),
			}, &fakeProber{facts: primaryFacts(nodes)}, client.New(client.Options{}))
			start := time.Now()
			s := checker.Snapshot(context.Background())
			if took := time.Since(start); took >= 10*testPeerTimeout {
				t.Errorf("refresh took %s, want well under %s", took, 10*testPeerTimeout)
			}
			want, votes := api.StateUnknown, 1
			if tt.VoteErr == "" {
				want, votes = api.StatePrimary, 2
			}
			if s.Verdict.State != want || s.Verdict.Votes != votes {
				got, _ := json.Marshal(s.Votes[2].Answer)
				t.Errorf("verdict %s with %d votes (n2: %s, %v); want %s with %d", s.Verdict.State, s.Verdict.Votes, got, s.Votes[2].Err, want, votes)
			}
		})
	}
}
