package failover

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/pgquorum/pgquorum/api"
)

// sim is a Raft group of real hashicorp/raft members over raft's in-memory
// transport, and the faults injected into it: directed links cut and
// restored, members crashed and restarted on the stores they had.
type sim struct {
	t       *testing.T
	seed    uint64
	rng     *rand.Rand // the fault schedule: used by the test goroutine only
	members []*simMember
	conf    raft.Configuration
	links   [][]bool // links[i][j]: i's messages reach j
	ledger  *ledger
	log     *tailLog
	history []string // the steps taken, for a failure's message

	statsMu sync.Mutex // the proposers count into stats too
	stats   simStats
}

// simMember is one member: its stores outlive its incarnations; each
// incarnation has its own raft, transport and FSM, as a restarted pgquorum
// has.
type simMember struct {
	id    raft.ServerID
	addr  raft.ServerAddress
	logs  *raft.InmemStore // log and stable store
	snaps *raft.InmemSnapshotStore

	incarnation int
	trans       *raft.InmemTransport // nil while down; the test goroutine's only

	mu  sync.Mutex // the proposers read the incarnation too
	r   *raft.Raft
	fsm *FSM    // kept while down: the state the member had
	ctl *member // the real commit path, over r and fsm
}

func (m *simMember) current() (*raft.Raft, *FSM, *member) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.r, m.fsm, m.ctl
}

func newSim(t *testing.T, seed uint64, size int) *sim {
	s := &sim{t: t, seed: seed, rng: rand.New(rand.NewPCG(seed, 0x5eed)), ledger: newLedger(), log: &tailLog{}}
	for i := range size {
		m := &simMember{id: raft.ServerID(fmt.Sprintf("n%d", i+1)), addr: raft.ServerAddress(fmt.Sprintf("mem-n%d", i+1)),
			logs: raft.NewInmemStore(), snaps: raft.NewInmemSnapshotStore()}
		s.members = append(s.members, m)
		s.conf.Servers = append(s.conf.Servers, raft.Server{Suffrage: raft.Voter, ID: m.id, Address: m.addr})
		s.links = append(s.links, make([]bool, size))
		for j := range size {
			s.links[i][j] = true
		}
	}
	return s
}

// config is the package's own raft configuration for 50 ms heartbeats
// (lease 25 ms, commit 12.5 ms), with snapshots small and frequent so that
// lagging and restarted members catch up by InstallSnapshot and Restore.
func (s *sim) config(id raft.ServerID) *raft.Config {
	o := RaftOptions{Self: string(id), HeartbeatTimeout: 50 * time.Millisecond, ElectionTimeout: 50 * time.Millisecond, LogOutput: s.log}
	cfg := o.config()
	cfg.SnapshotThreshold = 16
	cfg.SnapshotInterval = 100 * time.Millisecond
	cfg.TrailingLogs = 8
	return cfg
}

// start brings member i up on its stores, with a new transport and an empty
// FSM; the first incarnation bootstraps the group, as openRaft does.
func (s *sim) start(i int) {
	m := s.members[i]
	m.incarnation++
	_, trans := raft.NewInmemTransport(m.addr)
	fsm := NewFSM()
	rec := &recordingFSM{FSM: fsm, who: fmt.Sprintf("%s#%d", m.id, m.incarnation), l: s.ledger}
	r, err := raft.NewRaft(s.config(m.id), rec, m.logs, m.logs, m.snaps, trans)
	if err != nil {
		s.fail("start %s: %v", m.id, err)
	}
	if m.incarnation == 1 {
		if err := r.BootstrapCluster(s.conf).Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			s.fail("bootstrap %s: %v", m.id, err)
		}
	}
	ctl := newMember(fsm, 500*time.Millisecond, 50*time.Millisecond, time.Now)
	ctl.node.Store(&raftNode{r: r})
	m.mu.Lock()
	m.r, m.fsm, m.ctl = r, fsm, ctl
	m.mu.Unlock()
	m.trans = trans
	s.wire()
}

// crash stops member i: first its links, as a dead process answers nothing,
// then raft. Its stores and last FSM are kept.
func (s *sim) crash(i int) {
	m := s.members[i]
	m.trans.DisconnectAll() // it sends nothing more
	m.trans = nil
	s.wire() // and nothing reaches it
	r, _, _ := m.current()
	if err := r.Shutdown().Error(); err != nil {
		s.fail("shut %s down: %v", m.id, err)
	}
	m.mu.Lock()
	m.r, m.ctl = nil, nil
	m.mu.Unlock()
}

func (s *sim) shutdown() {
	for _, m := range s.members {
		if r, _, _ := m.current(); r != nil {
			_ = r.Shutdown().Error()
		}
	}
}

// wire makes the transports match the links: i reaches j when both are up
// and the link is.
func (s *sim) wire() {
	for i, a := range s.members {
		for j, b := range s.members {
			switch {
			case i == j || a.trans == nil:
			case b.trans != nil && s.links[i][j]:
				a.trans.Connect(b.addr, b.trans)
			default:
				a.trans.Disconnect(b.addr)
			}
		}
	}
}

// step injects one fault, or heals, or lets time pass; and lets time pass
// after it, up to 60 ms, so that raft reacts.
func (s *sim) step() {
	n := len(s.members)
	up, down := s.upDown()
	var what string
	switch p := s.rng.IntN(100); {
	case p < 30:
		what = "wait"
	case p < 42: // a random split in two sides; it replaces the cuts before it
		side := make([]int, n)
		for i := range side {
			side[i] = s.rng.IntN(2)
		}
		side[1+s.rng.IntN(n-1)] = 1 - side[0] // both sides have a member
		s.setLinks(func(i, j int) bool { return side[i] == side[j] })
		s.stats.partitions++
		what = fmt.Sprintf("partition %v", side)
	case p < 52:
		k := s.rng.IntN(n)
		s.setLinks(func(i, j int) bool { return (i == k) == (j == k) })
		s.stats.isolations++
		what = fmt.Sprintf("isolate %s", s.members[k].id)
	case p < 62:
		i, j := s.rng.IntN(n), s.rng.IntN(n)
		if i == j {
			what = "wait"
			break
		}
		s.links[i][j] = false
		s.wire()
		s.stats.oneWayCuts++
		what = fmt.Sprintf("cut %s->%s", s.members[i].id, s.members[j].id)
	case p < 77:
		s.setLinks(func(int, int) bool { return true })
		s.stats.heals++
		what = "heal links"
	case p < 87 && len(down) < (n-1)/2: // a minority at most is down at a time
		k := up[s.rng.IntN(len(up))]
		s.crash(k)
		s.stats.crashes++
		what = fmt.Sprintf("crash %s", s.members[k].id)
	case p < 97 && len(down) > 0:
		k := down[s.rng.IntN(len(down))]
		s.start(k)
		s.stats.restarts++
		what = fmt.Sprintf("restart %s", s.members[k].id)
	case p >= 97: // every member at once: only the stores remain
		for _, k := range up {
			s.crash(k)
		}
		for k := range s.members {
			s.start(k)
		}
		s.stats.crashes += len(up)
		s.stats.restarts += n
		what = "restart all"
	default:
		what = "wait"
	}
	pause := time.Duration(s.rng.IntN(60)) * time.Millisecond
	if what == "wait" {
		pause = time.Duration(20+s.rng.IntN(130)) * time.Millisecond
	}
	s.history = append(s.history, fmt.Sprintf("%s, %s", what, pause))
	s.stats.steps++
	time.Sleep(pause) // time for raft to react: the invariants must hold whenever they are checked
}

func (s *sim) lastStep() string { return s.history[len(s.history)-1] }

func (s *sim) upDown() (up, down []int) {
	for i, m := range s.members {
		if m.trans != nil {
			up = append(up, i)
		} else {
			down = append(down, i)
		}
	}
	return up, down
}

func (s *sim) setLinks(reach func(i, j int) bool) {
	for i := range s.links {
		for j := range s.links[i] {
			s.links[i][j] = reach(i, j)
		}
	}
	s.wire()
}

// heal restores every link and restarts every member that is down.
func (s *sim) heal() {
	_, down := s.upDown()
	for _, k := range down {
		s.start(k)
		s.stats.restarts++
	}
	s.setLinks(func(int, int) bool { return true })
	s.history = append(s.history, "heal all")
}

// coordinatorsPerMember is how many coordinators each member runs. The
// daemon runs one; a second one per member, its rounds overlapping the
// first's, makes proposals for one epoch race often enough to test the
// FSM's refusal of stale epochs through raft. With one per member, a stale
// proposal needs a leader change in the middle of a round: in a trial of
// the eight seeds it happened once.
const coordinatorsPerMember = 2

// propose is coordinator c of member i: whenever its raft believes it
// leads, it proposes the next epoch after its FSM's, naming a random member,
// through Controller.commit as the real coordinator does.
func (s *sim) propose(ctx context.Context, i, c int) {
	rng := rand.New(rand.NewPCG(s.seed, uint64(i*coordinatorsPerMember+c)))
	m := s.members[i]
	for seq := 0; ; seq++ {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Duration(2+rng.IntN(8)) * time.Millisecond):
		}
		r, fsm, ctl := m.current()
		if r == nil || r.State() != raft.Leader {
			continue
		}
		epoch := fsm.State().Epoch + 1
		// As in Controller.round: the state is read at the start of the
		// round, and the decision committed after the reports are gathered.
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Duration(rng.IntN(60)) * time.Millisecond):
		}
		k := rng.IntN(len(s.members))
		d := api.Decision{Epoch: epoch, At: t0.Add(time.Duration(seq) * time.Millisecond),
			Primary: string(s.members[k].id), PrimaryID: k + 1, Reason: fmt.Sprintf("proposal %d of %s's coordinator %d", seq, m.id, c)}
		err := ctl.commit(decisionEntry(d))
		s.statsMu.Lock()
		s.stats.proposals++
		switch {
		case err == nil:
			s.stats.committed++
		case errors.Is(err, ErrStaleEpoch):
			s.stats.stale++
		case errors.Is(err, ErrNotLeader), errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost),
			errors.Is(err, raft.ErrRaftShutdown), errors.Is(err, raft.ErrLeadershipTransferInProgress):
			s.stats.lostLeadership++
		default:
			s.stats.otherErrors++
			fmt.Fprintf(s.log, "proposal %d of %s's coordinator %d: %v\n", seq, m.id, c, err)
		}
		s.statsMu.Unlock()
	}
}

// tailLog keeps the last lines of raft's log, for a failure's message.
type tailLog struct {
	mu    sync.Mutex
	lines []string
}

var _ io.Writer = (*tailLog)(nil)

func (l *tailLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, strings.TrimRight(string(p), "\n"))
	if len(l.lines) > 400 {
		l.lines = append([]string(nil), l.lines[200:]...)
	}
	return len(p), nil
}

func (l *tailLog) tail() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines[max(0, len(l.lines)-40):], "\n")
}
