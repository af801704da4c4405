package failover

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// fenceStateFile holds, in the Raft directory, the latest decision this
// node applied, the fencer's clocks and its stream marks, so that a restart of pgquorum neither restarts rule 2's
// clock nor gives the streams the benefit of the doubt again: a pgquorum
// that crash-loops must not postpone a fence for ever. Times are wall
// clock across the restart (within a process the monotonic clock rules).
const fenceStateFile = "fence.json"

// fenceState is what persists of fenceMemory.
type fenceState struct {
	Epoch         uint64                `json:"epoch,omitempty"`
	Primary       string                `json:"primary,omitempty"`
	NotReadySince time.Time             `json:"not_ready_since,omitzero"`
	DeposedSince  time.Time             `json:"deposed_since,omitzero"`
	Marks         map[string]streamMark `json:"marks,omitempty"`
	// Saved is when it was written: a clock is carried over a restart
	// only when its previous run saved it recently (carriedRecently).
	Saved time.Time `json:"saved,omitzero"`
}

// fenceStore reads and writes the fence state file; no directory: none.
type fenceStore struct {
	dir string
	// every is the shortest time between two writes that only move the
	// marks, and between two heartbeats while a clock runs.
	every time.Duration
	saved []byte    // the state last written (or read), without its time
	at    time.Time // when
}

func (s *fenceStore) path() string { return filepath.Join(s.dir, fenceStateFile) }

// load reads the state a previous run left, and when that run last saved
// it; a missing file is a fresh start. The clocks are stripped of any
// monotonic reading they never had.
func (s *fenceStore) load() (fenceMemory, time.Time, error) {
	if s.dir == "" {
		return fenceMemory{}, time.Time{}, nil
	}
	b, err := os.ReadFile(s.path())
	if errors.Is(err, os.ErrNotExist) {
		return fenceMemory{}, time.Time{}, nil
	}
	if err != nil {
		return fenceMemory{}, time.Time{}, fmt.Errorf("read the fence state: %w", err)
	}
	var st fenceState
	if err := json.Unmarshal(b, &st); err != nil {
		return fenceMemory{}, time.Time{}, fmt.Errorf("decode the fence state %s: %w", s.path(), err)
	}
	saved := st.Saved
	st.Saved = time.Time{}
	if s.saved, err = json.Marshal(st); err != nil {
		return fenceMemory{}, time.Time{}, fmt.Errorf("encode the fence state: %w", err)
	}
	return fenceMemory{Epoch: st.Epoch, Primary: st.Primary, NotReadySince: st.NotReadySince, DeposedSince: st.DeposedSince, Marks: st.Marks}, saved, nil
}

// save writes mem when it changed: at once when a clock started or
// stopped, at most every refresh interval when only the marks moved (a
// busy stream moves them every step), and the marks only while no
// coordinator is heard (rule 2 needs them only then; a restart while
// the coordinator is heard gives the streams one window, as before it
// lost them). While a clock runs it is written at least every interval
// all the same, with the time: the heartbeat that tells the next run
// whether this one stopped only just now (carriedRecently).
func (s *fenceStore) save(mem fenceMemory, ready bool, now time.Time) error {
	if s.dir == "" {
		return nil
	}
	st := fenceState{Epoch: mem.Epoch, Primary: mem.Primary, NotReadySince: mem.NotReadySince, DeposedSince: mem.DeposedSince}
	if !ready {
		st.Marks = mem.Marks
	}
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encode the fence state: %w", err)
	}
	soon := !s.at.IsZero() && now.Sub(s.at) < s.every
	running := !st.NotReadySince.IsZero() || !st.DeposedSince.IsZero()
	if string(b) == string(s.saved) && (!running || soon) {
		return nil
	}
	var last fenceState
	if err := json.Unmarshal(s.saved, &last); err == nil && len(s.saved) > 0 && last.Epoch == st.Epoch && last.Primary == st.Primary && last.NotReadySince.Equal(st.NotReadySince) &&
		last.DeposedSince.Equal(st.DeposedSince) && len(last.Marks) == len(st.Marks) && soon {
		return nil
	}
	st.Saved = now
	w, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encode the fence state: %w", err)
	}
	tmp := s.path() + ".tmp"
	if err := os.WriteFile(tmp, w, 0o600); err != nil {
		return fmt.Errorf("write the fence state: %w", err)
	}
	if err := os.Rename(tmp, s.path()); err != nil {
		return fmt.Errorf("write the fence state: %w", err)
	}
	s.saved, s.at = b, now
	return nil
}
