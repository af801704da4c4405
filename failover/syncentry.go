package failover

import (
	"fmt"
	"slices"
	"time"

	"github.com/pgquorum/pgquorum/api"
)

// LogSync is the payload of EntrySync: the synchronous set of the primary
// of an epoch (syncset.go says what the two sets are for).
type LogSync struct {
	Epoch   uint64       `json:"epoch"`
	Primary string       `json:"primary"`
	Mode    api.SyncMode `json:"mode"`
	Count   int          `json:"count"`
	// ElectCount, when not 0, is the k elections still count with while a
	// raise of Count is not yet safe: until the primary shows the larger
	// k and every counted member has received the WAL it had then, a
	// commit acknowledged before is on ElectCount members only.
	ElectCount int       `json:"elect_count,omitempty"`
	Members    []string  `json:"members"` // the committed set: elections count on it
	Counted    []string  `json:"counted"` // those the primary waits for: a subset of Members
	At         time.Time `json:"at"`
	// Since is when the cluster last became synchronous (Counted not
	// empty) or asynchronous.
	Since  time.Time `json:"since"`
	Reason string    `json:"reason,omitempty"`
}

func syncEntry(s LogSync) Entry { return Entry{Type: EntrySync, Sync: &s} }

// applySync records the synchronous set of the current epoch's primary.
// It refuses one for another epoch or primary (a coordinator that decided
// on an old view), and one whose Counted is not within Members: the
// primary must never wait for a standby elections do not count on.
func (f *FSM) applySync(s *LogSync) error {
	switch {
	case s == nil:
		return fmt.Errorf("%w: sync entry without payload", ErrRefused)
	case s.Epoch != f.state.Epoch || s.Primary != f.state.Primary || s.Epoch == 0:
		return fmt.Errorf("%w: synchronous set for %s of epoch %d, the primary is %s of epoch %d", ErrRefused, s.Primary, s.Epoch, f.state.Primary, f.state.Epoch)
	case s.Mode != api.SyncOn && s.Mode != api.SyncStrict:
		return fmt.Errorf("%w: synchronous mode %q", ErrRefused, s.Mode)
	case s.Count < 1 || s.ElectCount < 0 || s.ElectCount >= s.Count && s.ElectCount != 0:
		return fmt.Errorf("%w: synchronous count %d (elections count %d)", ErrRefused, s.Count, s.ElectCount)
	case slices.Contains(s.Members, s.Primary) || len(minus(s.Counted, s.Members)) > 0 || hasDuplicates(s.Members) || hasDuplicates(s.Counted):
		return fmt.Errorf("%w: synchronous set %v counted %v for primary %s", ErrRefused, s.Members, s.Counted, s.Primary)
	}
	f.state.Sync = s.clone()
	return nil
}

// electCount is the k of ANY k that elections count with.
func (s *LogSync) electCount() int {
	if s.ElectCount > 0 {
		return s.ElectCount
	}
	return s.Count
}

func hasDuplicates(s []string) bool {
	c := slices.Clone(s)
	slices.Sort(c)
	return len(slices.Compact(c)) != len(s)
}
