package failover

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/pgquorum/pgquorum/api"
)

// statusBoard is what the coordinator's loop, the actor's loop and the
// HTTP handlers share: what this node shows of itself in /state and in its
// report. Each loop writes its own fields; the lock only keeps readers
// consistent. No decision reads it back.
type statusBoard struct {
	mu       sync.Mutex
	phase    phaseSeen      // the coordinator's phase, as it last told this node (or this node's own, as coordinator)
	acting   api.ActionKind // the actor's action in progress
	fenced   string         // why this node fenced itself, shown until it runs again as a standby
	outlook  string         // which fencing rule would fire, and when (FenceOutlook)
	demoting uint64         // ID+1 of the switchover this node stepped down and stopped for; 0: none
	progress map[uint64]api.Progress
	last     api.FailoverState // the state last logged
	rejoin   rejoinBoard
	sync     syncBoard // the primary's synchronous_standby_names, as the coordinator last saw it
	// fallbacks counts this node's falls back to asynchronous replication.
	fallbacks atomic.Uint64
}

// phaseSeen is the cluster's phase as a coordinator stated it, and when.
type phaseSeen struct {
	state  api.FailoverState
	reason string
	at     time.Time
}

// boardView is a consistent copy of what the board shows.
type boardView struct {
	phase    phaseSeen
	acting   api.ActionKind
	fenced   string
	outlook  string
	demoting uint64
}

func newStatusBoard() *statusBoard { return &statusBoard{progress: map[uint64]api.Progress{}} }

func (b *statusBoard) setPhase(p phaseSeen) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.phase = p
}

func (b *statusBoard) setActing(kind api.ActionKind) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.acting = kind
}

func (b *statusBoard) setFenced(why string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.fenced = why
}

func (b *statusBoard) setOutlook(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.outlook = s
}

func (b *statusBoard) setDemoting(id uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.demoting = id
}

// setProgress records the actor's latest action for its epoch.
func (b *statusBoard) setProgress(p api.Progress) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.progress[p.Epoch] = p
}

// progressOf is the actor's latest action for epoch, nil when none.
func (b *statusBoard) progressOf(epoch uint64) *api.Progress {
	b.mu.Lock()
	defer b.mu.Unlock()
	p, ok := b.progress[epoch]
	if !ok {
		return nil
	}
	return &p
}

func (b *statusBoard) view() boardView {
	b.mu.Lock()
	defer b.mu.Unlock()
	return boardView{phase: b.phase, acting: b.acting, fenced: b.fenced, outlook: b.outlook, demoting: b.demoting}
}

// noteState remembers s as the state last logged, and says what it was.
func (b *statusBoard) noteState(s api.FailoverState) (prev api.FailoverState) {
	b.mu.Lock()
	defer b.mu.Unlock()
	prev, b.last = b.last, s
	return prev
}
