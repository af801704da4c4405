// Package api holds the HTTP contract of pgquorum in one place: route paths,
// the default port and the JSON bodies. The server encodes these types, and
// the peer client, the CLI and the tests decode them, so a change to the
// contract is a change to this file.
package api

import "time"

// DefaultPort is where pgquorum listens and where peers are polled unless
// configured otherwise.
const DefaultPort = 5999

// Check endpoints. Each answers GET, HEAD and OPTIONS with the same status.
const (
	PathRoot        = "/" // alias of PathState: HAProxy's bare "option httpchk" sends OPTIONS /
	PathState       = "/state"
	PathPrimary     = "/primary"
	PathRealPrimary = "/realPrimary"
)

// Operator views and Patroni-compatible checks.
const (
	PathCluster   = "/cluster"
	PathEvents    = "/events"
	PathMetrics   = "/metrics"
	PathLeader    = "/leader"
	PathReplica   = "/replica"
	PathReadOnly  = "/read-only"
	PathHealth    = "/health"
	PathLiveness  = "/liveness"
	PathReadiness = "/readiness"
)

// PathVote is the peers' internal endpoint, not meant for operators: a node
// that runs as primary asks every other registered node to vouch for it, by
// POSTing a VoteRequest. The answer is a VoteAnswer with status 200, whether
// the vote is granted or refused; 400 for a request that does not decode.
// See docs/quorum.md for the rules and the lease.
const PathVote = "/internal/v1/vote"

// VoteProtocol is the version of VoteRequest and VoteAnswer. A node counts
// only answers of its own version.
const VoteProtocol = 1

// MaxVoteBody bounds a VoteRequest and a VoteAnswer on the wire.
const MaxVoteBody = 4 << 10

// VoteRequest asks a peer to vouch for the candidate: the node that sends it.
type VoteRequest struct {
	Protocol    int    `json:"protocol"`
	Candidate   string `json:"candidate"`    // repmgr node_name
	CandidateID int    `json:"candidate_id"` // repmgr node_id
	SystemID    string `json:"system_identifier"`
	Timeline    int    `json:"timeline"` // the candidate's current timeline
}

// VoteAnswer is a peer's answer, naming who answered: a vote counts only
// when the voter answered as the very node that was asked, a registered node
// other than the candidate, of the candidate's system identifier (a repmgr
// witness, which has its own, is known by its registration instead).
type VoteAnswer struct {
	Protocol  int    `json:"protocol"`
	Voter     string `json:"voter"`      // the voter's repmgr node_name
	VoterID   int    `json:"voter_id"`   // its repmgr node_id
	VoterType string `json:"voter_type"` // its repmgr type: primary, standby or witness
	SystemID  string `json:"system_identifier"`
	Timeline  int    `json:"timeline"`  // the voter's timeline (its own, for a witness)
	Candidate string `json:"candidate"` // whom this answer is about
	Granted   bool   `json:"granted"`
	Reason    string `json:"reason"`
	// LeaseMillis: when granted, how long the voter vouches for nobody else;
	// when refused because of an earlier vote, how long until it may change.
	LeaseMillis int64  `json:"lease_ms,omitempty"`
	LeaseHolder string `json:"lease_holder,omitempty"` // who holds the voter's lease
}

// PathAgent is the operator's HAProxy agent override: GET shows it, PUT or
// POST PathAgent+"/{mode}" (ready, drain, maint) sets it. Loopback only.
const PathAgent = "/agent"

// AgentBody is the answer of PathAgent: the override and the reply each
// listener's agent-check gets now.
type AgentBody struct {
	Mode    string            `json:"mode"`
	Weight  int               `json:"weight"`
	Replies map[string]string `json:"replies"`
}

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
	Scope         string    `json:"scope,omitempty"` // "cluster" or "site"
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
	ID            int      `json:"id"`
	Name          string   `json:"name"`
	Location      string   `json:"location"`
	Type          string   `json:"type"`
	Priority      int      `json:"priority"`
	Active        bool     `json:"active"`
	Upstream      string   `json:"upstream,omitempty"`
	Reachable     bool     `json:"reachable"`
	Status        int      `json:"status"`
	State         State    `json:"state,omitempty"`
	Votes         int      `json:"votes"`
	Needed        int      `json:"needed"`
	ClusterVotes  int      `json:"cluster_votes"`
	ClusterNeeded int      `json:"cluster_needed"`
	Timeline      int      `json:"timeline,omitempty"`
	Failover      string   `json:"failover,omitempty"` // its failover state
	Streaming     *bool    `json:"streaming,omitempty"`
	LagBytes      *int64   `json:"lag_bytes,omitempty"`
	LagSeconds    *float64 `json:"lag_seconds,omitempty"`
	Error         string   `json:"error,omitempty"`
}

// PathReport is the peers' internal endpoint through which the failover
// coordinator (the Raft leader) gathers every node's facts: POST a
// ReportRequest, get a Report.
const PathReport = "/internal/v1/report"

// PathHistory lists the failover decisions committed through Raft, newest
// first (HistoryBody).
const PathHistory = "/history"

// ReportRequest is the coordinator's poll. It tells each node what the
// coordinator sees (for /state), and may ask it to probe a node's database
// directly: how the loss of a primary whose pgquorum is silent is confirmed.
type ReportRequest struct {
	Protocol    int    `json:"protocol"`
	Coordinator string `json:"coordinator"`
	Phase       string `json:"phase"` // the coordinator's failover state
	PhaseReason string `json:"phase_reason,omitempty"`
	ProbeNode   string `json:"probe_node,omitempty"` // probe this node's database directly
}

// Report is one node's facts, as the coordinator needs them to detect the
// loss of the primary and to rank the candidates.
type Report struct {
	Protocol       int             `json:"protocol"`
	Node           string          `json:"node"`
	NodeID         int             `json:"node_id"`
	Location       string          `json:"location"`
	Priority       int             `json:"priority"`
	Type           string          `json:"type"`  // repmgr type of its own row
	State          State           `json:"state"` // its /state verdict
	DBUp           bool            `json:"db_up"`
	DBError        string          `json:"db_error,omitempty"`
	DownForMS      int64           `json:"down_for_ms,omitempty"` // how long its database has been failing, by its own clock
	InRecovery     bool            `json:"in_recovery"`
	Timeline       int             `json:"timeline"`
	ReceivedLSN    int64           `json:"received_lsn"` // a standby's last received WAL; a primary's current WAL
	ReplayedLSN    int64           `json:"replayed_lsn"`
	Receiver       string          `json:"receiver,omitempty"`      // its WAL receiver's status
	Upstream       string          `json:"upstream,omitempty"`      // the registered node it streams from
	Named          string          `json:"named_primary,omitempty"` // the active primary its own repmgr.nodes names
	RepmgrdRunning bool            `json:"repmgrd_running"`
	RepmgrdPaused  bool            `json:"repmgrd_paused"`
	Probe          *Probe          `json:"probe,omitempty"`  // the direct probe asked for
	Action         *Action         `json:"action,omitempty"` // what it is doing for the committed decision
	Failover       *FailoverStatus `json:"failover,omitempty"`
}

// Probe is the outcome of a direct probe of another node's database.
type Probe struct {
	Node  string `json:"node"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// Action is a node's progress on the committed decision of Epoch.
type Action struct {
	Epoch  uint64 `json:"epoch"`
	Kind   string `json:"kind"` // promote, repoint, follow; demote, restart, rejoin (switchover); fence
	Done   bool   `json:"done"`
	Failed bool   `json:"failed"`
	Error  string `json:"error,omitempty"`
	// LSN is, for a demote, the shutdown checkpoint the successor must
	// have received.
	LSN int64 `json:"lsn,omitempty"`
}

// FailoverStatus is the failover object of /state and of every node of
// /cluster.
type FailoverStatus struct {
	Mode        string `json:"mode"`
	State       string `json:"state"`
	Epoch       uint64 `json:"epoch"`
	Primary     string `json:"primary,omitempty"`     // the committed primary of Epoch
	Coordinator string `json:"coordinator,omitempty"` // the Raft leader
	Reason      string `json:"reason,omitempty"`
	Paused      bool   `json:"paused,omitempty"`
	PauseReason string `json:"pause_reason,omitempty"`
	// Switchover is the switchover in progress, if any.
	Switchover *Switchover `json:"switchover,omitempty"`
}

// Decision is one committed failover decision.
type Decision struct {
	Epoch      uint64    `json:"epoch"`
	At         time.Time `json:"at"`
	Primary    string    `json:"primary"`
	PrimaryID  int       `json:"primary_id"`
	OldPrimary string    `json:"old_primary,omitempty"`
	Reason     string    `json:"reason"`
	// PromotedAt is when the coordinator saw the chosen node run as
	// primary; null until then (and for the adopted first epoch).
	PromotedAt *time.Time `json:"promoted_at,omitempty"`
	// AllowedAt is when "pgquorum failover-check" let repmgrd promote
	// Primary (failover.mode repmgrd): once per decision.
	AllowedAt *time.Time `json:"allowed_at,omitempty"`
}

// HistoryBody is the answer of PathHistory.
type HistoryBody struct {
	Node        string       `json:"node"`
	Coordinator string       `json:"coordinator,omitempty"`
	Decisions   []Decision   `json:"decisions"`
	Fences      []Fence      `json:"fences,omitempty"`      // newest first
	Switchovers []Switchover `json:"switchovers,omitempty"` // newest first
}

// Operators' actions. Each goes through the failover coordinator and the
// Raft log, from any node.
const (
	PathSwitchover = "/switchover" // POST SwitchoverRequest starts one; GET shows the latest
	PathPause      = "/pause"      // POST PauseRequest
	PathResume     = "/resume"     // POST
	// PathCommand is the peers' internal endpoint that carries an action
	// to the coordinator (a Command).
	PathCommand = "/internal/v1/command"
	// PathRelease is the peers' internal endpoint through which the
	// coordinator of a switchover has the votes leased to the stopped old
	// primary released.
	PathRelease = "/internal/v1/release"
	// PathFailoverCheck is what "pgquorum failover-check" asks its own
	// node (POST, FailoverCheckRequest): may repmgrd promote it now?
	PathFailoverCheck = "/failover-check"
)

// FailoverCheckRequest asks whether repmgrd may promote this node, waiting
// up to WaitMS for the Raft group to decide.
type FailoverCheckRequest struct {
	WaitMS int64 `json:"wait_ms"`
}

// FailoverCheckAnswer is the answer of PathFailoverCheck.
type FailoverCheckAnswer struct {
	Allowed bool   `json:"allowed"`
	Node    string `json:"node"`
	Epoch   uint64 `json:"epoch,omitempty"`
	Reason  string `json:"reason"`
}

// SwitchoverRequest asks for a planned switchover to To.
type SwitchoverRequest struct {
	To string `json:"to"`
}

// PauseRequest pauses automatic failover, saying why.
type PauseRequest struct {
	Reason string `json:"reason,omitempty"`
}

// Kinds of Command.
const (
	CommandSwitchover = "switchover"
	CommandPause      = "pause"
	CommandResume     = "resume"
	CommandFence      = "fence" // a node records that it fenced itself
	CommandAllow      = "allow" // failover-check lets repmgrd promote
)

// Command is an action on its way to the coordinator.
type Command struct {
	Kind   string    `json:"kind"` // one of the Command* kinds
	To     string    `json:"to,omitempty"`
	Epoch  uint64    `json:"epoch,omitempty"` // allow: the decision repmgrd may carry out
	Reason string    `json:"reason,omitempty"`
	Node   string    `json:"node,omitempty"` // who asks (a fence: who fenced itself)
	At     time.Time `json:"at,omitempty"`
}

// CommandResult is the coordinator's answer to a Command.
type CommandResult struct {
	OK         bool        `json:"ok"`
	Error      string      `json:"error,omitempty"`
	Switchover *Switchover `json:"switchover,omitempty"`
}

// Switchover is a planned switchover as the Raft log records it.
type Switchover struct {
	ID    uint64    `json:"id"` // the epoch it started from
	From  string    `json:"from"`
	To    string    `json:"to"`
	Phase string    `json:"phase"` // demoting, promoting, done, aborted
	Steps []Step    `json:"steps"`
	Start time.Time `json:"start"`
	Error string    `json:"error,omitempty"`
}

// Step is one step of a switchover, as it happened.
type Step struct {
	At   time.Time `json:"at"`
	What string    `json:"what"`
}

// Fence is a primary that was made to take no more writes.
type Fence struct {
	Node   string    `json:"node"`
	At     time.Time `json:"at"`
	Reason string    `json:"reason"`
}

// ReleaseRequest releases the votes leased to Holder.
type ReleaseRequest struct {
	Holder   string `json:"holder"`
	HolderID int    `json:"holder_id"`
}

// Headers of the peer token scheme (consensus.peer_token): a signed request
// carries a nonce, its time (Unix milliseconds) and its MAC; the answer
// carries its MAC, bound to the request's nonce. See auth.PeerToken.
const (
	HeaderPeerNonce = "X-Pgquorum-Nonce"
	HeaderPeerTime  = "X-Pgquorum-Time"
	HeaderPeerMAC   = "X-Pgquorum-Mac"
)
