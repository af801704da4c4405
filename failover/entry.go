package failover

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/pgquorum/pgquorum/api"
)

// EntryVersion is the version of the log entries this code writes and
// understands. An entry of another version is refused by Apply, the same way
// on every node.
const EntryVersion = 1

// EntryType says what a log entry holds.
type EntryType string

const (
	// EntryDecision commits a new primary for the next epoch.
	EntryDecision EntryType = "decision"
	// EntryPromoted records that the primary of the current epoch runs as
	// one: the cooldown counts from it.
	EntryPromoted EntryType = "promoted"
	// EntryPause pauses or resumes automatic failover.
	EntryPause EntryType = "pause"
	// EntryFence records that a node fenced its database.
	EntryFence EntryType = "fence"
	// EntrySwitchover starts a switchover or records one of its steps.
	EntrySwitchover EntryType = "switchover"
	// EntryAllow records that repmgrd may promote the committed primary
	// of an epoch (failover.mode repmgrd): once.
	EntryAllow EntryType = "allow"
)

// Entry is one record of the Raft log.
type Entry struct {
	Version    int             `json:"v"`
	Type       EntryType       `json:"type"`
	Decision   *api.Decision   `json:"decision,omitempty"`
	Promoted   *Promoted       `json:"promoted,omitempty"`
	Pause      *Pause          `json:"pause,omitempty"`
	Fence      *api.Fence      `json:"fence,omitempty"`
	Switchover *api.Switchover `json:"switchover,omitempty"`
	Allow      *Promoted       `json:"allow,omitempty"` // the epoch whose primary repmgrd may promote
}

// Pause is the payload of EntryPause.
type Pause struct {
	Paused bool      `json:"paused"`
	Reason string    `json:"reason,omitempty"`
	By     string    `json:"by,omitempty"` // the node the operator asked
	At     time.Time `json:"at"`
}

// Promoted is the payload of EntryPromoted and EntryAllow.
type Promoted struct {
	Epoch uint64    `json:"epoch"`
	At    time.Time `json:"at"`
}

// Encode renders an entry for raft.Apply.
func (e Entry) Encode() []byte {
	b, err := json.Marshal(e)
	if err != nil {
		panic(fmt.Sprintf("encode log entry: %v", err)) // plain structs always encode
	}
	return b
}

// DecodeEntry reads a log entry.
func DecodeEntry(b []byte) (Entry, error) {
	var e Entry
	if err := json.Unmarshal(b, &e); err != nil {
		return Entry{}, fmt.Errorf("decode log entry: %w", err)
	}
	if e.Version != EntryVersion {
		return Entry{}, fmt.Errorf("log entry version %d, this pgquorum understands %d", e.Version, EntryVersion)
	}
	return e, nil
}
