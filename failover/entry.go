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
)

// Entry is one record of the Raft log.
type Entry struct {
	Version  int           `json:"v"`
	Type     EntryType     `json:"type"`
	Decision *api.Decision `json:"decision,omitempty"`
	Promoted *Promoted     `json:"promoted,omitempty"`
}

// Promoted is the payload of EntryPromoted.
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
