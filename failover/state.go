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
)

// AllStates lists every state, for metrics.
var AllStates = []State{StateOff, StateJoining, StateDown, StateFollowing, StateLeading, StateUnconfirmed,
	StateSuspect, StateElecting, StatePromoting, StateRepointing, StateDeposed, StateBlocked}

// NodeView is what decides a node's state.
type NodeView struct {
	Enabled    bool
	Self       string
	DBUp       bool
	InRecovery bool
	Confirmed  bool   // its /state answers 200
	Upstream   string // the node it streams from
	Primary    string // the committed primary; "" before the first decision
	Acting     string // the action in progress: promote, repoint or follow; ""
	// Phase is the coordinator's cluster-wide state, as it last said:
	// Suspect, Electing or Blocked matter to every node.
	Phase, PhaseReason string
}

// NodeState is the state of a node and why.
func NodeState(v NodeView) (State, string) {
	switch {
	case !v.Enabled:
		return StateOff, "failover.mode is off: pgquorum only reports"
	case !v.DBUp:
		return StateDown, "its database is down"
	case v.Acting == "promote":
		return StatePromoting, "running the promote command"
	case v.Acting != "":
		return StateRepointing, "re-pointing to " + v.Primary
	case v.Primary == "":
		return StateJoining, "no primary committed yet"
	}
	switch State(v.Phase) {
	case StateSuspect, StateElecting, StateBlocked:
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
