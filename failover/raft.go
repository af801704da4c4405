package failover

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"

	"github.com/pgquorum/pgquorum/auth"
	"github.com/pgquorum/pgquorum/repmgr"
)

// RaftOptions configure this node's member of the Raft group.
type RaftOptions struct {
	Self             string            // server ID: the repmgr node_name
	Dir              string            // log, stable store and snapshots
	Bind             string            // failover.raft_listen
	Peers            map[string]string // failover.raft_peers: node name → host:port
	HeartbeatTimeout time.Duration
	ElectionTimeout  time.Duration
	LogOutput        io.Writer
	LogDebug         bool
	LogJSON          bool
	// Auth holds the peers' credentials, which the Raft transport uses too;
	// zero: plain TCP.
	Auth   auth.Stream
	Logger *slog.Logger // for the authenticated transport's refusals
}

// Address is where node n's pgquorum takes Raft traffic: its entry in
// failover.raft_peers, or the host of its repmgr conninfo with the port of
// failover.raft_listen. An entry named exactly wins over one that differs
// only by case (viper lower-cases the keys of a YAML map, an environment
// variable keeps them): the map's order must not choose.
func (o RaftOptions) Address(n repmgr.Node) (string, error) {
	if addr, ok := o.Peers[n.Name]; ok {
		return addr, nil
	}
	for k, addr := range o.Peers {
		if strings.EqualFold(k, n.Name) {
			return addr, nil
		}
	}
	_, port, err := net.SplitHostPort(o.Bind)
	if err != nil {
		return "", fmt.Errorf("failover.raft_listen %q: %w", o.Bind, err)
	}
	host, err := repmgr.ConninfoHost(n.Conninfo)
	if err != nil {
		return "", fmt.Errorf("raft address of node %q: %w", n.Name, err)
	}
	return net.JoinHostPort(host, port), nil
}

// Configuration is the Raft membership the registered nodes make: every
// node of repmgr.nodes, witnesses included, as a voter named by node_name.
func (o RaftOptions) Configuration(nodes []repmgr.Node) (raft.Configuration, error) {
	var cfg raft.Configuration
	for _, n := range nodes {
		addr, err := o.Address(n)
		if err != nil {
			return raft.Configuration{}, err
		}
		cfg.Servers = append(cfg.Servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(n.Name), Address: raft.ServerAddress(addr)})
	}
	sort.Slice(cfg.Servers, func(i, j int) bool { return cfg.Servers[i].ID < cfg.Servers[j].ID })
	return cfg, nil
}

// openStore opens the log and stable store, without waiting forever for a
// lock another process holds.
func openStore(dir string) (*raftboltdb.BoltStore, error) {
	store, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, "raft.db"),
		BoltOptions: &bbolt.Options{Timeout: 5 * time.Second}})
	if err != nil {
		return nil, fmt.Errorf("open raft store in %s: %w", dir, err)
	}
	return store, nil
}

// raftNode is the running Raft member and what it holds open.
type raftNode struct {
	r         *raft.Raft
	transport *raft.NetworkTransport
	store     *raftboltdb.BoltStore
	// deposeAhead: at start, the local log held a depose entry after the
	// snapshot, which the FSM applies only once this node hears a
	// coordinator (member.caughtUp).
	deposeAhead bool
	// replayTo is the last command entry the local log held after the
	// snapshot at start (zero Index: none), which the FSM applies only once
	// this node hears a coordinator (member.replayed).
	replayTo raft.Log
	logs     raft.LogStore // the log replayTo is looked up in
}

func (o RaftOptions) logger() hclog.Logger {
	level := hclog.Warn
	if o.LogDebug {
		level = hclog.Debug
	}
	out := o.LogOutput
	if out == nil {
		out = os.Stderr
	}
	return hclog.New(&hclog.LoggerOptions{Name: "raft", Level: level, Output: out, JSONFormat: o.LogJSON})
}

func (o RaftOptions) config() *raft.Config {
	cfg := raft.DefaultConfig()
	cfg.LocalID = raft.ServerID(o.Self)
	cfg.HeartbeatTimeout = o.HeartbeatTimeout
	cfg.ElectionTimeout = o.ElectionTimeout
	// A leader steps down once it has not heard from a majority for this
	// long; raft wants it no longer than the heartbeat timeout.
	cfg.LeaderLeaseTimeout = o.HeartbeatTimeout / 2
	cfg.CommitTimeout = min(50*time.Millisecond, o.HeartbeatTimeout/4)
	cfg.SnapshotThreshold = 256
	cfg.TrailingLogs = 512
	cfg.Logger = o.logger()
	return cfg
}

// openRaft starts this node's Raft member. With no state in Dir yet, it
// bootstraps the group from the registered nodes, as every node does with
// the same repmgr.nodes: raft accepts identical bootstraps.
func openRaft(o RaftOptions, fsm raft.FSM, nodes []repmgr.Node) (*raftNode, error) {
	self, ok := repmgr.ByName(nodes, o.Self)
	if !ok {
		return nil, fmt.Errorf("raft: %q is not registered in repmgr.nodes", o.Self)
	}
	advertise, err := o.Address(self)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("failover.raft_dir: %w", err)
	}
	store, err := openStore(o.Dir)
	if err != nil {
		return nil, err
	}
	// On the error paths below, the error that stopped the start is the one
	// to report, not what closing the parts opened so far says.
	log := o.logger()
	snaps, err := raft.NewFileSnapshotStoreWithLogger(o.Dir, 2, log)
	if err != nil {
		_ = store.Close()
		return nil, fmt.Errorf("open raft snapshots in %s: %w", o.Dir, err)
	}
	addr, err := net.ResolveTCPAddr("tcp", advertise)
	if err != nil {
		_ = store.Close()
		return nil, fmt.Errorf("raft address %s of %s: %w", advertise, o.Self, err)
	}
	initial, err := o.Configuration(nodes)
	if err != nil {
		_ = store.Close()
		return nil, err
	}
	members := &memberNames{initial: initial}
	trans, err := newTransport(o, addr, members, log)
	if err != nil {
		_ = store.Close()
		return nil, fmt.Errorf("failover.raft_listen %s: %w", o.Bind, err)
	}
	cfg := o.config()
	existing, err := raft.HasExistingState(store, store, snaps)
	if err != nil {
		_ = trans.Close()
		_ = store.Close()
		return nil, fmt.Errorf("read raft state: %w", err)
	}
	if !existing {
		if _, err := os.Stat(memberMarker(o.Dir)); err == nil {
			_ = trans.Close()
			_ = store.Close()
			return nil, lostStateError(o.Dir)
		}
	}
	r, err := raft.NewRaft(cfg, fsm, store, store, snaps, trans)
	if err != nil {
		_ = trans.Close()
		_ = store.Close()
		return nil, fmt.Errorf("start raft: %w", err)
	}
	members.r.Store(r)
	deposeAhead := logHoldsDepose(store, r.AppliedIndex())
	replayTo := lastCommandAfter(store, r.AppliedIndex())
	if !existing {
		err := r.BootstrapCluster(initial).Error()
		if err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			_ = r.Shutdown().Error()
			_ = trans.Close()
			_ = store.Close()
			return nil, fmt.Errorf("bootstrap raft: %w", err)
		}
	}
	if err := markMember(o.Dir); err != nil {
		_ = r.Shutdown().Error()
		_ = trans.Close()
		_ = store.Close()
		return nil, err
	}
	return &raftNode{r: r, transport: trans, store: store, deposeAhead: deposeAhead, replayTo: replayTo, logs: store}, nil
}

// memberMarker is the file, beside raft_dir, that says this node has been
// a member of the Raft group. Raft's votes live in raft_dir: a member that
// lost it and bootstrapped afresh could vote a second time in a term it
// already voted in, and elect a second coordinator. The marker outlives
// the directory, so such a start is refused instead.
func memberMarker(dir string) string {
	dir = filepath.Clean(dir)
	return filepath.Join(filepath.Dir(dir), "."+filepath.Base(dir)+".member")
}

func markMember(dir string) error {
	if err := os.WriteFile(memberMarker(dir), []byte("this node has been a member of the pgquorum Raft group whose state is in "+dir+"\n"), 0o600); err != nil {
		return fmt.Errorf("failover.raft_dir: record membership beside it: %w", err)
	}
	return nil
}

// ErrRaftStateLost is the error of a member whose raft_dir was lost.
var ErrRaftStateLost = errors.New("failover.raft_dir holds no Raft state, but this node has been a member of the group")

func lostStateError(dir string) error {
	return fmt.Errorf("%w (%s records it): a member that lost its votes could vote twice in a term. "+
		"Restore the directory, or rebuild the group without it: stop pgquorum on the other nodes, run "+
		"`pgquorum raft-recover --voters <the other nodes>` on each of them and start them; then delete %s "+
		"and start this node, which the group adds back as a new member (docs/operations.md, \"A lost raft_dir\")",
		ErrRaftStateLost, memberMarker(dir), memberMarker(dir))
}

// Close stops the member and releases its files and port.
func (n *raftNode) Close() error {
	err := n.r.Shutdown().Error()
	return errors.Join(err, n.transport.Close(), n.store.Close())
}

// reconcile brings the Raft membership one step closer to the registered
// nodes: it adds a missing node, updates a moved one, or removes one no
// longer registered, one change per call as raft wants, and says what it
// did. Only the coordinator (the Raft leader) calls it.
func (n *raftNode) reconcile(o RaftOptions, nodes []repmgr.Node, timeout time.Duration) (string, error) {
	want, err := o.Configuration(nodes)
	if err != nil {
		return "", err
	}
	f := n.r.GetConfiguration()
	if err := f.Error(); err != nil {
		return "", fmt.Errorf("read raft configuration: %w", err)
	}
	have := map[raft.ServerID]raft.Server{}
	for _, s := range f.Configuration().Servers {
		have[s.ID] = s
	}
	for _, s := range want.Servers {
		if h, ok := have[s.ID]; !ok || h.Address != s.Address || h.Suffrage != raft.Voter {
			if err := n.r.AddVoter(s.ID, s.Address, 0, timeout).Error(); err != nil {
				return "", fmt.Errorf("add %s to the raft group: %w", s.ID, err)
			}
			return fmt.Sprintf("added %s (%s) to the raft group", s.ID, s.Address), nil
		}
	}
	registered := map[raft.ServerID]bool{}
	for _, s := range want.Servers {
		registered[s.ID] = true
	}
	for id := range have {
		if !registered[id] && id != raft.ServerID(o.Self) {
			if err := n.r.RemoveServer(id, 0, timeout).Error(); err != nil {
				return "", fmt.Errorf("remove %s from the raft group: %w", id, err)
			}
			return fmt.Sprintf("removed %s, no longer registered, from the raft group", id), nil
		}
	}
	return "", nil
}

// Recover rewrites the Raft membership of a stopped node to voters, for
// when a majority of the group is lost for good: run it on every surviving
// node, with the same voters, before starting their pgquorum again.
func Recover(o RaftOptions, voters []repmgr.Node) (err error) {
	conf, err := o.Configuration(voters)
	if err != nil {
		return err
	}
	store, err := openStore(o.Dir)
	if err != nil {
		return fmt.Errorf("%w (is pgquorum still running?)", err)
	}
	defer func() {
		if cerr := store.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close raft store: %w", cerr)
		}
	}()
	log := o.logger()
	snaps, err := raft.NewFileSnapshotStoreWithLogger(o.Dir, 2, log)
	if err != nil {
		return fmt.Errorf("open raft snapshots in %s: %w", o.Dir, err)
	}
	_, trans := raft.NewInmemTransport(raft.ServerAddress(o.Self))
	if err := raft.RecoverCluster(o.config(), NewFSM(), store, store, snaps, trans, conf); err != nil {
		return fmt.Errorf("recover raft group: %w", err)
	}
	return nil
}

// logHoldsDepose tells whether the log holds a depose entry after index
// (what the FSM restored from its snapshot): a restarted node applies those
// entries only once it hears a coordinator, and may have applied that
// deposition before it stopped. An entry it cannot read counts as one.
func logHoldsDepose(logs raft.LogStore, index uint64) bool {
	last, err := logs.LastIndex()
	if err != nil {
		return true
	}
	for i := index + 1; i <= last; i++ {
		var l raft.Log
		if err := logs.GetLog(i, &l); err != nil {
			return true
		}
		if l.Type != raft.LogCommand {
			continue
		}
		if e, err := DecodeEntry(l.Data); err == nil && e.Type == EntryDepose {
			return true
		}
	}
	return false
}

// lastCommandAfter is the last command entry of the log after index (what
// the FSM restored from its snapshot), its data left out; a zero Index
// when there is none, or when the log cannot be read: a node is not held
// back for good by an entry it may never apply.
func lastCommandAfter(logs raft.LogStore, index uint64) raft.Log {
	last, err := logs.LastIndex()
	if err != nil {
		return raft.Log{}
	}
	for i := last; i > index; i-- {
		var l raft.Log
		if err := logs.GetLog(i, &l); err != nil {
			return raft.Log{}
		}
		if l.Type == raft.LogCommand {
			return raft.Log{Index: l.Index, Term: l.Term, Type: l.Type}
		}
	}
	return raft.Log{}
}
