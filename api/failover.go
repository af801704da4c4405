package api

import "time"

// FailoverMode is failover.mode: who replaces a lost primary.
type FailoverMode string

const (
	ModeOff      FailoverMode = "off"      // report only
	ModePgquorum FailoverMode = "pgquorum" // pgquorum's controller fails over through repmgr
	ModeRepmgrd  FailoverMode = "repmgrd"  // repmgrd fails over; "pgquorum failover-check" gates it
)

// FailoverModes lists every mode, in the order the docs give them.
var FailoverModes = []FailoverMode{ModeOff, ModePgquorum, ModeRepmgrd}

// Fence policies of failover.fence besides an operator's command.
const (
	FenceOff  = "off"
	FenceStop = "stop" // pg_ctl stop -m fast
)

// FailoverState is what a node is doing about failover. Every state is
// named here, logged once per change and shown in /state, /cluster,
// "pgquorum status" and the pgquorum_failover_state metric. Its Down is
// not the verdict's StateDown: one says what the node does about
// failover, the other what /state answers.
type FailoverState string

const (
	FailoverOff     FailoverState = "Off"     // failover.mode off: report only
	FailoverJoining FailoverState = "Joining" // no Raft leader, or no committed decision yet
	FailoverDown    FailoverState = "Down"    // its own database is down
	// FailoverFollowing: a standby streaming from the committed primary.
	FailoverFollowing FailoverState = "Following"
	// FailoverLeading: the committed primary, confirmed (200). It leads
	// the cluster's writes; the Raft leader is called the coordinator.
	FailoverLeading     FailoverState = "Leading"
	FailoverUnconfirmed FailoverState = "Unconfirmed" // the committed primary, running but not confirmed by its majority
	FailoverSuspect     FailoverState = "Suspect"     // the coordinator suspects the primary lost; grace running
	FailoverElecting    FailoverState = "Electing"    // grace over: the coordinator chooses and commits a new primary
	FailoverPromoting   FailoverState = "Promoting"   // this node runs the promote command of the committed decision
	FailoverRepointing  FailoverState = "Repointing"  // this node re-points to the committed primary, then follows it
	FailoverDeposed     FailoverState = "Deposed"     // runs as primary but is not the committed primary
	FailoverBlocked     FailoverState = "Blocked"     // the coordinator may not act: the reason says why
	FailoverPaused      FailoverState = "Paused"      // automatic failover is paused cluster-wide (pgquorum pause)
	FailoverSwitchover  FailoverState = "Switchover"  // a switchover is in progress: the coordinator drives it
	FailoverDemoting    FailoverState = "Demoting"    // this primary steps down and stops for a switchover
	FailoverRejoining   FailoverState = "Rejoining"   // this former primary rewinds and rejoins the committed primary, or waits to try again
	FailoverFenced      FailoverState = "Fenced"      // this node fenced its database: it takes no writes
)

// FailoverStates lists every failover state, for metrics.
var FailoverStates = []FailoverState{FailoverOff, FailoverJoining, FailoverDown, FailoverFollowing,
	FailoverLeading, FailoverUnconfirmed, FailoverSuspect, FailoverElecting, FailoverPromoting,
	FailoverRepointing, FailoverDeposed, FailoverBlocked, FailoverPaused, FailoverSwitchover,
	FailoverDemoting, FailoverRejoining, FailoverFenced}

// ActionKind is what a node does to its own PostgreSQL for a committed
// decision. "Action" means only this in pgquorum; what an operator asks is
// a command (CommandKind).
type ActionKind string

const (
	ActionPromote ActionKind = "promote" // the chosen standby promotes itself
	ActionRepoint ActionKind = "repoint" // the others stream from it at once, by primary_conninfo and a reload
	ActionFollow  ActionKind = "follow"  // then, once it is promoted, follow it the repmgr way
	ActionDemote  ActionKind = "demote"  // a switchover's old primary steps down and stops
	ActionRestart ActionKind = "restart" // and starts again when the switchover is aborted
	ActionRejoin  ActionKind = "rejoin"  // a former primary comes back as a standby
	ActionFence   ActionKind = "fence"   // a primary that must take no more writes
)

// SwitchoverPhase is where a switchover stands in the Raft log.
type SwitchoverPhase string

const (
	PhaseDemoting  SwitchoverPhase = "demoting"  // the primary steps down and stops; its successor catches up
	PhasePromoting SwitchoverPhase = "promoting" // the successor is the committed primary of the next epoch
	PhaseDone      SwitchoverPhase = "done"
	PhaseAborted   SwitchoverPhase = "aborted" // given up before the promotion: the old primary stays
)

// ReportProtocol is the version of ReportRequest and Report. A node answers
// only a request of its own version, and the coordinator counts only
// reports of its own version.
const ReportProtocol = 1

// ReportRequest is the coordinator's poll. It tells each node what the
// coordinator sees (for /state), and may ask it to probe a node's database
// directly: how the loss of a primary whose pgquorum is silent is confirmed.
type ReportRequest struct {
	Protocol    int           `json:"protocol"`
	Coordinator string        `json:"coordinator"`
	Phase       FailoverState `json:"phase"` // the coordinator's failover state
	PhaseReason string        `json:"phase_reason,omitempty"`
	ProbeNode   string        `json:"probe_node,omitempty"` // probe this node's database directly
	// PrimarySync is the committed primary's synchronous replication as
	// the coordinator last saw it (failover.synchronous).
	PrimarySync *PrimarySync `json:"primary_sync,omitempty"`
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
	Action         *Progress       `json:"action,omitempty"` // what it is doing for the committed decision
	Failover       *FailoverStatus `json:"failover,omitempty"`
	// Synchronous replication (failover.synchronous): a primary's actual
	// synchronous_standby_names and sessions waiting in SyncRep; a
	// standby's recovery_min_apply_delay.
	SyncStandbyNames string `json:"sync_standby_names,omitempty"`
	SyncRepWaits     int    `json:"sync_rep_waits,omitempty"`
	SyncCommit       string `json:"synchronous_commit,omitempty"`
	ApplyDelayMS     int64  `json:"apply_delay_ms,omitempty"`
}

// Probe is the outcome of a direct probe of another node's database.
type Probe struct {
	Node  string `json:"node"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// Progress is a node's progress on its action for the committed decision
// of Epoch.
type Progress struct {
	Epoch  uint64     `json:"epoch"`
	Kind   ActionKind `json:"kind"`
	Done   bool       `json:"done"`
	Failed bool       `json:"failed"`
	Error  string     `json:"error,omitempty"`
	// LSN is, for a demote, the shutdown checkpoint the successor must
	// have received.
	LSN int64 `json:"lsn,omitempty"`
}

// FailoverStatus is the failover object of /state and of every node of
// /cluster.
type FailoverStatus struct {
	Mode        FailoverMode  `json:"mode"`
	State       FailoverState `json:"state"`
	Epoch       uint64        `json:"epoch"`
	Primary     string        `json:"primary,omitempty"`     // the committed primary of Epoch
	Coordinator string        `json:"coordinator,omitempty"` // the Raft leader
	Reason      string        `json:"reason,omitempty"`
	Paused      bool          `json:"paused,omitempty"`
	PauseReason string        `json:"pause_reason,omitempty"`
	// Switchover is the switchover in progress, if any.
	Switchover *Switchover `json:"switchover,omitempty"`
	// Rejoin is this former primary's rejoin while it is not done.
	Rejoin *RejoinStatus `json:"rejoin,omitempty"`
	// RejoinAttempts and RejoinFailures count this node's rejoin attempts,
	// and those that failed, since its pgquorum started.
	RejoinAttempts int `json:"rejoin_attempts,omitempty"`
	RejoinFailures int `json:"rejoin_failures,omitempty"`
	// Synchronous is failover.synchronous: its mode, the committed set,
	// the primary's actual setting and the RPO the cluster runs with.
	Synchronous *SyncStatus `json:"synchronous,omitempty"`
}

// RejoinStatus is a former primary's rejoin of the committed primary of
// Epoch, retried with a backoff for as long as that decision stands.
type RejoinStatus struct {
	Epoch   uint64 `json:"epoch"`
	Primary string `json:"primary"`
	Attempt int    `json:"attempt"` // attempts so far; the one running, while Running
	Running bool   `json:"running,omitempty"`
	// Reason is why a standby, not a former primary, is rejoined: its
	// history forked off the primary's ("rewinding: forked off node2's
	// timeline 4 at 0/70BC648: ..."); "" for a former primary.
	Reason    string `json:"reason,omitempty"`
	LastError string `json:"last_error,omitempty"`
	// Permanent is set when retrying cannot fix the last error (pg_rewind
	// impossible, WAL missing, neither checksums nor wal_log_hints):
	// ManualStep says what the operator does. Attempts go on, at the
	// longest backoff.
	Permanent  bool       `json:"permanent,omitempty"`
	ManualStep string     `json:"manual_step,omitempty"`
	NextAt     *time.Time `json:"next_attempt_at,omitempty"`
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
	Depositions []Deposition `json:"depositions,omitempty"` // in force, newest first
}

// Deposition is a committed "depose": the coordinator found Node, the
// primary of Epoch, lost, and no voter that applied it vouches for Node
// again until a later decision names it. A successor is committed only once
// a majority of voters have applied it and their leases on Node have run
// out, the router's hold included.
type Deposition struct {
	Epoch  uint64    `json:"epoch"`
	Node   string    `json:"node"`
	NodeID int       `json:"node_id"`
	At     time.Time `json:"at"`
	Reason string    `json:"reason"`
}

// DepositionProtocol is the version of DepositionRequest and
// DepositionAnswer. A node of an older version has no PathDeposition: it
// never counts as having released the deposed primary.
const DepositionProtocol = 1

// DepositionRequest is the coordinator's question to a voter, while it
// waits to commit a successor: have you applied the deposition of Node at
// Epoch, and how long does your ballot still bind you to it?
type DepositionRequest struct {
	Protocol    int    `json:"protocol"`
	Coordinator string `json:"coordinator"`
	Epoch       uint64 `json:"epoch"`
	Node        string `json:"node"`
	NodeID      int    `json:"node_id"`
}

// DepositionAnswer is a voter's answer. It has released Node when Applied
// and BindsMS is 0: it vouches for Node no more, and every lease it granted
// to Node has run out, consensus.router_hold included.
type DepositionAnswer struct {
	Protocol int    `json:"protocol"`
	Voter    string `json:"voter"`
	VoterID  int    `json:"voter_id"`
	Applied  bool   `json:"applied"`
	BindsMS  int64  `json:"binds_ms"` // how long its ballot may still go to Node: lease left plus router hold
	Reason   string `json:"reason,omitempty"`
}
