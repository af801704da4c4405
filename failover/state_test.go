package failover

import (
	"github.com/pgquorum/pgquorum/api"

	"slices"
	"strings"
	"testing"
)

// following is a healthy standby n2 streaming from the committed primary n1,
// with no coordinator phase: the view each case of TestNodeState edits.
func following() NodeView {
	return NodeView{Enabled: true, Self: "n2", DBUp: true, InRecovery: true, Upstream: "n1", Primary: "n1"}
}

// leading is the committed primary n1, confirmed.
func leading() NodeView {
	return NodeView{Enabled: true, Self: "n1", DBUp: true, Confirmed: true, Primary: "n1"}
}

func TestNodeState(t *testing.T) {
	tests := []struct {
		name   string
		view   NodeView
		state  api.FailoverState
		reason string // a part of the reason
	}{
		// Every state, from the plainest view that reaches it.
		{name: "failover.mode off is Off", view: NodeView{Self: "n2", DBUp: true, InRecovery: true, Primary: "n1"},
			state: api.FailoverOff, reason: "failover.mode is off"},
		{name: "a node whose database is down is Down", view: func() NodeView { v := following(); v.DBUp = false; return v }(),
			state: api.FailoverDown, reason: "its database is down"},
		{name: "a node running the promote command is Promoting", view: func() NodeView { v := following(); v.Acting = api.ActionPromote; return v }(),
			state: api.FailoverPromoting, reason: "running the promote command"},
		{name: "a node re-pointing is Repointing to the committed primary", view: func() NodeView { v := following(); v.Acting = api.ActionRepoint; return v }(),
			state: api.FailoverRepointing, reason: "re-pointing to n1"},
		{name: "a node running the follow command is Repointing too", view: func() NodeView { v := following(); v.Acting = api.ActionFollow; return v }(),
			state: api.FailoverRepointing, reason: "re-pointing to n1"},
		{name: "no committed primary yet is Joining", view: func() NodeView { v := following(); v.Primary = ""; return v }(),
			state: api.FailoverJoining, reason: "no primary committed yet"},
		{name: "the coordinator's Suspect is every node's, with its reason", view: func() NodeView {
			v := following()
			v.Phase, v.PhaseReason = api.FailoverSuspect, "n1's pgquorum is silent"
			return v
		}(), state: api.FailoverSuspect, reason: "n1's pgquorum is silent"},
		{name: "the coordinator's Electing is every node's, with its reason", view: func() NodeView {
			v := following()
			v.Phase, v.PhaseReason = api.FailoverElecting, "chose n3"
			return v
		}(), state: api.FailoverElecting, reason: "chose n3"},
		{name: "the coordinator's Blocked is every node's, with its reason", view: func() NodeView {
			v := following()
			v.Phase, v.PhaseReason = api.FailoverBlocked, "repmgrd runs"
			return v
		}(), state: api.FailoverBlocked, reason: "repmgrd runs"},
		{name: "the committed primary still in recovery is Promoting", view: func() NodeView { v := leading(); v.InRecovery = true; v.Confirmed = false; return v }(),
			state: api.FailoverPromoting, reason: "still in recovery"},
		{name: "the committed primary confirmed by its majority is Leading", view: leading(),
			state: api.FailoverLeading, reason: "confirmed by its majority"},
		{name: "the committed primary not confirmed is Unconfirmed", view: func() NodeView { v := leading(); v.Confirmed = false; return v }(),
			state: api.FailoverUnconfirmed, reason: "not confirmed"},
		{name: "a node running as primary that is not the committed one is Deposed", view: func() NodeView { v := following(); v.InRecovery = false; v.Upstream = ""; return v }(),
			state: api.FailoverDeposed, reason: "n1 is the committed primary"},
		{name: "a confirmed primary that is not the committed one is Deposed still", view: func() NodeView {
			v := following()
			v.InRecovery, v.Upstream, v.Confirmed = false, "", true
			return v
		}(), state: api.FailoverDeposed, reason: "runs as primary, but n1"},
		{name: "a standby streaming from the committed primary is Following it", view: following(),
			state: api.FailoverFollowing, reason: "streams from n1"},
		{name: "a standby streaming from another node is Following, not streaming from the primary", view: func() NodeView { v := following(); v.Upstream = "n3"; return v }(),
			state: api.FailoverFollowing, reason: "not streaming from it at the moment"},
		{name: "a standby with no receiver is Following, not streaming", view: func() NodeView { v := following(); v.Upstream = ""; return v }(),
			state: api.FailoverFollowing, reason: "a standby of n1"},

		// Precedence: Off, then Down, then the action, then Joining, then the
		// coordinator's phase, then what the node itself is.
		{name: "Off comes before Down and before any action", view: NodeView{Self: "n2", Acting: api.ActionPromote, Phase: api.FailoverBlocked},
			state: api.FailoverOff},
		{name: "Down comes before the action in progress", view: func() NodeView { v := following(); v.DBUp, v.Acting = false, api.ActionPromote; return v }(),
			state: api.FailoverDown},
		{name: "Down comes before the coordinator's phase", view: func() NodeView { v := following(); v.DBUp, v.Phase = false, api.FailoverSuspect; return v }(),
			state: api.FailoverDown},
		{name: "the action in progress comes before the coordinator's phase", view: func() NodeView {
			v := following()
			v.Acting, v.Phase, v.PhaseReason = api.ActionRepoint, api.FailoverBlocked, "repmgrd runs"
			return v
		}(), state: api.FailoverRepointing},
		{name: "Joining comes before the coordinator's phase", view: func() NodeView {
			v := following()
			v.Primary, v.Phase, v.PhaseReason = "", api.FailoverBlocked, "waiting for exactly one node answering 200"
			return v
		}(), state: api.FailoverJoining, reason: "no primary committed yet"},
		{name: "the coordinator's phase comes before Leading", view: func() NodeView { v := leading(); v.Phase, v.PhaseReason = api.FailoverSuspect, "s"; return v }(),
			state: api.FailoverSuspect},
		{name: "the coordinator's phase comes before Deposed", view: func() NodeView {
			v := following()
			v.InRecovery, v.Phase, v.PhaseReason = false, api.FailoverElecting, "e"
			return v
		}(), state: api.FailoverElecting},
		{name: "the coordinator's phase comes before Promoting in recovery", view: func() NodeView {
			v := leading()
			v.InRecovery, v.Phase, v.PhaseReason = true, api.FailoverBlocked, "b"
			return v
		}(), state: api.FailoverBlocked},
		{name: "a phase the coordinator does not share is ignored: Following", view: func() NodeView { v := following(); v.Phase = api.FailoverLeading; return v }(),
			state: api.FailoverFollowing, reason: "streams from n1"},
		{name: "an empty phase is ignored: Leading", view: func() NodeView { v := leading(); v.Phase, v.PhaseReason = "", "stale"; return v }(),
			state: api.FailoverLeading},
		{name: "a paused cluster is Paused on every node, with why", view: func() NodeView { v := leading(); v.Paused = "paused: upgrade"; return v }(),
			state: api.FailoverPaused, reason: "upgrade"},
		{name: "the coordinator's Switchover is every node's", view: func() NodeView {
			v := following()
			v.Phase, v.PhaseReason = api.FailoverSwitchover, "switchover from n1 to n3"
			return v
		}(), state: api.FailoverSwitchover, reason: "from n1 to n3"},
		{name: "a primary stepping down for a switchover is Demoting, its database down or not", view: func() NodeView {
			v := leading()
			v.DBUp, v.Demoting = false, "n3"
			return v
		}(), state: api.FailoverDemoting, reason: "switchover to n3"},
		{name: "a former primary running repmgr node rejoin is Rejoining", view: func() NodeView {
			v := following()
			v.DBUp, v.Acting, v.Primary = false, api.ActionRejoin, "n3"
			return v
		}(), state: api.FailoverRejoining, reason: "rejoining n3"},
		{name: "a fenced node is Fenced, with why, before Down", view: func() NodeView {
			v := following()
			v.DBUp, v.Fenced = false, "runs as primary, but n3 is the committed primary"
			return v
		}(), state: api.FailoverFenced, reason: "n3 is the committed primary"},
		{name: "Fenced comes before Paused", view: func() NodeView { v := leading(); v.Fenced, v.Paused = "509 for 10s", "paused"; return v }(),
			state: api.FailoverFenced, reason: "509"},
		{name: "a committed primary that is not in recovery is Leading, whatever its upstream", view: func() NodeView { v := leading(); v.Upstream = "n3"; return v }(),
			state: api.FailoverLeading},
	}
	reached := map[api.FailoverState]bool{} // outside the subtests, so that -run picking some does not fail the check below
	for _, tt := range tests {
		state, reason := NodeState(tt.view)
		reached[state] = true
		t.Run(tt.name, func(t *testing.T) {
			if state != tt.state {
				t.Errorf("NodeState(%+v) = %s (%s), want %s", tt.view, state, reason, tt.state)
			}
			if reason == "" || !strings.Contains(reason, tt.reason) {
				t.Errorf("reason %q, want it to say %q", reason, tt.reason)
			}
		})
	}
	for _, s := range api.FailoverStates {
		if !reached[s] {
			t.Errorf("no case reaches %s", s)
		}
	}
}

func TestAllStatesListsEveryStateOnce(t *testing.T) {
	want := []api.FailoverState{api.FailoverOff, api.FailoverJoining, api.FailoverDown, api.FailoverFollowing, api.FailoverLeading, api.FailoverUnconfirmed,
		api.FailoverSuspect, api.FailoverElecting, api.FailoverPromoting, api.FailoverRepointing, api.FailoverDeposed, api.FailoverBlocked,
		api.FailoverPaused, api.FailoverSwitchover, api.FailoverDemoting, api.FailoverRejoining, api.FailoverFenced}
	got := slices.Clone(api.FailoverStates)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("api.FailoverStates = %v, want each of %v once", api.FailoverStates, want)
	}
}
