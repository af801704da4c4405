package failover

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/pgquorum/pgquorum/api"
)

// maxHistory bounds the decisions the FSM keeps for /history; fences and
// switchovers are kept fewer.
const (
	maxHistory     = 100
	maxFences      = 50
	maxSwitchovers = 20
	maxDeposed     = 20
)

// Replicated is the state every node holds the same, by applying the same
// log in the same order.
// It is what nodes read; on disk it is a snapshot, in the log's own types.
type Replicated struct {
	Epoch       uint64
	Primary     string
	PrimaryID   int
	History     []api.Decision // oldest first
	Pause       *Pause
	Fences      []api.Fence      // oldest first
	Switchovers []api.Switchover // oldest first
	// Deposed are the depositions in force, oldest first: a node leaves
	// it when a later decision names it again.
	Deposed []api.Deposition
	Sync    *LogSync // the committed synchronous set; nil: never committed
}

// Deposition is the deposition of node (node_id id) in force, if any.
func (r Replicated) Deposition(node string, id int) (api.Deposition, bool) {
	for i := len(r.Deposed) - 1; i >= 0; i-- {
		if d := r.Deposed[i]; d.Node == node && d.NodeID == id {
			return d, true
		}
	}
	return api.Deposition{}, false
}

// Paused tells whether automatic failover is paused.
func (r Replicated) Paused() bool { return r.Pause != nil && r.Pause.Paused }

// Switchover is the switchover in progress (demoting or promoting), if any.
func (r Replicated) Switchover() (api.Switchover, bool) {
	if n := len(r.Switchovers); n > 0 {
		if sw := r.Switchovers[n-1]; sw.Phase == api.PhaseDemoting || sw.Phase == api.PhasePromoting {
			return sw, true
		}
	}
	return api.Switchover{}, false
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
	applied uint64        // the index of the last entry Apply was given
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
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applied = max(f.applied, l.Index) // refused or not, it was applied
	if err != nil {
		return err
	}
	switch e.Type {
	case EntryDecision:
		d := e.Decision
		if d == nil || d.Epoch != f.state.Epoch+1 {
			return fmt.Errorf("%w: epoch %d after %d", ErrStaleEpoch, epochOf(d), f.state.Epoch)
		}
		f.carrySync(d.Epoch, d.Primary, d.PrimaryID)
		f.state.Epoch, f.state.Primary, f.state.PrimaryID = d.Epoch, d.Primary, d.PrimaryID
		f.state.History = keepLast(append(f.state.History, d.api()), maxHistory)
		f.decisionEndsDemotion(d.api())
		// A decision that names a deposed node again makes it vouchable.
		f.state.Deposed = slices.DeleteFunc(f.state.Deposed, func(x api.Deposition) bool { return x.Node == d.Primary })
	case EntryPromoted:
		p := e.Promoted
		n := len(f.state.History)
		if p == nil || n == 0 || p.Epoch != f.state.Epoch || f.state.History[n-1].PromotedAt != nil {
			return fmt.Errorf("%w: promotion of epoch %d, current %d", ErrStaleEpoch, promotedEpoch(p), f.state.Epoch)
		}
		at := p.At
		f.state.History[n-1].PromotedAt = &at
	case EntryAllow:
		p := e.Allow
		n := len(f.state.History)
		if p == nil || n == 0 || p.Epoch != f.state.Epoch || f.state.History[n-1].AllowedAt != nil || f.state.History[n-1].OldPrimary == "" {
			// Once per decision: two repmgrd instances are never both
			// allowed.
			return fmt.Errorf("%w: no promotion of epoch %d to allow (current %d)", ErrRefused, promotedEpoch(p), f.state.Epoch)
		}
		at := p.At
		f.state.History[n-1].AllowedAt = &at
	case EntryPause:
		if e.Pause == nil {
			return fmt.Errorf("%w: pause entry without payload", ErrRefused)
		}
		p := *e.Pause
		f.state.Pause = &p
	case EntryFence:
		if e.Fence == nil || e.Fence.Node == "" {
			return fmt.Errorf("%w: fence entry without a node", ErrRefused)
		}
		f.state.Fences = keepLast(append(f.state.Fences, api.Fence(*e.Fence)), maxFences)
	case EntryDepose:
		if err := f.applyDepose(e.Depose); err != nil {
			return err
		}
	case EntrySwitchover:
		if err := f.applySwitchover(e.Switchover); err != nil {
			return err
		}
	case EntrySync:
		if err := f.applySync(e.Sync); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown log entry type %q", e.Type)
	}
	close(f.changed)
	f.changed = make(chan struct{})
	return nil
}

// carrySync keeps the synchronous set when a decision names the primary of
// the current epoch again (a restore, depose.go): its WAL, and the commits
// its members acknowledged, are unchanged, so the set still constrains the
// election that replaces it and still says what the primary waits for.
func (f *FSM) carrySync(epoch uint64, primary string, id int) {
	s := f.state.Sync
	if s == nil || s.Epoch != f.state.Epoch || s.Primary != primary || f.state.Primary != primary || f.state.PrimaryID != id {
		return
	}
	c := s.clone()
	c.Epoch = epoch
	f.state.Sync = c
}

// ErrRefused is what Apply returns for an entry that does not fit the
// state: an action that lost a race, refused the same way on every node.
var ErrRefused = errors.New("refused")

// applyDepose records a deposition of the current epoch: of its committed
// primary, or at epoch 0 of any node (the primary the metadata named). Once
// per node and epoch.
func (f *FSM) applyDepose(l *LogDeposition) error {
	switch {
	case l == nil || l.Node == "":
		return fmt.Errorf("%w: depose entry without a node", ErrRefused)
	case l.Epoch != f.state.Epoch:
		return fmt.Errorf("%w: deposition of %s at epoch %d, current %d", ErrStaleEpoch, l.Node, l.Epoch, f.state.Epoch)
	case f.state.Epoch > 0 && (l.Node != f.state.Primary || l.NodeID != f.state.PrimaryID):
		return fmt.Errorf("%w: %s (node_id %d) is not the primary of epoch %d", ErrRefused, l.Node, l.NodeID, f.state.Epoch)
	}
	if d, ok := f.state.Deposition(l.Node, l.NodeID); ok && d.Epoch == l.Epoch {
		return fmt.Errorf("%w: %s is already deposed at epoch %d", ErrRefused, l.Node, l.Epoch)
	}
	f.state.Deposed = keepLast(append(f.state.Deposed, api.Deposition(*l)), maxDeposed)
	return nil
}

// applySwitchover starts a switchover (a new ID, in phase demoting, from
// the primary of the current epoch, promoted or adopted) or
// records a step of the one in progress. Only these transitions exist:
// demoting → aborted, promoting → done; demoting → promoting comes with
// the decision (decisionEndsDemotion), so that the two are one entry.
func (f *FSM) applySwitchover(l *LogSwitchover) error {
	if l == nil {
		return fmt.Errorf("%w: switchover entry without payload", ErrRefused)
	}
	sw := l.api()
	cur, running := f.state.Switchover()
	if !running || cur.ID != sw.ID {
		latest, ok := f.state.Latest()
		switch {
		case running:
			return fmt.Errorf("%w: a switchover from %s to %s is in progress", ErrRefused, cur.From, cur.To)
		case sw.Phase != api.PhaseDemoting || sw.ID != f.state.Epoch || !ok || (latest.PromotedAt == nil && latest.OldPrimary != "") || sw.From != f.state.Primary:
			return fmt.Errorf("%w: a switchover starts from the promoted primary of the current epoch %d", ErrRefused, f.state.Epoch)
		}
		f.state.Switchovers = keepLast(append(f.state.Switchovers, sw), maxSwitchovers)
		return nil
	}
	next := sw.Phase
	if !(cur.Phase == api.PhaseDemoting && next == api.PhaseAborted) && !(cur.Phase == api.PhasePromoting && next == api.PhaseDone) && next != cur.Phase {
		return fmt.Errorf("%w: switchover %d cannot go from %s to %s", ErrRefused, cur.ID, cur.Phase, next)
	}
	last := &f.state.Switchovers[len(f.state.Switchovers)-1]
	last.Phase = next
	last.Steps = append(last.Steps, sw.Steps...)
	if sw.Error != "" {
		last.Error = sw.Error
	}
	return nil
}

// decisionEndsDemotion moves a switchover in phase demoting on: to
// promoting when d commits its target, to aborted when a failover
// committed another node.
func (f *FSM) decisionEndsDemotion(d api.Decision) {
	cur, running := f.state.Switchover()
	if !running || cur.Phase != api.PhaseDemoting {
		return
	}
	last := &f.state.Switchovers[len(f.state.Switchovers)-1]
	step := api.Step{At: d.At, What: fmt.Sprintf("committed %s as the primary of epoch %d", d.Primary, d.Epoch)}
	if d.Primary == cur.To {
		last.Phase = api.PhasePromoting
	} else {
		last.Phase, last.Error = api.PhaseAborted, "superseded by the decision of epoch "+fmt.Sprint(d.Epoch)+": "+d.Reason
	}
	last.Steps = append(last.Steps, step)
}

// keepLast keeps the last n items of s, in a new array once it trims.
func keepLast[T any](s []T, n int) []T {
	if len(s) <= n {
		return s
	}
	return append([]T(nil), s[len(s)-n:]...)
}

func promotedEpoch(p *Promoted) uint64 {
	if p == nil {
		return 0
	}
	return p.Epoch
}

func epochOf(d *LogDecision) uint64 {
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
	s.Fences = slices.Clone(s.Fences)
	s.Switchovers = slices.Clone(s.Switchovers)
	s.Deposed = slices.Clone(s.Deposed)
	for i := range s.Switchovers {
		s.Switchovers[i].Steps = slices.Clone(s.Switchovers[i].Steps)
	}
	if p := f.state.Pause; p != nil {
		cp := *p
		s.Pause = &cp
	}
	if f.state.Sync != nil {
		s.Sync = f.state.Sync.clone()
	}
	return s
}

// Committed is the committed primary, its repmgr node_id and the epoch,
// without the copy of the whole state that State makes: a reader on every
// vote can afford it.
func (f *FSM) Committed() (primary string, id int, epoch uint64) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.state.Primary, f.state.PrimaryID, f.state.Epoch
}

// Deposition is the deposition of node (node_id id) in force, without the
// copy of the whole state that State makes: it is read on every vote.
func (f *FSM) Deposition(node string, id int) (api.Deposition, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.state.Deposition(node, id)
}

// LastPromotion is when the latest promotion by a failover happened, the
// one failover.cooldown counts from; zero when none did. Neither the
// adoption of the first primary nor a planned switchover counts: a
// switchover must not hold back the failover of its own new primary.
func (r Replicated) LastPromotion() time.Time {
	for i := len(r.History) - 1; i >= 0; i-- {
		if d := r.History[i]; d.PromotedAt != nil && d.OldPrimary != "" && !r.BySwitchover(d) {
			return *d.PromotedAt
		}
	}
	return time.Time{}
}

// BySwitchover tells whether d was committed by a switchover: the decision
// that ends a switchover's demotion names its target, in the epoch after the
// one it started from (its ID), and moves it to promoting, then done
// (decisionEndsDemotion). The log needs no field of its own for it, and
// entries written before this rule read the same. A switchover trimmed from
// the state (maxSwitchovers) no longer shows: its decision then counts as a
// failover's, the cautious side.
func (r Replicated) BySwitchover(d api.Decision) bool {
	for _, sw := range r.Switchovers {
		if sw.ID+1 == d.Epoch && sw.To == d.Primary && (sw.Phase == api.PhasePromoting || sw.Phase == api.PhaseDone) {
			return true
		}
	}
	return false
}

// AppliedIndex is the index of the last log entry Apply was given, 0
// before any.
func (f *FSM) AppliedIndex() uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.applied
}

// Changed returns a channel closed at the next change.
func (f *FSM) Changed() <-chan struct{} {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.changed
}

// Snapshot implements raft.FSM.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	return snapshotOf(f.State()), nil
}

// Restore implements raft.FSM.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var s snapshot
	if err := json.NewDecoder(rc).Decode(&s); err != nil {
		return fmt.Errorf("restore failover state: %w", err)
	}
	f.mu.Lock()
	f.state = s.replicated()
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
	return nil
}

// snapshot is the replicated state as a snapshot holds it on disk: in the
// types of the log entries, apart from the HTTP bodies.
type snapshot struct {
	Epoch       uint64          `json:"epoch"`
	Primary     string          `json:"primary"`
	PrimaryID   int             `json:"primary_id"`
	History     []LogDecision   `json:"history"` // oldest first
	Pause       *Pause          `json:"pause,omitempty"`
	Fences      []LogFence      `json:"fences,omitempty"`      // oldest first
	Switchovers []LogSwitchover `json:"switchovers,omitempty"` // oldest first
	Deposed     []LogDeposition `json:"deposed,omitempty"`     // oldest first
	Sync        *LogSync        `json:"sync,omitempty"`
}

func snapshotOf(r Replicated) snapshot {
	return snapshot{Epoch: r.Epoch, Primary: r.Primary, PrimaryID: r.PrimaryID, History: convert(r.History, logDecision), Pause: r.Pause,
		Fences: convert(r.Fences, func(f api.Fence) LogFence { return LogFence(f) }), Switchovers: convert(r.Switchovers, logSwitchover),
		Deposed: convert(r.Deposed, func(d api.Deposition) LogDeposition { return LogDeposition(d) }), Sync: r.Sync}
}

func (s snapshot) replicated() Replicated {
	return Replicated{Epoch: s.Epoch, Primary: s.Primary, PrimaryID: s.PrimaryID, History: convert(s.History, LogDecision.api), Pause: s.Pause,
		Fences: convert(s.Fences, func(f LogFence) api.Fence { return api.Fence(f) }), Switchovers: convert(s.Switchovers, LogSwitchover.api),
		Deposed: convert(s.Deposed, func(d LogDeposition) api.Deposition { return api.Deposition(d) }), Sync: s.Sync}
}

func (s snapshot) Persist(sink raft.SnapshotSink) error {
	if err := json.NewEncoder(sink).Encode(s); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("persist failover state: %w", err)
	}
	return sink.Close()
}

func (snapshot) Release() {}
