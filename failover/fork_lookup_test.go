package failover

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/repmgr"
)

// TestForkLookupOfADeadPrimaryEndsWithANewerDecision: s2, not yet
// recorded under p, looks p's timelines up before it follows (p's host
// just died, and keeps the connection open); meanwhile s2 is chosen. The lookup
// is ended by the newer decision, not by failover.command_timeout, and the
// next step promotes s2.
func TestForkLookupOfADeadPrimaryEndsWithANewerDecision(t *testing.T) {
	actions := &fakeActions{inRecovery: map[string]bool{"p": false}} // p answers as a primary
	local := localAs("")
	s2 := actS2
	s2.UpstreamID = nil
	local.nodes = []repmgr.Node{actP, s2, actS3}
	local.facts.Facts.Nodes = local.nodes
	c := newShells(t, shellOpts("s2"), local, actions, &fakeReporters{}, promotedState())
	var cause error
	actions.lookup = func(ctx context.Context, node string) error {
		if node == "p" && cause == nil {
			commitDirectly(t, c, decisionEntry(api.Decision{Epoch: 2, Primary: "s2", PrimaryID: 2, OldPrimary: "p", At: t0}))
			<-ctx.Done()
			cause = context.Cause(ctx)
			return cause
		}
		return nil
	}
	c.act.step(context.Background())
	if cause == nil || !strings.Contains(cause.Error(), "superseded by epoch 2") {
		t.Fatalf("the lookup of p ended with %v, want it ended by the newer decision", cause)
	}
	if got := actions.called(); !reflect.DeepEqual(got, []string{"probe p"}) {
		t.Fatalf("the step whose lookup a newer decision ended ran %q, want only the probe of p", got)
	}
	c.act.step(context.Background())
	if got := actions.called(); !reflect.DeepEqual(got, []string{"probe p", "promote 2"}) {
		t.Errorf("the next step ran %q, want the promotion", got)
	}
}
