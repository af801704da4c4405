package client

import (
	"bufio"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/internal/hostilepeer"
)

// TestPeersHostile: whatever bytes a peer sends, the client returns within
// the caller's deadline (the bound asserted is 10× it, a correctness bound
// on a shared machine), and a vote comes only from a well-formed exchange.
func TestPeersHostile(t *testing.T) {
	peers := New(Options{})
	t.Run("control: well-formed answer is a vote", func(t *testing.T) {
		a, _, err := askVote(peers, hostilepeer.Serve(t, hostilepeer.WellFormed(voteBody)))
		if err != nil || a == nil || !a.Granted {
			t.Fatalf("Vote = %+v, %v; want the granted vote", a, err)
		}
	})
	for _, tt := range hostilepeer.Cases(voteBody) {
		t.Run(tt.Name, func(t *testing.T) {
			addr := hostilepeer.Serve(t, tt.Behave)
			a, took, err := askVote(peers, addr)
			if took >= 10*testPeerTimeout {
				t.Errorf("Vote took %s, want well under %s", took, 10*testPeerTimeout)
			}
			if a != nil || err == nil || !strings.Contains(err.Error(), tt.VoteErr) {
				t.Errorf("Vote = %+v, %v; want no answer and an error containing %q", a, err, tt.VoteErr)
			}

			status, body, err := askState(t, peers, addr)
			if tt.StateErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.StateErr) {
					t.Errorf("State = %d, %v; want an error containing %q", status, err, tt.StateErr)
				}
				return
			}
			// An oversized /state body still gives its status (a claim
			// to be primary, for the split-brain watch) but no body.
			if status != http.StatusOK || body != nil || err != nil {
				t.Errorf("State = %d, %+v, %v; want 200 with no body and no error", status, body, err)
			}
		})
	}
}

// TestPeersWithoutDeadline: a caller whose ctx has no deadline is still
// bounded by MaxExchange, and never waits past it for a dripping peer.
// The drip here lasts longer than the backstop.
func TestPeersWithoutDeadline(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the 10 s backstop")
	}
	slow := func(w *bufio.Writer, stop <-chan struct{}) {
		w.WriteString(hostilepeer.OKHeader)
		for range 4 * int(MaxExchange/time.Second) {
			if w.WriteString("X: y\r\n"); w.Flush() != nil {
				return
			}
			select {
			case <-stop:
				return
			case <-time.After(250 * time.Millisecond):
			}
		}
	}
	start := time.Now()
	a, err := New(Options{}).Vote(context.Background(), hostilepeer.Serve(t, slow), testRequest)
	took := time.Since(start)
	if a != nil || err == nil || took > MaxExchange+5*time.Second {
		t.Errorf("Vote without a deadline = %+v, %v after %s; want an error after about %s", a, err, took, MaxExchange)
	}
}
