package failover

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/pgquorum/pgquorum/api"
)

// The Raft log and its snapshots are on disk, on every node: their entries
// have types of their own, apart from the HTTP bodies of api, so that a
// change to an HTTP body never changes what a node reads back from its log.
// testdata/log-v1 holds entries of every type as version 1 wrote them.

// EntryVersion is the version of the log entries this code writes and
// understands. An entry of another version is refused by Apply, the same way
// on every node. commit stamps it on every entry.
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
	// EntryDepose deposes the primary of the current epoch, found lost:
	// voters that apply it stop vouching for it, and its successor is
	// committed only once a majority of them have, and their leases on it
	// have run out.
	EntryDepose EntryType = "depose"
	// EntrySync commits the synchronous set of the current epoch's
	// primary (failover.synchronous; sync.go).
	EntrySync EntryType = "sync"
)

// Entry is one record of the Raft log.
type Entry struct {
	Version    int            `json:"v"`
	Type       EntryType      `json:"type"`
	Decision   *LogDecision   `json:"decision,omitempty"`
	Promoted   *Promoted      `json:"promoted,omitempty"`
	Pause      *Pause         `json:"pause,omitempty"`
	Fence      *LogFence      `json:"fence,omitempty"`
	Switchover *LogSwitchover `json:"switchover,omitempty"`
	Allow      *Promoted      `json:"allow,omitempty"` // the epoch whose primary repmgrd may promote
	Depose     *LogDeposition `json:"depose,omitempty"`
	Sync       *LogSync       `json:"sync,omitempty"`
}

// LogDeposition is the payload of EntryDepose: Node, the primary of Epoch
// (or, at epoch 0, the primary the metadata named), is deposed.
type LogDeposition struct {
	Epoch  uint64    `json:"epoch"`
	Node   string    `json:"node"`
	NodeID int       `json:"node_id"`
	At     time.Time `json:"at"`
	Reason string    `json:"reason"`
}

// LogDecision is the payload of EntryDecision: the primary of an epoch.
type LogDecision struct {
	Epoch      uint64     `json:"epoch"`
	At         time.Time  `json:"at"`
	Primary    string     `json:"primary"`
	PrimaryID  int        `json:"primary_id"`
	OldPrimary string     `json:"old_primary,omitempty"`
	Reason     string     `json:"reason"`
	PromotedAt *time.Time `json:"promoted_at,omitempty"`
	AllowedAt  *time.Time `json:"allowed_at,omitempty"`
}

// LogFence is the payload of EntryFence.
type LogFence struct {
	Node   string    `json:"node"`
	At     time.Time `json:"at"`
	Reason string    `json:"reason"`
}

// LogSwitchover is the payload of EntrySwitchover: its start, or a step
// of the one of its ID.
type LogSwitchover struct {
	ID    uint64              `json:"id"`
	From  string              `json:"from"`
	To    string              `json:"to"`
	Phase api.SwitchoverPhase `json:"phase"`
	Steps []LogStep           `json:"steps"`
	Start time.Time           `json:"start"`
	Error string              `json:"error,omitempty"`
}

// LogStep is one step of a switchover.
type LogStep struct {
	At   time.Time `json:"at"`
	What string    `json:"what"`
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

func decisionEntry(d api.Decision) Entry {
	l := logDecision(d)
	return Entry{Type: EntryDecision, Decision: &l}
}

func switchoverEntry(sw api.Switchover) Entry {
	l := logSwitchover(sw)
	return Entry{Type: EntrySwitchover, Switchover: &l}
}

func fenceEntry(f api.Fence) Entry {
	l := LogFence(f)
	return Entry{Type: EntryFence, Fence: &l}
}

func deposeEntry(d api.Deposition) Entry {
	l := LogDeposition(d)
	return Entry{Type: EntryDepose, Depose: &l}
}

func pauseEntry(p Pause) Entry       { return Entry{Type: EntryPause, Pause: &p} }
func promotedEntry(p Promoted) Entry { return Entry{Type: EntryPromoted, Promoted: &p} }
func allowEntry(p Promoted) Entry    { return Entry{Type: EntryAllow, Allow: &p} }

func logDecision(d api.Decision) LogDecision { return LogDecision(d) }

func (d LogDecision) api() api.Decision { return api.Decision(d) }

func logSwitchover(sw api.Switchover) LogSwitchover {
	return LogSwitchover{ID: sw.ID, From: sw.From, To: sw.To, Phase: sw.Phase, Steps: convert(sw.Steps, func(s api.Step) LogStep { return LogStep(s) }),
		Start: sw.Start, Error: sw.Error}
}

func (sw LogSwitchover) api() api.Switchover {
	return api.Switchover{ID: sw.ID, From: sw.From, To: sw.To, Phase: sw.Phase, Steps: convert(sw.Steps, func(s LogStep) api.Step { return api.Step(s) }),
		Start: sw.Start, Error: sw.Error}
}

// convert maps s, keeping nil as nil: an absent list encodes as it did.
func convert[T, U any](s []T, f func(T) U) []U {
	if s == nil {
		return nil
	}
	out := make([]U, len(s))
	for i, v := range s {
		out[i] = f(v)
	}
	return out
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
