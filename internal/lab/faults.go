package lab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// KillQuorum ends the node's pgquorum with SIGKILL, as a crash would, and
// waits for it.
func (n *Node) KillQuorum() {
	p := n.quorum
	if p == nil {
		return
	}
	n.quorum = nil
	_ = p.signal(syscall.SIGKILL)
	<-p.done
}

// KillPostmaster sends SIGKILL to the node's postmaster, as a crash would;
// its backends notice and exit.
func (n *Node) KillPostmaster() error {
	pid := n.PostmasterPID()
	if pid == 0 {
		return fmt.Errorf("lab: %s: no postmaster", n.Name)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return fmt.Errorf("lab: kill postmaster of %s: %w", n.Name, err)
	}
	return nil
}

// instancePIDs returns the postmaster's PID, then its children's.
func (n *Node) instancePIDs() ([]int, error) {
	pm := n.PostmasterPID()
	if pm == 0 {
		return nil, fmt.Errorf("lab: %s: no postmaster", n.Name)
	}
	pids := []int{pm}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, f := range stats {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		// pid (comm) state ppid …; comm may hold spaces, so cut at the last ')'.
		s := string(b)
		rest := s[strings.LastIndexByte(s, ')')+1:]
		fields := strings.Fields(rest)
		if len(fields) < 2 {
			continue
		}
		if ppid, _ := strconv.Atoi(fields[1]); ppid == pm {
			pid, _ := strconv.Atoi(strings.Fields(s)[0])
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// StallInstance stops every process of the node's PostgreSQL (SIGSTOP), the
// postmaster first so that it starts no new one, for d, then lets them run
// again: a stall of the whole instance, as a stuck disk or a paused VM gives.
func (n *Node) StallInstance(d time.Duration) error {
	pids, err := n.instancePIDs()
	if err != nil {
		return err
	}
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGSTOP)
	}
	n.c.opts.Logf("lab: %s: stopped %d PostgreSQL processes for %s", n.Name, len(pids), d)
	time.Sleep(d) // the stall itself, not a wait
	for i := len(pids) - 1; i >= 0; i-- {
		_ = syscall.Kill(pids[i], syscall.SIGCONT)
	}
	return nil
}

// PauseNode stops the whole node (SIGSTOP): its pgquorum, then its
// PostgreSQL, the postmaster first, as a paused VM or a stuck machine
// would be; resume lets them run again, in the reverse order. Unlike
// StallInstance it returns at once, so that other faults can run during
// the pause. A node whose PostgreSQL is down has only its pgquorum paused.
func (n *Node) PauseNode() (resume func(), err error) {
	pids, _ := n.instancePIDs() // none while the database is down
	if q := n.QuorumPID(); q != 0 {
		pids = append([]int{q}, pids...)
	}
	if len(pids) == 0 {
		return nil, fmt.Errorf("lab: %s: neither pgquorum nor PostgreSQL runs", n.Name)
	}
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGSTOP)
	}
	n.c.opts.Logf("lab: %s: stopped pgquorum and %d PostgreSQL processes", n.Name, len(pids))
	return func() {
		for i := len(pids) - 1; i >= 0; i-- {
			_ = syscall.Kill(pids[i], syscall.SIGCONT)
		}
		n.c.opts.Logf("lab: %s: resumed", n.Name)
	}, nil
}

// StopWALReceiver stops the standby's WAL receiver and keeps it stopped:
// primary_conninfo emptied with ALTER SYSTEM and a reload, as a broken
// conninfo or a receiver that cannot reconnect would leave it. The standby
// stays up and in recovery, and receives no more WAL, so it falls behind
// its primary, until a re-point (repmgr standby follow, pgquorum's)
// writes primary_conninfo again. It returns once pg_stat_wal_receiver
// shows no receiver.
func (n *Node) StopWALReceiver(ctx context.Context) error {
	for _, sql := range []string{"ALTER SYSTEM SET primary_conninfo = ''", "SELECT pg_reload_conf()"} {
		if err := n.Exec(ctx, sql); err != nil {
			return fmt.Errorf("lab: %s: stop the WAL receiver: %w", n.Name, err)
		}
	}
	err := WaitFor(ctx, 30*time.Second, n.Name+"'s WAL receiver to stop", func(ctx context.Context) error {
		k, err := n.QueryInt(ctx, "SELECT count(*) FROM pg_stat_wal_receiver")
		if err == nil && k != 0 {
			err = fmt.Errorf("%s's WAL receiver still runs", n.Name)
		}
		return err
	})
	if err != nil {
		return err
	}
	n.c.opts.Logf("lab: %s: WAL receiver stopped (primary_conninfo emptied)", n.Name)
	return nil
}

// RemoveQuorumState removes what the node's consensus.state_dir holds but
// its Raft directory (RaftDir, kept whole: losing it is another fault,
// which pgquorum refuses to start on): the vote lease record, the Raft
// membership marker beside the directory, anything else pgquorum keeps
// there. Its pgquorum must not run. It returns the names removed.
func (n *Node) RemoveQuorumState() ([]string, error) {
	if n.quorum != nil {
		return nil, fmt.Errorf("lab: %s: pgquorum runs; stop it before removing its state", n.Name)
	}
	entries, err := os.ReadDir(n.StateDir())
	if err != nil {
		return nil, fmt.Errorf("lab: %s: read consensus.state_dir: %w", n.Name, err)
	}
	var removed []string
	for _, e := range entries {
		p := filepath.Join(n.StateDir(), e.Name())
		if p == n.RaftDir() {
			continue
		}
		if err := os.RemoveAll(p); err != nil {
			return removed, fmt.Errorf("lab: %s: %w", n.Name, err)
		}
		removed = append(removed, e.Name())
	}
	n.c.opts.Logf("lab: %s: removed %v from consensus.state_dir, kept %s", n.Name, removed, filepath.Base(n.RaftDir()))
	return removed, nil
}
