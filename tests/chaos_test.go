//go:build chaos

package tests

// The fault harness (make chaos, issue 13): a real three-node cluster
// failing over by itself (fence: stop, auto_rejoin), its nodes on their own
// addresses and OS users so that partitions can be one-way, under load:
// several writers through real HAProxy, a poller on every /state, a reader
// of HAProxy's read-write servers. Faults drawn from a seed
// (tests/chaos) are injected one at a time or in pairs; after each heals,
// the cluster must converge (one primary answering 200 and taking the
// writes through HAProxy, alone UP there, every standby streaming from it)
// within chaos.ConvergeBound. At the end the history is checked and a table
// per fault class printed (lines starting "CHAOS| "). Knobs, all optional:
// CHAOS_SEED (replays a run's schedule; default: from the clock, printed),
// CHAOS_DURATION (default 30m), CHAOS_MIN_FAULTS (go on past the duration
// until this many faults, up to three times the duration), CHAOS_FAULTS (at
// most this many events),
// CHAOS_CLASSES (comma-separated classes), CHAOS_PAIRS (share of paired
// events, default 0.3), CHAOS_SYNC (failover.synchronous: off, on or
// strict; with on or strict a lost acknowledged write the mode promised to
// keep fails the run), CHAOS_LOCATIONS (nodes per location: 3, or 3+2 for
// three in dc1 and two in dc2), CHAOS_LOSS (packet-loss's percent, lo-hi,
// default 5-30).

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/config"
	"github.com/pgquorum/pgquorum/consensus"
	"github.com/pgquorum/pgquorum/internal/lab"
	"github.com/pgquorum/pgquorum/tests/chaos"
)

// chaosKeys: failoverKeys (grace 1 s, cooldown 10 s), and a cluster that
// heals itself: a replaced primary is fenced and rejoins.
var chaosKeys = withKeys(map[string]string{
	"failover.fence":       api.FenceStop,
	"failover.fence_after": "3s",
	"failover.auto_rejoin": "true",
})

const (
	chaosWriters     = 3                     // concurrent writers through HAProxy
	chaosWriteEvery  = 50 * time.Millisecond // per writer
	chaosRouterEvery = 50 * time.Millisecond // reads of HAProxy's show stat
	chaosStepTimeout = 45 * time.Second      // bound on one fault's own action (a switchover)
	chaosRWBackend   = "postgres_rw"         // pgquorum haproxy-config's read-write backend
	chaosGrace       = 1 * time.Second       // failoverKeys' failover.grace
	chaosRepairWait  = chaos.ConvergeBound   // after a repair, before the run gives up
	// chaosHold is how long a convergence must last to count: past
	// failover.fence_after, so that a fence or a decision that follows the
	// heal late is the event's, not the next one's.
	chaosHold       = 3 * time.Second
	chaosCheckEvery = 250 * time.Millisecond // convergence checks
	// chaosSyncEvery is how often each node's synchronous status is read
	// (CHAOS_SYNC on or strict): a write is counted under RPO 0 only
	// between two readings, chaos.MaxSyncGap apart at most.
	chaosSyncEvery = 100 * time.Millisecond
	// chaosWALDisk is each node's WAL disk when wal-disk-full is drawn
	// (lab.Options.WALDisk): the lab's WAL settings for it keep pg_wal
	// under half of it.
	chaosWALDisk = 256 << 20
	// chaosWALSwitches bounds the segment switches of one wal-disk-full:
	// each makes the target need a new segment unless a recycled one is
	// left (the lab keeps at most max_wal_size, 4 of them, recycled), and
	// costs the primary a segment that the slot of a standby which
	// receives nothing holds: 6 × 16 MB fit beside its WAL.
	chaosWALSwitches = 6
)

type chaosConfig struct {
	seed      uint64
	duration  time.Duration
	minFaults int
	maxEvents int
	profile   chaos.Profile
	sync      api.SyncMode
	layout    chaos.Layout
}

func chaosFromEnv(t *testing.T) chaosConfig {
	t.Helper()
	cfg := chaosConfig{seed: uint64(time.Now().UnixNano() % 1_000_000), duration: 30 * time.Minute,
		profile: chaos.Profile{PairShare: 0.3, Grace: chaosGrace}}
	var err error
	if s := os.Getenv("CHAOS_SEED"); s != "" {
		if cfg.seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("CHAOS_SEED=%q: %v", s, err)
		}
	}
	if s := os.Getenv("CHAOS_DURATION"); s != "" {
		if cfg.duration, err = time.ParseDuration(s); err != nil || cfg.duration <= 0 || cfg.duration > 6*time.Hour {
			t.Fatalf("CHAOS_DURATION=%q: want a duration up to 6h", s)
		}
	}
	if s := os.Getenv("CHAOS_FAULTS"); s != "" {
		if cfg.maxEvents, err = strconv.Atoi(s); err != nil || cfg.maxEvents < 1 {
			t.Fatalf("CHAOS_FAULTS=%q: want a positive count", s)
		}
	}
	if s := os.Getenv("CHAOS_MIN_FAULTS"); s != "" {
		if cfg.minFaults, err = strconv.Atoi(s); err != nil || cfg.minFaults < 0 {
			t.Fatalf("CHAOS_MIN_FAULTS=%q: want a count", s)
		}
	}
	if s := os.Getenv("CHAOS_PAIRS"); s != "" {
		if cfg.profile.PairShare, err = strconv.ParseFloat(s, 64); err != nil || cfg.profile.PairShare < 0 || cfg.profile.PairShare > 1 {
			t.Fatalf("CHAOS_PAIRS=%q: want a share from 0 to 1", s)
		}
	}
	if cfg.profile.Loss, err = chaos.ParseLoss(os.Getenv("CHAOS_LOSS")); err != nil {
		t.Fatal(err)
	}
	if cfg.sync, err = chaos.ParseSync(os.Getenv("CHAOS_SYNC")); err != nil {
		t.Fatal(err)
	}
	if cfg.layout, err = chaos.ParseLayout(os.Getenv("CHAOS_LOCATIONS")); err != nil {
		t.Fatal(err)
	}
	if cfg.profile.Classes, err = chaos.ParseClasses(os.Getenv("CHAOS_CLASSES"), cfg.layout.Locations() > 1); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// chaosCluster is the rig's nodes and keys for cfg: chaosKeys with
// failover.synchronous; in two locations, the second one's standbys are
// never promoted (failover.locations names the first only, as by default)
// and, with synchronous replication, never synchronous: a synchronous
// standby must be promotable (docs/failover.md), or an election waits for
// a member it cannot promote.
func chaosCluster(cfg chaosConfig) ([]lab.NodeSpec, map[string]string) {
	names, locations := cfg.layout.Nodes()
	specs := make([]lab.NodeSpec, len(names))
	for i := range names {
		specs[i] = lab.NodeSpec{Name: names[i], Location: locations[i]}
	}
	keys := map[string]string{}
	for k, v := range chaosKeys {
		keys[k] = v
	}
	if cfg.sync != api.SyncOff {
		keys["failover.synchronous"] = string(cfg.sync)
		if cfg.layout.Locations() > 1 {
			keys["failover.locations"] = locations[0]
			keys["failover.synchronous_locations"] = locations[0]
		}
	}
	return specs, keys
}

// chaosRig is the cluster under faults and what watches it.
type chaosRig struct {
	t      *testing.T
	c      *lab.Cluster
	poller *lab.StatePoller
	w      *chaosWrites
	rw     int // HAProxy's read-write port, kept across its restarts
	// stateFile is HAProxy's server-state file (pgquorum haproxy-config
	// --server-state-file), kept as scripts/haproxy's drop-in keeps it.
	stateFile string

	mu      sync.Mutex
	hap     *lab.HAProxy // the running HAProxy, replaced by a restart
	samples []chaos.RouterSample
	syncs   []chaos.SyncReading // with CHAOS_SYNC on or strict
	other   []chaos.Finding     // what a fault's own check found (wipe-raft-dir)
	stop    chan struct{}
	done    sync.WaitGroup
}

// chaosWrites are concurrent writers through HAProxy's read-write
// listener, each on a new connection per write, sharing one sequence.
type chaosWrites struct {
	cancel context.CancelFunc
	done   sync.WaitGroup
	seq    atomic.Int64
	mu     sync.Mutex
	writes []lab.Write
}

func startChaosWrites(port int) *chaosWrites {
	ctx, cancel := context.WithCancel(context.Background())
	w := &chaosWrites{cancel: cancel}
	for range chaosWriters {
		w.done.Add(1)
		go func() {
			defer w.done.Done()
			tick := time.NewTicker(chaosWriteEvery)
			defer tick.Stop()
			for {
				x := lab.WriteOnce(ctx, port, w.seq.Add(1))
				if ctx.Err() != nil {
					return
				}
				w.mu.Lock()
				w.writes = append(w.writes, x)
				w.mu.Unlock()
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
			}
		}()
	}
	return w
}

func (w *chaosWrites) stopWriting() {
	w.cancel()
	w.done.Wait()
}

func (w *chaosWrites) all() []lab.Write {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.writes)
}

// lastAck is the latest acknowledged write.
func (w *chaosWrites) lastAck() (lab.Write, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := len(w.writes) - 1; i >= 0; i-- {
		if w.writes[i].Port != 0 {
			return w.writes[i], true
		}
	}
	return lab.Write{}, false
}

// every runs read every d until the rig stops, in its own goroutine.
func (r *chaosRig) every(d time.Duration, read func()) {
	r.done.Add(1)
	go func() {
		defer r.done.Done()
		tick := time.NewTicker(d)
		defer tick.Stop()
		for {
			select {
			case <-r.stop:
				return
			case <-tick.C:
			}
			read()
		}
	}()
}

// readRouter reads HAProxy's read-write servers once; a read that fails
// (HAProxy restarting) is no sample.
func (r *chaosRig) readRouter() {
	r.mu.Lock()
	h := r.hap
	r.mu.Unlock()
	up, err := rwUp(h)
	if err != nil {
		return
	}
	r.mu.Lock()
	r.samples = append(r.samples, chaos.RouterSample{At: time.Now(), Up: up})
	r.mu.Unlock()
}

// rwUp returns the read-write servers HAProxy routes to: UP, or going
// down ("UP 1/2") but still UP.
func rwUp(h *lab.HAProxy) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	stats, err := h.Stats(ctx)
	if err != nil {
		return nil, err
	}
	var up []string
	for _, s := range stats {
		if s.Proxy == chaosRWBackend && strings.HasPrefix(s.Status, "UP") {
			up = append(up, s.Server)
		}
	}
	slices.Sort(up)
	return up, nil
}

// readSync reads n's synchronous status once; a request without an answer
// is a reading that says nothing.
func (r *chaosRig) readSync(n *lab.Node) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	sent := time.Now()
	var b api.StateBody
	_, err := n.GetJSON(ctx, api.PathState, &b)
	var s *api.SyncStatus
	if err == nil && b.Failover != nil {
		s = b.Failover.Synchronous
	}
	rd := chaos.ReadingOf(n.Name, sent, time.Now(), s)
	r.mu.Lock()
	r.syncs = append(r.syncs, rd)
	r.mu.Unlock()
}

// violation records what a fault's own check found.
func (r *chaosRig) violation(what string) {
	r.t.Logf("chaos: VIOLATION: %s", what)
	r.mu.Lock()
	r.other = append(r.other, chaos.Finding{Window: -1, At: time.Now(), What: what})
	r.mu.Unlock()
}

func (r *chaosRig) haproxy() *lab.HAProxy {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hap
}

// faultFor lets a fault last d: the fault itself, not a wait for something.
func faultFor(d time.Duration) { time.Sleep(d) }

// others are the nodes of c but n.
func others(c *lab.Cluster, n *lab.Node) []*lab.Node {
	var out []*lab.Node
	for _, x := range c.Nodes {
		if x != n {
			out = append(out, x)
		}
	}
	return out
}

// target resolves a fault's role against the current primary: any of its
// standbys, but a switchover's target is one of its location, the only
// ones that may be promoted.
func (r *chaosRig) target(f chaos.Fault, primary *lab.Node) *lab.Node {
	switch f.Role {
	case chaos.Primary:
		return primary
	case chaos.Standby:
		s := others(r.c, primary)
		if f.Class == chaos.Switchover {
			s = slices.DeleteFunc(s, func(n *lab.Node) bool { return n.Location != primary.Location })
		}
		return s[f.Pick%len(s)]
	}
	return nil
}

// locations splits the nodes into the first location's and the others'.
func (r *chaosRig) locations() (first, rest []*lab.Node) {
	for _, n := range r.c.Nodes {
		if n.Location == r.c.Nodes[0].Location {
			first = append(first, n)
		} else {
			rest = append(rest, n)
		}
	}
	return first, rest
}

// inject runs one fault until it heals; what went wrong injecting it is
// logged, not failed: a fault on a node another fault already took down
// may have nothing to act on.
func (r *chaosRig) inject(f chaos.Fault, primary *lab.Node) {
	ctx, cancel := context.WithTimeout(context.Background(), chaosStepTimeout)
	defer cancel()
	n := r.target(f, primary)
	var err error
	switch f.Class {
	case chaos.KillPostmaster:
		if err = n.KillPostmaster(); err == nil && n != primary {
			faultFor(f.Duration)
			err = n.StartPG(ctx)
		}
	case chaos.StallShort, chaos.StallLong:
		var resume func()
		if resume, err = n.PauseNode(); err == nil {
			faultFor(f.Duration)
			resume()
		}
	case chaos.StopQuorum:
		pid := n.QuorumPID()
		if pid == 0 {
			err = fmt.Errorf("%s: no pgquorum", n.Name)
			break
		}
		_ = syscall.Kill(pid, syscall.SIGSTOP)
		faultFor(f.Duration)
		_ = syscall.Kill(pid, syscall.SIGCONT)
	case chaos.RestartQuorum:
		n.KillQuorum()
		faultFor(f.Duration)
		err = n.StartQuorum()
	case chaos.RestartNoState:
		err = r.restartWithoutState(n, f.Duration)
	case chaos.RestartProfile:
		err = r.restartWithProfile(n, f)
	case chaos.PartitionFull, chaos.PartitionToward, chaos.PartitionFrom:
		switch f.Class {
		case chaos.PartitionFull:
			err = r.c.Partition(ctx, []*lab.Node{n}, others(r.c, n))
		case chaos.PartitionToward:
			err = r.c.PartitionOneWay(ctx, others(r.c, n), []*lab.Node{n})
		default:
			err = r.c.PartitionOneWay(ctx, []*lab.Node{n}, others(r.c, n))
		}
		faultFor(f.Duration)
		err = errors.Join(err, r.c.Heal(ctx))
	case chaos.PacketLoss:
		err = r.c.Loss(ctx, n, others(r.c, n), f.Loss)
		faultFor(f.Duration)
		err = errors.Join(err, r.c.Heal(ctx))
	case chaos.PartitionLocation:
		first, rest := r.locations()
		err = r.c.Partition(ctx, first, rest)
		faultFor(f.Duration)
		err = errors.Join(err, r.c.Heal(ctx))
	case chaos.WipeRaft:
		err = r.wipeRaft(n, f.Duration)
	case chaos.CPUHog:
		err = hogCPU(f.Duration)
	case chaos.HAProxyRestart:
		err = r.restartHAProxy(ctx, f.Duration, f.Pick%2 == 1) // Pick: drawn from the seed, unused by machine faults
	case chaos.WALDiskFull:
		err = r.walDiskFull(ctx, n, primary, f.Duration)
	case chaos.Switchover:
		out, code := r.switchover(ctx, n, primary)
		r.t.Logf("chaos: switchover to %s: exit %d: %s", n.Name, code, strings.TrimSpace(out))
	}
	if err != nil {
		r.t.Logf("chaos: %v: %v", f, err)
	}
}

// wipeRaft stops n's pgquorum, removes its failover.raft_dir (the lab's
// default, <consensus.state_dir>/raft: lab.Node.RaftDir) and, d later, starts it again. The
// start must be refused, naming pgquorum raft-recover: a member that lost
// its votes could vote twice in a term. A start that succeeds, or a
// refusal that names no recovery, is a violation. Then it recovers as
// docs/operations.md ("A lost raft_dir") says: pgquorum stopped on the
// other nodes, "pgquorum raft-recover --voters <the other nodes>" on each
// of them, started again; the marker deleted and n started, which the
// group adds back as a new member.
func (r *chaosRig) wipeRaft(n *lab.Node, d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var errs []error
	if err := n.StopQuorum(); err != nil {
		errs = append(errs, err)
	}
	raftDir := n.RaftDir()
	marker := filepath.Join(filepath.Dir(raftDir), "."+filepath.Base(raftDir)+".member") // beside raft_dir (failover.memberMarker)
	if _, err := os.Stat(marker); err != nil {
		errs = append(errs, fmt.Errorf("%s: no membership marker before the wipe: %w", n.Name, err))
	}
	if err := os.RemoveAll(raftDir); err != nil {
		return errors.Join(append(errs, err)...)
	}
	faultFor(d)
	// pgquorum answers HTTP before it opens raft_dir: its start counts
	// once its log says it joined the group, or why it will not.
	const joined, refused = "joined the raft group", "pgquorum raft-recover"
	earlierJoined, earlierRefused := len(n.LogLines(joined)), len(n.LogLines(refused)) // the log spans the node's earlier runs
	startErr := n.StartQuorum()
	var outcome string
	waitErr := lab.WaitFor(ctx, 30*time.Second, n.Name+"'s pgquorum to join the raft group or refuse", func(context.Context) error {
		if l := n.LogLines(refused)[earlierRefused:]; len(l) > 0 {
			outcome = "refused: " + l[len(l)-1]
			return nil
		}
		if l := n.LogLines(joined)[earlierJoined:]; len(l) > 0 {
			outcome = "joined: " + l[len(l)-1]
			return nil
		}
		return fmt.Errorf("neither yet (start: %v)", startErr)
	})
	switch {
	case waitErr != nil:
		r.violation(fmt.Sprintf("%s's pgquorum, its raft_dir wiped, neither joined the raft group nor named the recovery: %v", n.Name, waitErr))
	case strings.HasPrefix(outcome, "joined"):
		r.violation(fmt.Sprintf("%s's pgquorum started on an empty raft_dir, its membership marker present: %s", n.Name, outcome))
	default:
		r.t.Logf("chaos: %s's pgquorum on a wiped raft_dir %s", n.Name, outcome)
	}
	n.KillQuorum()                                // the refused process is gone; this drops the lab's handle on it
	if err := os.RemoveAll(raftDir); err != nil { // what a start that was not refused wrote
		errs = append(errs, err)
	}
	rest := others(r.c, n)
	names := make([]string, len(rest))
	for i, o := range rest {
		names[i] = o.Name
		if err := o.StopQuorum(); err != nil {
			errs = append(errs, err)
		}
	}
	for _, o := range rest {
		out, err := o.QuorumCommand(ctx, "raft-recover", "--config", o.QuorumConfigFile(), "--voters", strings.Join(names, ","))
		r.t.Logf("chaos: %s raft-recover --voters %s: %s", o.Name, strings.Join(names, ","), strings.TrimSpace(out))
		if err != nil {
			errs = append(errs, err)
		}
	}
	for _, o := range rest {
		if err := o.StartQuorum(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := os.Remove(marker); err != nil && !os.IsNotExist(err) {
		errs = append(errs, err)
	}
	if err := n.StartQuorum(); err != nil {
		return errors.Join(append(errs, fmt.Errorf("%s started after the recovery: %w", n.Name, err))...)
	}
	// Back in the group: it hears the coordinator and has the committed
	// epoch the others have, which only the leader's log gives it.
	err := lab.WaitFor(ctx, chaos.ConvergeBound, n.Name+" to rejoin the raft group", func(ctx context.Context) error {
		var mine, theirs api.StateBody
		if _, err := n.GetJSON(ctx, api.PathState, &mine); err != nil {
			return err
		}
		if _, err := rest[0].GetJSON(ctx, api.PathState, &theirs); err != nil {
			return err
		}
		if f := mine.Failover; f == nil || f.Coordinator == "" || theirs.Failover == nil || f.Epoch != theirs.Failover.Epoch {
			return fmt.Errorf("%s: %+v; %s: %+v", n.Name, f, rest[0].Name, theirs.Failover)
		}
		return nil
	})
	if err != nil {
		r.violation(fmt.Sprintf("%s did not rejoin the raft group after the documented recovery: %v", n.Name, err))
	} else {
		r.t.Logf("chaos: %s is back in the raft group: it hears a coordinator and has the others' epoch", n.Name)
	}
	return errors.Join(errs...)
}

// walDiskFull fills n's WAL disk and has the primary switch WAL segments
// until n needs a segment it cannot create (pushWAL), keeps it full for
// d from the fill, then frees it. A standby whose postmaster exited
// meanwhile is started again, as after a kill; a primary is left to
// pgquorum, as after a kill: whether it restarts by itself, is fenced, or
// rejoins is what the run checks.
func (r *chaosRig) walDiskFull(ctx context.Context, n, primary *lab.Node, d time.Duration) error {
	filled := time.Now()
	if _, err := n.FillWALDisk(); err != nil {
		return errors.Join(err, n.FreeWALDisk())
	}
	r.t.Logf("chaos: %s's WAL disk full: %s", n.Name, r.pushWAL(ctx, n, primary))
	faultFor(d - time.Since(filled))
	err := n.FreeWALDisk()
	running := n.PostmasterRunning()
	r.t.Logf("chaos: %s's WAL disk freed %s after the fill; its postmaster runs: %v", n.Name, time.Since(filled).Round(time.Millisecond), running)
	if n != primary && !running {
		err = errors.Join(err, n.StartPG(ctx))
	}
	return err
}

// pushWAL makes n need a new WAL segment while its disk is full: the
// primary ends its segment and commits in the next (lab.SwitchWAL), up
// to chaosWALSwitches times, because each segment recycled earlier still
// takes a switch without new space. It says what it saw: the primary's
// commit failing (its PANIC), or the standby receiving nothing past the
// switch within a second (its WAL receiver failing to create the file).
func (r *chaosRig) pushWAL(ctx context.Context, n, primary *lab.Node) string {
	for i := 1; i <= chaosWALSwitches; i++ {
		lsn, err := primary.SwitchWAL(ctx)
		if err != nil {
			return fmt.Sprintf("switch %d on %s failed: %v (postmaster runs: %v)", i, primary.Name, err, primary.PostmasterRunning())
		}
		if n == primary {
			continue // a segment recycled earlier took it
		}
		var got int64
		err = lab.WaitFor(ctx, time.Second, "", func(ctx context.Context) error {
			at, err := n.ReceivedLSN(ctx)
			if err == nil {
				got = at
				if at < lsn {
					err = errors.New("behind")
				}
			}
			return err
		})
		if err != nil {
			return fmt.Sprintf("after switch %d on %s, %s received WAL to %X/%X only, not to %X/%X, within a second",
				i, primary.Name, n.Name, got>>32, uint32(got), lsn>>32, uint32(lsn))
		}
	}
	return fmt.Sprintf("still writing WAL after %d segment switches on %s", chaosWALSwitches, primary.Name)
}

// chaosLease is the vote lease of the rig's nodes: the lab's
// consensus.cache_ttl, 1 s, and a tenth (consensus.LeaseFor).
var chaosLease = consensus.LeaseFor(time.Second)

// restartWithoutState kills n's pgquorum, removes what its
// consensus.state_dir holds but the Raft directory (the vote lease record,
// the membership marker) and, d later, starts it again. With no record to
// honour, the new process must vouch for nobody, itself included, for one
// whole lease from its start (docs/quorum.md, "Restarts"): its "vote
// lease" line must name no holder and at least that lease to run. Two 200s
// that follow are the run's own check.
func (r *chaosRig) restartWithoutState(n *lab.Node, d time.Duration) error {
	n.KillQuorum()
	removed, err := n.RemoveQuorumState()
	if err != nil {
		return err
	}
	faultFor(d)
	l, err := r.startReadingLease(n)
	if err != nil {
		return err
	}
	r.t.Logf("chaos: %s's pgquorum started without %v: vote lease holder %q, %s to run", n.Name, removed, l.holder, l.remaining)
	if l.holder != "" || l.remaining < chaosLease-leaseSlack {
		r.violation(fmt.Sprintf("%s's pgquorum, started without its vote lease record, honours a lease of %q for %s: want nobody for %s",
			n.Name, l.holder, l.remaining, chaosLease))
	}
	return nil
}

// leaseFileName is the vote lease record in consensus.state_dir (serve's
// leaseFileName, in package main).
const leaseFileName = "vote-lease.json"

// leaseSlack is what a start may take between restoring its ballot and
// logging what is left of the lease: the two are one function call apart.
const leaseSlack = 50 * time.Millisecond

// profileKeys are the keys that run a node with profile instead of the
// rig's timings: every timing key the lab or failoverKeys set left out, so
// that the profile gives it (config.Profiles). consensus.router_hold stays
// the default profile's, which the rig's HAProxy (inter 300ms, fall 2)
// needs: the fast profile's 1 s is under its (2 × fall + 1) × inter, a
// configuration the documentation rules out, not a fault to try.
func profileKeys(profile string) map[string]string {
	keys := map[string]string{"failover.profile": profile,
		"consensus.router_hold": config.Profiles[chaos.ProfileDefault]["consensus.router_hold"]}
	for k := range config.Profiles[profile] {
		if _, ok := keys[k]; !ok {
			keys[k] = lab.Unset
		}
	}
	return keys
}

// restartWithProfile kills n's pgquorum and starts it f.Down later with
// f.Profile's timings; f.Duration later kills it again and starts it f.Down
// later with the rig's. Each start must honour every vote its predecessor
// may have given: one given as it was killed runs the predecessor's lease,
// the length its record holds, whatever the new process's own (issue 13,
// item 3: a restart with a shorter lease honoured too little). So the
// lease the new process logs must run at least until the kill plus the
// recorded length. Its ballot is restored between the start and the
// answer StartQuorum waits for; measured from that answer, the check can
// miss a lease honoured too short by less than the start took, never
// blame a right one.
func (r *chaosRig) restartWithProfile(n *lab.Node, f chaos.Fault) error {
	restart := func(keys map[string]string, what string) error {
		n.KillQuorum()
		killed := time.Now()
		rec, found, err := consensus.LeaseFile{Path: filepath.Join(n.StateDir(), leaseFileName),
			Owner: consensus.LeaseOwner{Node: n.Name, NodeID: n.ID, DataDir: n.DataDir()}}.Load()
		if err != nil {
			return fmt.Errorf("%s: read the vote lease record: %w", n.Name, err)
		}
		faultFor(f.Down)
		n.QuorumKeys = keys
		l, err := r.startReadingLease(n)
		if err != nil {
			return err
		}
		answered := time.Now()
		r.t.Logf("chaos: %s's pgquorum started with %s (lease %s), %s after the kill: recorded lease %s (found %v), holder %q, %s to run",
			n.Name, what, consensus.LeaseFor(l.ttl), answered.Sub(killed).Round(time.Millisecond), rec.Length, found, l.holder, l.remaining)
		if want := killed.Add(rec.Length).Sub(answered); found && l.remaining < want-leaseSlack {
			r.violation(fmt.Sprintf("%s's pgquorum, started with %s (lease %s) on a record of a %s lease %s after the kill, honours %s: want at least %s",
				n.Name, what, consensus.LeaseFor(l.ttl), rec.Length, answered.Sub(killed).Round(time.Millisecond), l.remaining, want.Round(time.Millisecond)))
		}
		return nil
	}
	if err := restart(profileKeys(f.Profile), "the "+f.Profile+" profile"); err != nil {
		// Not left on the other profile: the cluster converges on its own.
		n.KillQuorum()
		n.QuorumKeys = nil
		return errors.Join(err, n.StartQuorum())
	}
	faultFor(f.Duration)
	return restart(nil, "the rig's timings")
}

// startedLease is what a pgquorum's start logged of its vote lease.
type startedLease struct {
	holder    string
	remaining time.Duration
	ttl       time.Duration // its consensus.cache_ttl
}

// startReadingLease starts n's pgquorum and returns the vote lease its
// "vote lease" line logged (serve's newBallot, once the ballot is
// restored), with the consensus.cache_ttl its config file gives.
func (r *chaosRig) startReadingLease(n *lab.Node) (startedLease, error) {
	const leaseLine = `msg="vote lease" `
	earlier := len(n.LogLines(leaseLine)) // the log spans the node's earlier runs
	if err := n.StartQuorum(); err != nil {
		return startedLease{}, err
	}
	var l startedLease
	cfg, err := config.Load(config.NewViper(pflag.NewFlagSet("chaos", pflag.ContinueOnError)), n.QuorumConfigFile(), nil)
	if err != nil {
		return l, fmt.Errorf("%s: %w", n.Name, err)
	}
	l.ttl = cfg.CacheTTL
	// Logged before it answers HTTP, but read from its output by
	// another goroutine: waited for.
	var line string
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = lab.WaitFor(ctx, 10*time.Second, n.Name+"'s vote lease line", func(context.Context) error {
		if lines := n.LogLines(leaseLine)[earlier:]; len(lines) > 0 {
			line = lines[0]
			return nil
		}
		return fmt.Errorf("not logged yet")
	})
	if err != nil {
		return l, err
	}
	l.holder = logField(line, "holder")
	if l.remaining, err = time.ParseDuration(logField(line, "remaining")); err != nil {
		return l, fmt.Errorf("%s: %q: %w", n.Name, line, err)
	}
	return l, nil
}

// logField is the value of key in a log/slog text line, unquoted.
func logField(line, key string) string {
	_, rest, ok := strings.Cut(line, " "+key+"=")
	if !ok {
		return ""
	}
	if strings.HasPrefix(rest, `"`) {
		if v, err := strconv.QuotedPrefix(rest); err == nil {
			u, _ := strconv.Unquote(v)
			return u
		}
	}
	v, _, _ := strings.Cut(rest, " ")
	return v
}

// hogCPU runs two busy processes per core for d, then kills them by PID.
// They die with the test too (Pdeathsig).
func hogCPU(d time.Duration) error {
	var hogs []*exec.Cmd
	for range 2 * runtime.NumCPU() {
		cmd := exec.Command("sh", "-c", "while :; do :; done")
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			break
		}
		hogs = append(hogs, cmd)
	}
	faultFor(d)
	for _, h := range hogs {
		_ = h.Process.Kill()
		_ = h.Wait()
	}
	if len(hogs) == 0 {
		return fmt.Errorf("no CPU hog started")
	}
	return nil
}

// restartHAProxy restarts HAProxy as the systemd drop-in of
// scripts/haproxy does: the running HAProxy's server states are saved
// through its admin socket, reconciled with the config (ExecStop); it stops
// and stays down for d; "save-state.sh -i" rewrites the file for the start
// (ExecStartPre: a fresh file keeps the read-only listener's states, every
// read-write server DOWN); HAProxy starts on the same configuration and
// loads it. A cold restart (a crash, or a stop long ago) has no fresh file:
// nothing is saved and the old file is gone, so -i writes every server
// DOWN.
func (r *chaosRig) restartHAProxy(ctx context.Context, d time.Duration, cold bool) error {
	old := r.haproxy()
	cfg, err := os.ReadFile(old.Config)
	if err != nil {
		return err
	}
	r.t.Logf("chaos: haproxy restart, cold %v, down %s", cold, d)
	if cold {
		old.Stop()
		if err := os.Remove(r.stateFile); err != nil && !os.IsNotExist(err) {
			return err
		}
	} else {
		err := r.saveState(ctx, "-c", old.Config, old.Socket, r.stateFile)
		old.Stop()
		if err != nil {
			return err
		}
	}
	faultFor(d)
	if err := r.saveState(ctx, "-c", old.Config, "-i", "-a", "60", r.stateFile); err != nil {
		return err
	}
	h, err := r.c.StartHAProxy(ctx, string(cfg))
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.hap = h
	r.mu.Unlock()
	return nil
}

// saveState runs scripts/haproxy/save-state.sh with args and logs what it
// said and the read-write servers' saved srv_op_state (2 running, 0 DOWN).
func (r *chaosRig) saveState(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "sh", append([]string{saveStateScript}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("save-state.sh %s: %w: %s", strings.Join(args, " "), err, out)
	}
	state, err := os.ReadFile(r.stateFile)
	if err != nil {
		return err
	}
	var ops []string
	for _, l := range strings.Split(string(state), "\n") {
		if f := strings.Fields(l); len(f) >= 6 && f[1] == chaosRWBackend {
			ops = append(ops, f[3]+"="+f[5])
		}
	}
	r.t.Logf("chaos: save-state.sh %s: read-write srv_op_state %v; %s", strings.Join(args, " "), ops, strings.TrimSpace(string(out)))
	return nil
}

// switchover asks for a switchover to n, through the primary's pgquorum.
func (r *chaosRig) switchover(ctx context.Context, n, primary *lab.Node) (string, int) {
	out, err := exec.CommandContext(ctx, pgquorumBin, "switchover", "--to", n.Name, "--wait", "30s", "--url", primary.QuorumURL()).CombinedOutput()
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return string(out), exit.ExitCode()
		}
		return string(out) + err.Error(), -1
	}
	return string(out), 0
}

// converged returns the primary once the cluster has converged after
// healed: every pgquorum runs; exactly one node answers 200, the others
// 202, each streaming from it as its /cluster says; it is the primary of
// the latest committed decision; HAProxy has it alone UP for writes; and a
// write sent after healed was acknowledged by it.
func (r *chaosRig) converged(ctx context.Context, healed time.Time) (*lab.Node, error) {
	var primary *lab.Node
	for _, n := range r.c.Nodes {
		if n.QuorumPID() == 0 {
			return nil, fmt.Errorf("%s's pgquorum is not running", n.Name)
		}
		status, _, err := n.Get(ctx, api.PathState)
		if err != nil {
			return nil, fmt.Errorf("%s /state: %w", n.Name, err)
		}
		switch status {
		case 200:
			if primary != nil {
				return nil, fmt.Errorf("%s and %s both answer 200", primary.Name, n.Name)
			}
			primary = n
		case 202:
		default:
			return nil, fmt.Errorf("%s answers %d", n.Name, status)
		}
	}
	if primary == nil {
		return nil, fmt.Errorf("no node answers 200")
	}
	var cb api.ClusterBody
	if _, err := primary.GetJSON(ctx, api.PathCluster, &cb); err != nil {
		return nil, err
	}
	for _, cn := range cb.Nodes {
		if cn.Name == primary.Name {
			continue
		}
		if cn.Upstream != primary.Name || cn.Streaming == nil || !*cn.Streaming {
			return nil, fmt.Errorf("%s: upstream %q, streaming %v (%s)", cn.Name, cn.Upstream, cn.Streaming != nil && *cn.Streaming, cn.Reason)
		}
	}
	h, err := history(ctx, primary)
	if err != nil {
		return nil, err
	}
	if len(h.Decisions) == 0 || h.Decisions[0].Primary != primary.Name {
		return nil, fmt.Errorf("%s answers 200, but the latest decision is %+v", primary.Name, h.Decisions[:min(1, len(h.Decisions))])
	}
	up, err := rwUp(r.haproxy())
	if err != nil {
		return nil, err
	}
	if !slices.Equal(up, []string{primary.Name}) {
		return nil, fmt.Errorf("HAProxy read-write servers UP: %v, want only %s", up, primary.Name)
	}
	if w, ok := r.w.lastAck(); !ok || w.Port != primary.PGPort || w.Sent.Before(healed) {
		return nil, fmt.Errorf("no write sent after the heal acknowledged by %s yet", primary.Name)
	}
	return primary, nil
}

// waitConverged waits until the cluster has converged after healed
// within bound and stayed so for chaosHold, and returns its primary, when
// it converged and when the hold ended. It checks every chaosCheckEvery:
// pgquorum allows a client 10 requests a second on /cluster.
func (r *chaosRig) waitConverged(healed time.Time, bound time.Duration) (p *lab.Node, since, settled time.Time, err error) {
	tick := time.NewTicker(chaosCheckEvery)
	defer tick.Stop()
	deadline := time.Now().Add(bound + chaosHold)
	for ; ; <-tick.C {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		now, cerr := r.converged(ctx, healed)
		cancel()
		switch {
		case cerr != nil:
			if !since.IsZero() {
				r.t.Logf("chaos: converged on %s for %s, then: %v", p.Name, time.Since(since).Round(time.Millisecond), cerr)
			}
			since, err = time.Time{}, cerr
		case now != p || since.IsZero():
			p, since = now, time.Now()
		}
		if !since.IsZero() && time.Since(since) >= chaosHold {
			if since.Sub(healed) > bound {
				return p, since, time.Now(), fmt.Errorf("converged %s after the heal, bound %s", since.Sub(healed).Round(time.Millisecond), bound)
			}
			return p, since, time.Now(), nil
		}
		if time.Now().After(deadline) {
			return p, since, time.Now(), fmt.Errorf("not converged within %s of the heal: %w", bound, err)
		}
	}
}

// repair does what an operator would after the cluster failed to
// converge: starts every stopped pgquorum and restarts every one that
// answers neither 200 nor 202, starts the committed primary's database if
// it is down, and rejoins any other database that is stopped or does not
// stream from it, or clones it again when the rejoin fails.
func (r *chaosRig) repair(committed string) []string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var did []string
	for _, n := range r.c.Nodes {
		if n.QuorumPID() == 0 {
			did = append(did, "start "+n.Name+"'s pgquorum: "+errText(n.StartQuorum()))
			continue
		}
		if status, _, err := n.Get(ctx, api.PathState); err != nil || status != 200 && status != 202 {
			n.KillQuorum()
			did = append(did, fmt.Sprintf("restart %s's pgquorum (it answered %d, %v): %s", n.Name, status, err, errText(n.StartQuorum())))
		}
	}
	p := r.c.Node(committed)
	if p.PostmasterPID() == 0 {
		did = append(did, "start "+p.Name+"'s database: "+errText(p.StartPG(ctx)))
	}
	for _, n := range others(r.c, p) {
		if n.PostmasterPID() != 0 {
			if ok, err := n.StreamsFrom(ctx, p); ok || err != nil {
				continue // streams, or cannot tell: its database answers nothing
			}
			// Runs, but does not stream (a timeline that forked off):
			// stopped, it is rejoined as below.
			did = append(did, "stop "+n.Name+", which does not stream from "+p.Name+": "+errText(n.StopPG(ctx, "fast")))
		}
		err := n.Rejoin(ctx, p)
		did = append(did, "rejoin "+n.Name+" to "+p.Name+": "+errText(err))
		if err != nil && n.PostmasterPID() == 0 {
			did = append(did, "clone "+n.Name+" again from "+p.Name+": "+errText(n.Reclone(ctx, p)))
		}
	}
	return did
}

func errText(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}

// decisions merges every decision the running nodes hold into seen.
func (r *chaosRig) decisions(seen map[uint64]api.Decision) {
	for _, n := range r.c.Nodes {
		if n.QuorumPID() == 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		h, err := history(ctx, n)
		cancel()
		if err != nil {
			continue
		}
		for _, d := range h.Decisions {
			seen[d.Epoch] = d
		}
	}
}

func TestChaos(t *testing.T) {
	cfg := chaosFromEnv(t)
	fmt.Printf("CHAOS| seed %d, duration %s, at least %d faults, at most %d events (0: no limit), pairs %.2f, classes %v\n",
		cfg.seed, cfg.duration, cfg.minFaults, cfg.maxEvents, cfg.profile.PairShare, cfg.profile.Classes)
	fmt.Printf("CHAOS| failover.synchronous %s, locations %s, packet loss %d-%d %%\n", cfg.sync, cfg.layout, cfg.profile.Loss[0], cfg.profile.Loss[1])
	specs, keys := chaosCluster(cfg)
	opts := lab.Options{Nodes: specs, Quorum: keys, OwnAddresses: true}
	if slices.Contains(cfg.profile.Classes, chaos.WALDiskFull) {
		// Only then: the other classes run on the layout they always had.
		opts.WALDisk = chaosWALDisk
		fmt.Printf("CHAOS| pg_wal on a tmpfs of %d MB per node\n", chaosWALDisk>>20)
	}
	c := startClusterWith(t, opts)
	if cfg.sync != api.SyncOff {
		// The lab's postgresql.conf turns synchronous_commit off, under
		// which no commit waits for a standby (startSyncRig).
		for _, n := range c.Nodes {
			if err := n.Exec(context.Background(), "ALTER SYSTEM SET synchronous_commit = on"); err != nil {
				t.Fatal(err)
			}
			if err := n.Exec(context.Background(), "SELECT pg_reload_conf()"); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitState(t, c.Node("node1"), api.StatePrimary, settle)
	if d := waitDecision(t, c, 1, settle); d.Primary != "node1" {
		t.Fatalf("epoch 1 adopted %s, want node1", d.Primary)
	}
	if cfg.sync != api.SyncOff {
		members := cfg.layout[0] - 1 // the first location's standbys
		waitSync(t, c.Node("node1"), fmt.Sprintf("RPO 0 with %d members", members), func(s *api.SyncStatus) bool {
			return !s.Degraded && len(s.Set) == members
		})
	}
	cfgPath, _ := c.HAProxyPaths()
	stateFile := filepath.Join(filepath.Dir(cfgPath), "pgquorum.state")
	// Rendered for the documented setup (scripts/haproxy/README.md): stats
	// socket and server-state file. No state yet: this first start is
	// waited on before any reading counts.
	h := startHAProxyFromRepmgr(t, c, "--server-state-file", stateFile)
	h.waitStatus(t, map[string]string{chaosRWBackend + "/node1": "UP"})
	if err := c.CreateWriteTable(context.Background(), c.Node("node1")); err != nil {
		t.Fatal(err)
	}
	r := &chaosRig{t: t, c: c, poller: watchStates(t, c), rw: h.rw, stateFile: stateFile, hap: h.HAProxy, stop: make(chan struct{})}
	if cfg.sync != api.SyncOff {
		// Read before the first write: a write counts under RPO 0 only
		// between two readings.
		for _, n := range c.Nodes {
			r.every(chaosSyncEvery, func() { r.readSync(n) })
		}
	}
	r.w = startChaosWrites(h.rw)
	t.Cleanup(r.w.stopWriting)
	r.every(chaosRouterEvery, r.readRouter)
	stopRouter := sync.OnceFunc(func() { close(r.stop); r.done.Wait() })
	t.Cleanup(stopRouter)

	start := time.Now()
	primary, _, _, err := r.waitConverged(start, chaos.ConvergeBound)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[uint64]api.Decision{}
	sched := chaos.NewSchedule(cfg.seed, cfg.profile)
	var windows []chaos.Window
	gaveUp := false
	more := func() bool {
		elapsed := time.Since(start)
		return (elapsed < cfg.duration || countFaults(windows) < cfg.minFaults && elapsed < 3*cfg.duration) &&
			(cfg.maxEvents == 0 || len(windows) < cfg.maxEvents)
	}
	for more() {
		e := sched.Next()
		w := chaos.Window{Event: e, Start: time.Now()}
		t.Logf("chaos: %s, primary %s", e, primary.Name)
		var wg sync.WaitGroup
		for i, f := range e.Faults {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if i > 0 {
					faultFor(e.Offset)
				}
				r.inject(f, primary)
			}()
		}
		wg.Wait()
		w.Healed = time.Now()
		p, since, settled, err := r.waitConverged(w.Healed, chaos.ConvergeBound)
		if err == nil {
			w.Converged, w.Settled = since, settled
			t.Logf("chaos: #%d converged on %s %s after the heal", e.N, p.Name, w.Converged.Sub(w.Healed).Round(time.Millisecond))
			primary = p
		} else {
			r.decisions(seen)
			committed := primary.Name
			if latest := latestDecision(seen); latest.Primary != "" {
				committed = latest.Primary
			}
			did := r.repair(committed)
			w.Note = fmt.Sprintf("not converged: %v; repaired: %s", err, strings.Join(did, "; "))
			t.Errorf("chaos: %s: %s", e, w.Note)
			// The window lasts through the repair: what the cluster
			// decides meanwhile follows from the event, not from no event.
			if p, _, w.Settled, err = r.waitConverged(time.Now(), chaosRepairWait); err != nil {
				t.Errorf("chaos: still not converged after the repair, run stopped: %v", err)
				gaveUp = true
			} else {
				primary = p
			}
		}
		windows = append(windows, w)
		r.decisions(seen)
		if gaveUp {
			break
		}
	}
	elapsed := time.Since(start)
	r.w.stopWriting()
	stopRouter()
	r.poller.Stop()
	r.decisions(seen)

	writes := r.w.all()
	var acked []lab.Write
	for _, x := range writes {
		if x.Port != 0 {
			acked = append(acked, x)
		}
	}
	f := chaos.Findings{
		DoubleAcks:   chaos.DoubleAcks(writes),
		TwoPrimaries: chaos.TwoPrimaries(r.poller.PrimaryRuns()),
	}
	r.mu.Lock()
	f.TwoWriters = chaos.TwoWriters(r.samples)
	samples := len(r.samples)
	syncs := chaos.NewSyncHistory(r.syncs)
	for _, x := range r.other {
		x.Window = chaos.During(windows, x.At)
		f.Other = append(f.Other, x)
	}
	r.mu.Unlock()
	var decided []api.Decision
	for _, d := range seen {
		decided = append(decided, d)
	}
	slices.SortFunc(decided, func(a, b api.Decision) int { return int(a.Epoch) - int(b.Epoch) })
	f.False = chaos.FalseFailovers(decided, windows, start)
	nodeOf := func(port int) string {
		for _, n := range c.Nodes {
			if n.PGPort == port {
				return n.Name
			}
		}
		return ""
	}
	protected := 0 // acknowledged writes the synchronous mode promised to keep, lost or not
	for _, x := range acked {
		if chaos.Protected(cfg.sync, syncs, nodeOf, x) {
			protected++
		}
	}
	var promised []lab.Write // lost, though promised
	if !gaveUp {
		lost, err := lab.LostWrites(context.Background(), primary, acked)
		if err != nil {
			t.Error(err)
		}
		bySeq := map[int64]lab.Write{}
		for _, x := range acked {
			bySeq[x.Seq] = x
		}
		for _, seq := range lost {
			x := bySeq[seq]
			f.Lost = append(f.Lost, x.Done)
			if chaos.Protected(cfg.sync, syncs, nodeOf, x) {
				f.LostProtected = append(f.LostProtected, x.Done)
				promised = append(promised, x)
			}
		}
	}

	rows := chaos.Summarize(windows, f)
	answers, _ := r.poller.Count()
	fmt.Printf("CHAOS| seed %d: %d events (%d faults) in %s; %d of %d writes acknowledged, %d /state answers, %d HAProxy readings, %d decisions committed; final primary %s\n",
		cfg.seed, len(windows), countFaults(windows), elapsed.Round(time.Second), len(acked), len(writes), answers, samples, len(decided), primary.Name)
	fmt.Printf("CHAOS| failover.synchronous %s, locations %s\n", cfg.sync, cfg.layout)
	for _, line := range strings.Split(strings.TrimSpace(chaos.Table(rows, cfg.sync)), "\n") {
		fmt.Println("CHAOS| " + line)
	}
	byEvent := chaos.LostByEvent(windows, f.Lost)
	for i, w := range windows {
		if byEvent[i] > 0 {
			fmt.Printf("CHAOS| %d acknowledged writes lost to %s\n", byEvent[i], w.Event)
		}
	}
	for _, d := range decided {
		fmt.Printf("CHAOS| decision: epoch %d at %s: %s replaces %s: %s\n", d.Epoch, d.At.Format("15:04:05.000"), d.Primary, d.OldPrimary, d.Reason)
	}
	report := func(what string, i int, detail string) {
		ev := "between faults"
		if i >= 0 {
			ev = windows[i].Event.String()
		}
		fmt.Printf("CHAOS| %s during %s: %s\n", what, ev, detail)
		t.Errorf("%s during %s: %s", what, ev, detail)
	}
	for _, s := range f.TwoPrimaries {
		report("two 200s", chaos.During(windows, s.From), s.String())
	}
	for _, s := range f.TwoWriters {
		report("two read-write servers UP", chaos.During(windows, s.From), s.String())
	}
	for _, s := range f.DoubleAcks {
		report("writes acknowledged by two servers", chaos.During(windows, s.From), s.String())
	}
	for _, x := range f.False {
		report("false failover", x.Window, x.What)
	}
	for _, x := range f.Other {
		report("violation", x.Window, x.What)
	}
	for _, x := range promised {
		report(fmt.Sprintf("acknowledged write lost under synchronous %s", cfg.sync), chaos.During(windows, x.Done),
			fmt.Sprintf("write %d sent %s, acknowledged %s by %s (timeline %d), missing on the final primary %s",
				x.Seq, x.Sent.Format("15:04:05.000"), x.Done.Format("15:04:05.000"), nodeOf(x.Port), x.Timeline, primary.Name))
	}
	if gaveUp {
		fmt.Println("CHAOS| acknowledged writes lost: not counted, the run stopped without a converged primary (the column shows 0)")
	}
	total := rows[len(rows)-1]
	switch cfg.sync {
	case api.SyncOff:
		fmt.Printf("CHAOS| %d invariant violations; %d acknowledged writes lost (asynchronous replication: reported, not failed)\n", total.Violations(), total.Lost)
	case api.SyncOn:
		fmt.Printf("CHAOS| %d invariant violations; %d acknowledged writes lost, %d of them acknowledged under RPO 0 (violations); %d of %d acknowledged writes were under RPO 0\n",
			total.Violations(), total.Lost, total.LostProtected, protected, len(acked))
	default:
		fmt.Printf("CHAOS| %d invariant violations; %d acknowledged writes lost (synchronous strict: each a violation) of %d acknowledged\n",
			total.Violations(), total.Lost, len(acked))
	}
	fmt.Printf("CHAOS| replay: CHAOS_SEED=%d CHAOS_DURATION=%s CHAOS_SYNC=%s CHAOS_LOCATIONS=%s CHAOS_LOSS=%d-%d make chaos\n",
		cfg.seed, cfg.duration, cfg.sync, cfg.layout.Spec(), cfg.profile.Loss[0], cfg.profile.Loss[1])
}

func latestDecision(seen map[uint64]api.Decision) api.Decision {
	var d api.Decision
	for _, x := range seen {
		if x.Epoch > d.Epoch {
			d = x
		}
	}
	return d
}

func countFaults(ws []chaos.Window) int {
	n := 0
	for _, w := range ws {
		n += len(w.Event.Faults)
	}
	return n
}
