package failover

import (
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/pgquorum/pgquorum/api"
)

// maxHistory bounds the decisions the FSM keeps for /history.
const maxHistory = 100

// Replicated is the state every node holds the same, by applying the same
// log in the same order.
type Replicated struct {
	Epoch     uint64         `json:"epoch"`
	Primary   string         `json:"primary"`
	PrimaryID int            `json:"primary_id"`
	History   []api.Decision `json:"history"` // oldest first
}

// Latest is the decision of the current epoch.
func (r Replicated) Latest() (api.Decision, bool) {
	if len(r.History) == 0 {
		return api.Decision{}, false
	}
	return r.History[len(r.History)-1], true
}

// FSM is the Raft state machine. Apply is a pure switch over typed entries:
// it changes the replicated state and nothing else; nodes act on it in their
// own loop.
type FSM struct {
	mu      sync.RWMutex
	state   Replicated
	changed chan struct{} // closed and replaced on every change
}

// NewFSM returns an empty state machine.
func NewFSM() *FSM { return &FSM{changed: make(chan struct{})} }

// ErrStaleEpoch is what Apply returns for a decision that does not follow
// the current epoch: a coordinator that decided on an old view. Every node
// refuses it alike.
var ErrStaleEpoch = fmt.Errorf("decision for a stale epoch")

// Apply implements raft.FSM.
func (f *FSM) Apply(l *raft.Log) any {
	e, err := DecodeEntry(l.Data)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch e.Type {
	case EntryDecision:
		d := e.Decision
		if d == nil || d.Epoch != f.state.Epoch+1 {
			return fmt.Errorf("%w: epoch %d after %d", ErrStaleEpoch, epochOf(d), f.state.Epoch)
		}
		f.state.Epoch, f.state.Primary, f.state.PrimaryID = d.Epoch, d.Primary, d.PrimaryID
		f.state.History = append(f.state.History, *d)
		if n := len(f.state.History); n > maxHistory {
			f.state.History = append([]api.Decision(nil), f.state.History[n-maxHistory:]...)
		}
	case EntryPromoted:
		p := e.Promoted
		n := len(f.state.History)
		if p == nil || n == 0 || p.Epoch != f.state.Epoch || f.state.History[n-1].PromotedAt != nil {
			return fmt.Errorf("%w: promotion of epoch %d, current %d", ErrStaleEpoch, promotedEpoch(p), f.state.Epoch)
		}
		at := p.At
		f.state.History[n-1].PromotedAt = &at
	default:
		return fmt.Errorf("unknown log entry type %q", e.Type)
	}
	close(f.changed)
	f.changed = make(chan struct{})
	return nil
}

func promotedEpoch(p *Promoted) uint64 {
	if p == nil {
		return 0
	}
	return p.Epoch
}

func epochOf(d *api.Decision) uint64 {
	if d == nil {
		return 0
	}
	return d.Epoch
}

// State returns a copy of the replicated state.
func (f *FSM) State() Replicated {
	f.mu.RLock()
	defer f.mu.RUnlock()
	s := f.state
	s.History = append([]api.Decision(nil), s.History...)
	return s
}

// LastPromotion is when the latest promotion happened (not counting the
// adoption of the first primary); zero when none did.
func (r Replicated) LastPromotion() time.Time {
	for i := len(r.History) - 1; i >= 0; i-- {
		if d := r.History[i]; d.PromotedAt != nil && d.OldPrimary != "" {
			return *d.PromotedAt
		}
	}
	return time.Time{}
}

// Changed returns a channel closed at the next change.
func (f *FSM) Changed() <-chan struct{} {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.changed
}

// Snapshot implements raft.FSM.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	return snapshot(f.State()), nil
}

// Restore implements raft.FSM.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var s Replicated
	if err := json.NewDecoder(rc).Decode(&s); err != nil {
		return fmt.Errorf("restore failover state: %w", err)
	}
	f.mu.Lock()
	f.state = s
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
	return nil
}

type snapshot Replicated

func (s snapshot) Persist(sink raft.SnapshotSink) error {
	if err := json.NewEncoder(sink).Encode(Replicated(s)); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("persist failover state: %w", err)
	}
	return sink.Close()
}

func (snapshot) Release() {}
