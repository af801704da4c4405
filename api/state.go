package api

import "time"

// AgentMode is an operator's administrative override of a node, which its
// HAProxy agent check reports (haproxy.Agent).
type AgentMode string

const (
	AgentReady AgentMode = "ready" // take connections as the verdict allows
	AgentDrain AgentMode = "drain" // no new connections; existing ones go on
	AgentMaint AgentMode = "maint" // no connections at all
)

// AgentBody is the answer of PathAgent: the override and the reply each
// listener's agent-check gets now.
type AgentBody struct {
	Mode    AgentMode         `json:"mode"`
	Weight  int               `json:"weight"`
	Replies map[string]string `json:"replies"`
}

// Scope is consensus.scope: how far the majority behind a primary must
// reach.
type Scope string

const (
	// ScopeCluster needs a majority of the node's own location and a
	// majority of every registered node, all locations together.
	ScopeCluster Scope = "cluster"
	// ScopeSite needs a majority of the node's own location only.
	ScopeSite Scope = "site"
)

// Scopes lists every scope, in the order the docs give them.
var Scopes = []Scope{ScopeCluster, ScopeSite}

// State is the verdict of a node about itself. The HTTP status of /state is
// derived from it; the codes are states, not errors.
type State string

const (
	StateDown    State = "Down"    // local DB unreachable: 503
	StateStandby State = "Standby" // in recovery: 202
	StatePrimary State = "Primary" // primary with a majority of its site: 200
	StateUnknown State = "Unknown" // primary without that majority: 509
)

// StatusUnknown is the non-standard code pg_primgr used for "primary without
// a majority"; HAProxy counts any code it does not expect as a failed check.
const StatusUnknown = 509

// HTTPStatus maps a state to the status code of /state.
func (s State) HTTPStatus() int {
	switch s {
	case StatePrimary:
		return 200
	case StateStandby:
		return 202
	case StateUnknown:
		return StatusUnknown
	default:
		return 503
	}
}

// StateBody is the JSON answer of /state.
type StateBody struct {
	State    State  `json:"State"`
	Node     string `json:"node"`
	Location string `json:"location"`
	// Votes and Needed are counted in the node's own location; with scope
	// "cluster" the cluster-wide count must also reach its majority.
	Votes         int       `json:"votes"`
	Needed        int       `json:"needed"`
	Scope         Scope     `json:"scope,omitempty"`
	ClusterVotes  int       `json:"cluster_votes"`
	ClusterNeeded int       `json:"cluster_needed"`
	CheckedAt     time.Time `json:"checked_at"`
	Voters        []string  `json:"voters,omitempty"`
	Reason        string    `json:"reason,omitempty"`
	// Refusals says, for a node running as primary, why each registered node
	// that cast no valid vote for it did not.
	Refusals map[string]string `json:"refusals,omitempty"`
	Timeline int               `json:"timeline,omitempty"`
	Failover *FailoverStatus   `json:"failover,omitempty"`
	// Replication, where known: a standby's receiver state and lag behind
	// the WAL end its upstream last reported.
	Streaming  *bool    `json:"streaming,omitempty"`
	LagBytes   *int64   `json:"lag_bytes,omitempty"`
	LagSeconds *float64 `json:"lag_seconds,omitempty"`
}

// PrimaryBody is the JSON answer of /primary when the local DB is up. Primary
// is null (503) when the node's metadata records no single active primary.
type PrimaryBody struct {
	Primary *string `json:"Primary"`
	Reason  string  `json:"reason,omitempty"`
}

// DownBody is the answer of /primary and the other checks when the local DB is
// unreachable.
type DownBody struct {
	State  State  `json:"State"`
	Reason string `json:"reason,omitempty"`
}

// RealPrimaryBody is the JSON answer of /realPrimary.
type RealPrimaryBody struct {
	RealPrimary *string  `json:"realPrimary"`
	Claimants   []string `json:"claimants,omitempty"`
	Unreachable []string `json:"unreachable,omitempty"`
}

// ClusterBody is the JSON answer of /cluster: every registered node, as this
// node's repmgr metadata lists them, with its own answer to /state.
type ClusterBody struct {
	Node        string   `json:"node"` // the node that answered
	RealPrimary *string  `json:"realPrimary"`
	Claimants   []string `json:"claimants,omitempty"`
	// SplitBrain is true while several nodes answer 200 on /state, confirmed
	// by a second survey of the claimants.
	SplitBrain bool          `json:"split_brain"`
	CheckedAt  time.Time     `json:"checked_at"`
	Nodes      []ClusterNode `json:"nodes"`
	// Failover is the answering node's failover status, and Decisions,
	// Fences and Switchovers the latest committed ones, newest first.
	Failover    *FailoverStatus `json:"failover,omitempty"`
	Decisions   []Decision      `json:"decisions,omitempty"`
	Fences      []Fence         `json:"fences,omitempty"`
	Switchovers []Switchover    `json:"switchovers,omitempty"`
}

// ClusterNode is one node of /cluster. Status is the HTTP status of its
// /state (0 when unreachable); the replication fields are as it reports them.
type ClusterNode struct {
	ID            int           `json:"id"`
	Name          string        `json:"name"`
	Location      string        `json:"location"`
	Type          string        `json:"type"`
	Priority      int           `json:"priority"`
	Active        bool          `json:"active"`
	Upstream      string        `json:"upstream,omitempty"`
	Reachable     bool          `json:"reachable"`
	Status        int           `json:"status"`
	State         State         `json:"state,omitempty"`
	Votes         int           `json:"votes"`
	Needed        int           `json:"needed"`
	ClusterVotes  int           `json:"cluster_votes"`
	ClusterNeeded int           `json:"cluster_needed"`
	Timeline      int           `json:"timeline,omitempty"`
	Failover      FailoverState `json:"failover,omitempty"`
	Streaming     *bool         `json:"streaming,omitempty"`
	LagBytes      *int64        `json:"lag_bytes,omitempty"`
	LagSeconds    *float64      `json:"lag_seconds,omitempty"`
	// Reason is why the node answers as it does (its /state reason): why
	// Unknown or Down, above all.
	Reason string `json:"reason,omitempty"`
	Error  string `json:"error,omitempty"`
}
