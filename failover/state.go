package failover

import (
	"strings"

	"github.com/pgquorum/pgquorum/api"
)

// NodeView is what decides a node's state.
type NodeView struct {
	Enabled    bool
	Self       string
	DBUp       bool
	InRecovery bool
	Confirmed  bool           // its /state answers 200
	Upstream   string         // the node it streams from
	Primary    string         // the committed primary; "" before the first decision
	Acting     api.ActionKind // the action in progress; ""
	// Phase is the coordinator's cluster-wide state, as it last said:
	// Suspect, Electing, Blocked, Paused and Switchover matter to every node.
	Phase       api.FailoverState
	PhaseReason string
	Paused      string // why automatic failover is paused; "" when not
	Demoting    string // the switchover this node steps down for; ""
	Fenced      string // why this node fenced itself; ""
	// Rejoin is the rejoin under way, in words (rejoinText); "": none.
	Rejoin string
}

// NodeState is the state of a node and why.
func NodeState(v NodeView) (api.FailoverState, string) {
	switch {
	case !v.Enabled:
		return api.FailoverOff, "failover.mode is off: pgquorum only reports"
	case v.Acting == api.ActionDemote || v.Demoting != "":
		return api.FailoverDemoting, "stepping down for the switchover to " + v.Demoting
	case v.Acting == api.ActionRejoin || v.Rejoin != "":
		return api.FailoverRejoining, strings.TrimSuffix("rejoining "+v.Primary+" as a standby: "+v.Rejoin, ": ")
	case v.Acting == api.ActionFence || v.Fenced != "":
		return api.FailoverFenced, v.Fenced
	case !v.DBUp:
		return api.FailoverDown, "its database is down"
	case v.Acting == api.ActionPromote:
		return api.FailoverPromoting, "running the promote command"
	case v.Acting != "":
		return api.FailoverRepointing, "re-pointing to " + v.Primary
	case v.Primary == "":
		return api.FailoverJoining, "no primary committed yet"
	case v.Paused != "":
		return api.FailoverPaused, v.Paused
	}
	switch api.FailoverState(v.Phase) {
	case api.FailoverSuspect, api.FailoverElecting, api.FailoverBlocked, api.FailoverSwitchover, api.FailoverPaused:
		return api.FailoverState(v.Phase), v.PhaseReason
	}
	switch {
	case v.Self == v.Primary && v.InRecovery:
		return api.FailoverPromoting, "committed primary, still in recovery"
	case v.Self == v.Primary && v.Confirmed:
		// Leading is the committed primary confirmed by its majority; the
		// Raft leader is the coordinator, a role apart.
		return api.FailoverLeading, "committed primary, confirmed by its majority"
	case v.Self == v.Primary:
		return api.FailoverUnconfirmed, "committed primary, not confirmed by its majority"
	case !v.InRecovery:
		return api.FailoverDeposed, "runs as primary, but " + v.Primary + " is the committed primary"
	case v.Upstream == v.Primary:
		return api.FailoverFollowing, "streams from " + v.Primary
	}
	return api.FailoverFollowing, "a standby of " + v.Primary + ", not streaming from it at the moment"
}
