package server

import (
	"fmt"
	"testing"

	"github.com/pgquorum/pgquorum/failover"
)

// TestBlockedKindOfTheControllersError: the no-candidate reason is built
// from failover.ErrNoCandidate; a change of its words must change
// blockedKind too. (The other reasons are literal strings in
// failover/round.go; a typed kind in api.FailoverStatus would end this
// coupling.)
func TestBlockedKindOfTheControllersError(t *testing.T) {
	reason := "node1 lost; but " + fmt.Errorf("%w in place of node1: node2 lags", failover.ErrNoCandidate).Error()
	if got := blockedKind(reason); got != BlockedNoCandidate {
		t.Errorf("blockedKind(%q) = %s, want %s", reason, got, BlockedNoCandidate)
	}
}
