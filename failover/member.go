package failover

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// member is this node's Raft member as the other parts see it: who the
// coordinator is (the Raft leader), whether the local log is current, and
// the one path by which entries are committed. It holds no state of its
// own besides the running member, set once when the node joins.
type member struct {
	fsm       *FSM
	timeout   time.Duration // failover.command_timeout: how long a commit may take
	heartbeat time.Duration // raft's heartbeat timeout
	now       func() time.Time
	node      atomic.Pointer[raftNode]
	caught    atomic.Bool // caughtUp has held once
	replay    atomic.Bool // replayed has held once
}

func newMember(fsm *FSM, timeout, heartbeat time.Duration, now func() time.Time) *member {
	return &member{fsm: fsm, timeout: timeout, heartbeat: heartbeat, now: now}
}

// raft is the running member, nil before the node joins.
func (m *member) raft() *raft.Raft {
	if n := m.node.Load(); n != nil {
		return n.r
	}
	return nil
}

// leads tells whether this node is the coordinator.
func (m *member) leads() bool {
	r := m.raft()
	return r != nil && r.State() == raft.Leader
}

// coordinator is the Raft leader's ID, "" when none is known.
func (m *member) coordinator() string {
	r := m.raft()
	if r == nil {
		return ""
	}
	_, id := r.LeaderWithID()
	return string(id)
}

// ready tells whether this node may act on what it has applied: it hears
// from a coordinator, so its log is current, and it has applied the
// entries its log held when it started. Hearing a coordinator is not
// enough after a restart: the FSM then replays the log entry by entry,
// and for a moment shows the old state of an entry not applied yet (the
// start of a switchover that later entries ended).
func (m *member) ready() bool {
	r := m.raft()
	if r == nil {
		return false
	}
	if r.State() == raft.Leader {
		return m.replayed()
	}
	addr, _ := r.LeaderWithID()
	return addr != "" && m.now().Sub(r.LastContact()) < 2*m.heartbeat && m.replayed()
}

// replayed tells whether the FSM has applied the last command its log held
// after its snapshot when this node started (raft's own AppliedIndex runs
// ahead of the FSM: it counts the entries handed to it), or that entry is
// gone: a newer snapshot covers it, or a new coordinator replaced it.
func (m *member) replayed() bool {
	if m.replay.Load() {
		return true
	}
	n := m.node.Load()
	if n == nil {
		return false
	}
	if to := n.replayTo; to.Index != 0 && m.fsm.AppliedIndex() < to.Index && n.logs != nil {
		var l raft.Log
		if err := n.logs.GetLog(to.Index, &l); err == nil && l.Term == to.Term && l.Type == raft.LogCommand {
			return false
		}
	}
	m.replay.Store(true)
	return true
}

// caughtUp tells whether this node has applied every deposition it applied
// before it started: its log held none after its snapshot, or it has been
// current since (it heard a coordinator and had applied everything its log
// held). A restarted node applies the entries after its last snapshot only
// then, so until then it may not have applied a deposition it had applied
// before. Before it joins, its log is unread.
func (m *member) caughtUp() bool {
	if m.caught.Load() {
		return true
	}
	n := m.node.Load()
	if n == nil {
		return false
	}
	if n.deposeAhead && (!m.ready() || n.r.AppliedIndex() < n.r.LastIndex()) {
		return false
	}
	m.caught.Store(true)
	return true
}

// ErrNotLeader is returned by the coordinator-only operations of a node
// that does not lead the Raft group.
var ErrNotLeader = errors.New("this node does not lead the raft group")

// commit stamps e with this code's EntryVersion, proposes it through Raft
// and waits until it is applied here; the FSM's refusal (a stale epoch)
// comes back as the error.
func (m *member) commit(e Entry) error {
	r := m.raft()
	if r == nil || r.State() != raft.Leader {
		return ErrNotLeader
	}
	if err := r.VerifyLeader().Error(); err != nil {
		return fmt.Errorf("verify leadership: %w", err)
	}
	e.Version = EntryVersion
	f := r.Apply(e.Encode(), m.timeout)
	if err := f.Error(); err != nil {
		return fmt.Errorf("commit through raft: %w", err)
	}
	if err, _ := f.Response().(error); err != nil {
		return err
	}
	return nil
}
