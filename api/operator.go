package api

import "time"

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

// CommandKind is what an operator (or a node, for a fence) asks of the
// coordinator.
type CommandKind string

const (
	CommandSwitchover CommandKind = "switchover"
	CommandPause      CommandKind = "pause"
	CommandResume     CommandKind = "resume"
	CommandFence      CommandKind = "fence" // a node records that it fenced itself
	CommandAllow      CommandKind = "allow" // failover-check lets repmgrd promote
)

// Command is an operator command (or a node's record) on its way to the
// coordinator.
type Command struct {
	Kind   CommandKind `json:"kind"`
	To     string      `json:"to,omitempty"`
	Epoch  uint64      `json:"epoch,omitempty"` // allow: the decision repmgrd may carry out
	Reason string      `json:"reason,omitempty"`
	Node   string      `json:"node,omitempty"` // who asks (a fence: who fenced itself)
	At     time.Time   `json:"at,omitempty"`
}

// CommandResult is the coordinator's answer to a Command.
type CommandResult struct {
	OK         bool        `json:"ok"`
	Error      string      `json:"error,omitempty"`
	Switchover *Switchover `json:"switchover,omitempty"`
}

// Switchover is a planned switchover as the Raft log records it.
type Switchover struct {
	ID    uint64          `json:"id"` // the epoch it started from
	From  string          `json:"from"`
	To    string          `json:"to"`
	Phase SwitchoverPhase `json:"phase"`
	Steps []Step          `json:"steps"`
	Start time.Time       `json:"start"`
	Error string          `json:"error,omitempty"`
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

// ReleaseAnswer is the answer of PathRelease once the votes are released.
type ReleaseAnswer struct {
	Released bool `json:"released"`
}
