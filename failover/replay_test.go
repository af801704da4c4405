package failover

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/repmgr"
)

// TestRestartReplaysAnOldSwitchover: the chaos harness's stuck primary
// (seed 1 event 25). A restarted old primary of a switchover acts on the
// start of that switchover, which its log replays before the entries that
// ended it: it steps down, and its demote is cancelled by the next
// decision before it stops the database. However the log goes on, the
// step-down must not outlive the switchover: the node ends neither
// stepping down for it nor Demoting.
func TestRestartReplaysAnOldSwitchover(t *testing.T) {
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	decide := func(epoch uint64, n repmgr.Node, old string) Entry {
		return decisionEntry(api.Decision{Epoch: epoch, Primary: n.Name, PrimaryID: n.ID, OldPrimary: old, At: at(int(epoch)), Reason: "test"})
	}
	promoted := func(epoch uint64) Entry { return promotedEntry(Promoted{Epoch: epoch, At: at(int(epoch))}) }
	sw := api.Switchover{ID: 1, From: "p", To: "s2", Phase: api.PhaseDemoting, Start: t0}
	done := switchoverStepEntry(sw, api.PhaseDone, "p is a standby of s2", "", at(3))
	tests := []struct {
		name string
		rest []Entry // the log after the switchover's start
		// fenced: p runs as primary while another node is committed: the
		// fencer's step-down replaces the switchover's.
		fenced bool
	}{
		{name: "the switchover went through, and p was adopted again later",
			rest: []Entry{decide(2, actS2, "p"), promoted(2), done, decide(3, actP, "s2"), promoted(3)}},
		{name: "a failover to s3 superseded it, and p was adopted again later",
			rest: []Entry{decide(2, actS3, "p"), promoted(2), decide(3, actP, "s3"), promoted(3)}},
		{name: "a decision naming p again superseded it",
			rest: []Entry{decide(2, actP, ""), promoted(2)}},
		{name: "the switchover went through, and s2 is still the primary",
			rest: []Entry{decide(2, actS2, "p"), promoted(2), done}, fenced: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			local := localAs("-")
			actions := &fakeActions{inRecovery: map[string]bool{"s2": false, "s3": true, "p": false}}
			st := promotedState()
			st.Switchovers = []api.Switchover{sw}
			c := newShells(t, shellOpts("p"), local, actions, &fakeReporters{}, st)
			// The replay goes on while the demote runs: the demote is
			// cancelled by the next decision, before its stop.
			replayed := false
			actions.run = func(ctx context.Context, what string) error {
				if what == "checkpoint" && !replayed {
					replayed = true
					for _, e := range tt.rest {
						commitDirectly(t, c, e)
					}
					<-ctx.Done()
				}
				return context.Cause(ctx)
			}
			for range 3 {
				c.act.step(context.Background())
			}
			if !replayed {
				t.Fatalf("the actor never acted on the replayed switchover: calls %q", actions.called())
			}
			if c.act.demotedFor != 0 {
				t.Errorf("the actor still stepped down for switchover %d", c.act.demotedFor-1)
			}
			why := local.SteppingDown()
			switch {
			case tt.fenced && !strings.HasPrefix(why, "fenced: "):
				t.Errorf("stepping down %q, want the fencer's", why)
			case !tt.fenced && why != "":
				t.Errorf("still stepping down: %q (every step-down: %q)", why, local.steps)
			}
			if state, reason := c.rep.nodeState(context.Background(), c.fsm.State()); state == api.FailoverDemoting {
				t.Errorf("node state %s: %s", state, reason)
			}
			for _, call := range actions.called() {
				if call == "start" || strings.HasPrefix(call, "rejoin") {
					t.Errorf("called %q: its database never stopped", call)
				}
			}
		})
	}
}

func TestDemotionCancelled(t *testing.T) {
	primary := actorFacts{Facts: repmgr.Facts{}}
	standby := actorFacts{Facts: repmgr.Facts{InRecovery: true}}
	down := actorFacts{ProbeErr: context.DeadlineExceeded}
	stopped := map[actKey]*attempt{{1, api.ActionDemote}: {n: 1, ok: true}}
	cancelled := map[actKey]*attempt{{1, api.ActionDemote}: {n: 1}}
	tests := []struct {
		name  string
		phase api.SwitchoverPhase // "": no longer recorded
		f     actorFacts
		mem   actorMemory
		want  bool
	}{
		{"not stepped down for a switchover", api.PhaseDone, primary, actorMemory{}, false},
		{"the switchover still demotes", api.PhaseDemoting, primary, actorMemory{DemotedFor: 2, Attempts: cancelled}, false},
		{"superseded before the stop", api.PhaseAborted, primary, actorMemory{DemotedFor: 2, Attempts: cancelled}, true},
		{"went through without this node's stop", api.PhaseDone, primary, actorMemory{DemotedFor: 2, Attempts: cancelled}, true},
		{"promoting, without this node's stop", api.PhasePromoting, primary, actorMemory{DemotedFor: 2, Attempts: cancelled}, true},
		{"no longer recorded", "", primary, actorMemory{DemotedFor: 2, Attempts: cancelled}, true},
		// A probe of the stopped database may lag: the stop succeeded, and
		// the old primary is to rejoin its successor.
		{"the stop succeeded", api.PhasePromoting, primary, actorMemory{DemotedFor: 2, Attempts: stopped}, false},
		{"the database is down: a rejoin's", api.PhaseDone, down, actorMemory{DemotedFor: 2, Attempts: cancelled}, false},
		{"a standby again: the fencer's", api.PhaseDone, standby, actorMemory{DemotedFor: 2, Attempts: cancelled}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := promotedState()
			if tt.phase != "" {
				st.Switchovers = []api.Switchover{{ID: 1, From: "p", To: "s2", Phase: tt.phase}}
			}
			if got := demotionCancelled(st, tt.f, tt.mem); got != tt.want {
				t.Errorf("demotionCancelled = %v, want %v", got, tt.want)
			}
		})
	}
}
