package api

import "time"

// SyncMode is failover.synchronous: whether the primary waits for
// standbys before it acknowledges a commit.
type SyncMode string

const (
	SyncOff SyncMode = "off" // asynchronous replication, as PostgreSQL's default
	// SyncOn: synchronous while at least failover.synchronous_count
	// eligible standbys stream; asynchronous, logged and counted, while
	// fewer do.
	SyncOn SyncMode = "on"
	// SyncStrict: a commit is never acknowledged without
	// failover.synchronous_count standbys; writes wait instead.
	SyncStrict SyncMode = "strict"
)

// SyncModes lists every mode, in the order the docs give them.
var SyncModes = []SyncMode{SyncOff, SyncOn, SyncStrict}

// RPOZero is SyncStatus.RPO while every acknowledged commit is on the
// committed synchronous set.
const RPOZero = "RPO 0"

// SyncStatus is the synchronous replication part of a node's failover
// object: what the Raft log commits and what the primary applies.
type SyncStatus struct {
	Mode  SyncMode `json:"mode"`
	Count int      `json:"count"` // k of ANY k (…)
	// Set is the committed synchronous set: the standbys an election
	// counts on. Counted is those of them the primary is told to wait for
	// (the same but while one joins or leaves).
	Set     []string `json:"set"`
	Counted []string `json:"counted"`
	Epoch   uint64   `json:"epoch,omitempty"` // the epoch the set was committed for
	// ElectCount, when not 0, is the k elections still count with after a
	// raise of Count: until the members catch up, a commit acknowledged
	// before the raise may be on ElectCount of them only.
	ElectCount int `json:"elect_count,omitempty"`
	// Want is synchronous_standby_names as the committed set renders it;
	// StandbyNames is the primary's actual value, as last seen ("" when
	// unknown or empty: Seen says which).
	Want         string `json:"want"`
	StandbyNames string `json:"synchronous_standby_names"`
	Seen         bool   `json:"seen"`
	// RPO is "RPO 0" while synchronous, "async since <time>" while not.
	RPO      string     `json:"rpo"`
	Degraded bool       `json:"degraded"`
	Since    *time.Time `json:"since,omitempty"` // when the cluster last became synchronous or degraded
	// SyncRepWaits is how many sessions of the primary wait for a standby
	// (pg_stat_activity wait_event SyncRep): commits held back.
	SyncRepWaits int `json:"sync_rep_waits"`
	// Fallbacks counts the times this node, as primary, fell back to
	// asynchronous replication (failover.synchronous on) since it started.
	Fallbacks uint64 `json:"fallbacks"`
}

// PrimarySync is what the coordinator last saw of the primary's
// synchronous replication, passed on to every node with its poll.
type PrimarySync struct {
	StandbyNames string `json:"synchronous_standby_names"`
	SyncRepWaits int    `json:"sync_rep_waits"`
	// SynchronousCommit is the primary's synchronous_commit, as a session
	// of database.dsn's user starts with.
	SynchronousCommit string `json:"synchronous_commit,omitempty"`
}
