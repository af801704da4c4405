package failover

// State is what a node is doing about failover. Every state is named here,
// logged once per change and shown in /state, /cluster, "pgquorum status"
// and the pgquorum_failover_state metric.
type State string

const (
	StateOff         State = "Off"         // failover.mode off: report only
	StateJoining     State = "Joining"     // no Raft leader, or no committed decision yet
	StateDown        State = "Down"        // its own database is down
	StateFollowing   State = "Following"   // a standby streaming from the committed primary
	StateLeading     State = "Leading"     // the committed primary, confirmed (200)
	StateUnconfirmed State = "Unconfirmed" // the committed primary, running but not confirmed by its majority
	StateSuspect     State = "Suspect"     // the coordinator suspects the primary lost; grace running
	StateElecting    State = "Electing"    // grace over: the coordinator chooses and commits a new primary
	StatePromoting   State = "Promoting"   // this node runs the promote command of the committed decision
	StateRepointing  State = "Repointing"  // this node re-points to the committed primary, then follows it
	StateDeposed     State = "Deposed"     // runs as primary but is not the committed primary
	StateBlocked     State = "Blocked"     // the coordinator may not act: the reason says why
	StatePaused      State = "Paused"      // automatic failover is paused cluster-wide (pgquorum pause)
	StateSwitchover  State = "Switchover"  // a switchover is in progress: the coordinator drives it
	StateDemoting    State = "Demoting"    // this primary steps down and stops for a switchover
	StateRejoining   State = "Rejoining"   // this former primary runs repmgr node rejoin
	StateFenced      State = "Fenced"      // this node fenced its database: it takes no writes
)

// AllStates lists every state, for metrics.
var AllStates = []State{StateOff, StateJoining, StateDown, StateFollowing, StateLeading, StateUnconfirmed,
	StateSuspect, StateElecting, StatePromoting, StateRepointing, StateDeposed, StateBlocked,
	StatePaused, StateSwitchover, StateDemoting, StateRejoining, StateFenced}

// NodeView is what decides a node's state.
type NodeView struct {
	Enabled    bool
	Self       string
	DBUp       bool
	InRecovery bool
	Confirmed  bool   // its /state answers 200
	Upstream   string // the node it streams from
	Primary    string // the committed primary; "" before the first decision
	Acting     string // the action in progress: promote, repoint, follow, demote, rejoin, fence; ""
	// Phase is the coordinator's cluster-wide state, as it last said:
	// Suspect, Electing, Blocked, Paused and Switchover matter to every node.
	Phase, PhaseReason string
	Paused             string // why automatic failover is paused; "" when not
	Demoting           string // the switchover this node steps down for; ""
	Fenced             string // why this node fenced itself; ""
}

// NodeState is the state of a node and why.
func NodeState(v NodeView) (State, string) {
	switch {
	case !v.Enabled:
		return StateOff, "failover.mode is off: pgquorum only reports"
	case v.Acting == actionDemote || v.Demoting != "":
		return StateDemoting, "stepping down for the switchover to " + v.Demoting
	case v.Acting == actionRejoin:
		return StateRejoining, "rejoining " + v.Primary + " as a standby"
	case v.Acting == actionFence || v.Fenced != "":
		return StateFenced, v.Fenced
	case !v.DBUp:
		return StateDown, "its database is down"
	case v.Acting == actionPromote:
		return StatePromoting, "running the promote command"
	case v.Acting != "":
		return StateRepointing, "re-pointing to " + v.Primary
	case v.Primary == "":
		return StateJoining, "no primary committed yet"
	case v.Paused != "":
		return StatePaused, v.Paused
	}
	switch State(v.Phase) {
	case StateSuspect, StateElecting, StateBlocked, StateSwitchover, StatePaused:
		return State(v.Phase), v.PhaseReason
	}
	switch {
	case v.Self == v.Primary && v.InRecovery:
		return StatePromoting, "committed primary, still in recovery"
	case v.Self == v.Primary && v.Confirmed:
		return StateLeading, "committed primary, confirmed by its majority"
	case v.Self == v.Primary:
		return StateUnconfirmed, "committed primary, not confirmed by its majority"
	case !v.InRecovery:
		return StateDeposed, "runs as primary, but " + v.Primary + " is the committed primary"
	case v.Upstream == v.Primary:
		return StateFollowing, "streams from " + v.Primary
	}
	return StateFollowing, "a standby of " + v.Primary + ", not streaming from it at the moment"
}
