package lab

import (
	"context"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgquorum/pgquorum/repmgr"
)

// Node is one PostgreSQL instance of a lab cluster and its pgquorum.
type Node struct {
	ID         int
	Name       string
	Location   string
	Host       string // the loopback address its PostgreSQL and pgquorum listen on
	PGPort     int
	QuorumPort int
	RaftPort   int    // where its pgquorum takes Raft traffic, with failover.mode pgquorum
	Dir        string // holds data/, repmgr.conf, logs, and pgquorum's StateDir
	// QuorumKeys are keys of this node's pgquorum config over the
	// cluster's (Options.Quorum), Unset leaving one out: how a test runs
	// one node with another profile. Read by the next StartQuorum.
	QuorumKeys map[string]string
	c          *Cluster
	quorum     *quorumProc
	repmgrd    *Proc
	owner      *user.User    // the OS user its PostgreSQL and pgquorum run as; nil: the caller
	run        repmgr.Runner // runs PostgreSQL tools as owner

	walMounted bool // Options.WALDisk: its tmpfs is mounted at walMount

	logMu     sync.Mutex
	quorumLog []string // pgquorum output, for LogLines
}

func (c *Cluster) newNode(id int, spec NodeSpec) (*Node, error) {
	pg, q, raft := c.opts.PortBase+id, c.opts.PortBase+100+id, c.opts.PortBase+300+id
	if c.opts.PortBase == 0 {
		var err error
		if pg, err = freePort(); err != nil {
			return nil, err
		}
		if q, err = freePort(); err != nil {
			return nil, err
		}
		if raft, err = freePort(); err != nil {
			return nil, err
		}
	}
	if spec.Location == "" {
		spec.Location = "default"
	}
	n := &Node{ID: id, Name: spec.Name, Location: spec.Location, Host: c.host(id), PGPort: pg, QuorumPort: q, RaftPort: raft,
		Dir: c.path(spec.Name), c: c, owner: c.owner}
	if c.subnet != 0 && c.owner != nil {
		// A user of its own, so that Partition can tell its traffic from
		// the other nodes': on loopback every connection comes from 127.0.0.1.
		u, err := nodeUser(id)
		if err != nil {
			return nil, err
		}
		n.owner = u
	}
	n.run = c.run
	if n.owner != nil {
		n.run.User = n.owner.Username
	}
	if err := os.MkdirAll(n.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	if err := n.chown(n.Dir); err != nil {
		return nil, err
	}
	return n, n.writeFile("repmgr.conf", n.repmgrConf()+n.repmgrdConf())
}

// StateDir is the node's consensus.state_dir: a directory of pgquorum's
// own, as in production (/var/lib/pgquorum), so that what pgquorum keeps
// there can be removed without touching the database.
func (n *Node) StateDir() string { return filepath.Join(n.Dir, "pgquorum") }

// RaftDir is the node's failover.raft_dir unless a test gives another:
// pgquorum's default, <consensus.state_dir>/raft.
func (n *Node) RaftDir() string { return filepath.Join(n.StateDir(), "raft") }

// DataDir is the node's PGDATA.
func (n *Node) DataDir() string { return filepath.Join(n.Dir, "data") }

// RepmgrConf is the path of the node's repmgr.conf.
func (n *Node) RepmgrConf() string { return filepath.Join(n.Dir, "repmgr.conf") }

// Conninfo is how repmgr and pgquorum reach this node.
func (n *Node) Conninfo() string {
	return fmt.Sprintf("host=%s port=%d user=repmgr dbname=repmgr connect_timeout=2", n.Host, n.PGPort)
}

// QuorumURL is the base URL of the node's pgquorum.
func (n *Node) QuorumURL() string {
	_, scheme := n.c.quorumClient()
	return fmt.Sprintf("%s://%s:%d", scheme, n.Host, n.QuorumPort)
}

// repmgrConf is the node's repmgr.conf. Its service_promote_command is a
// pg_ctl promote that waits for the promotion to complete, so that repmgr
// records it at once instead of after its one-second poll.
func (n *Node) repmgrConf() string {
	return fmt.Sprintf(`node_id=%d
node_name='%s'
conninfo='%s'
data_directory='%s'
location='%s'
pg_bindir='%s'
replication_user='repmgr'
use_replication_slots=yes
pg_ctl_options='-l %s -o "%s"'
promote_check_timeout=15
standby_follow_timeout=15
service_promote_command='%s/pg_ctl -D %s -w -t 15 promote'
log_level=INFO
`, n.ID, n.Name, n.Conninfo(), n.DataDir(), n.Location, n.c.opts.PGBin, n.logFile(), n.serverOptions(), n.c.opts.PGBin, n.DataDir())
}

// serverOptions are the node's own settings, given on the postgres command
// line (by us and by repmgr through pg_ctl_options) rather than in a file of
// the data directory, which clone and pg_rewind copy from another node.
func (n *Node) serverOptions() string {
	return fmt.Sprintf("-p %d -k %s -c listen_addresses=%s", n.PGPort, n.Dir, n.Host)
}

func (n *Node) logFile() string { return filepath.Join(n.Dir, "postgres.log") }

const sharedConf = `
max_connections = 40
shared_buffers = 16MB
fsync = off
synchronous_commit = off
wal_level = replica
wal_log_hints = on
max_wal_senders = 10
max_replication_slots = 10
wal_keep_size = 128MB
hot_standby = on
shared_preload_libraries = 'repmgr'
logging_collector = off
log_line_prefix = '%m [%p] '
`

const hbaConf = `local all all trust
local replication all trust
host all all 127.0.0.0/8 trust
host replication all 127.0.0.0/8 trust
`

func (n *Node) writeFile(name, content string) error {
	p := filepath.Join(n.Dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	return n.chown(p)
}

// chown gives path to the node's OS user.
func (n *Node) chown(path string) error { return chownTo(n.owner, path) }

func (n *Node) appendFile(path, content string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	if _, err := f.WriteString(content); err != nil {
		_ = f.Close() // the write's error is the one to report
		return err
	}
	return f.Close()
}

// pg runs a PostgreSQL or repmgr tool as the cluster's OS user and logs its output.
func (n *Node) pg(ctx context.Context, name string, args ...string) (string, error) {
	bin := name
	if !strings.Contains(name, "/") && name != "repmgr" {
		bin = filepath.Join(n.c.opts.PGBin, name)
	}
	out, err := n.run.Run(ctx, bin, args...)
	n.c.opts.Logf("%s: %s %s\n%s", n.Name, name, strings.Join(args, " "), strings.TrimSpace(out))
	if err != nil {
		return out, fmt.Errorf("%s: %w", n.Name, err)
	}
	return out, nil
}

// Repmgr runs "repmgr -f <repmgr.conf> args…" as the cluster's OS user.
func (n *Node) Repmgr(ctx context.Context, args ...string) (string, error) {
	return n.pg(ctx, "repmgr", append([]string{"-f", n.RepmgrConf()}, args...)...)
}

// cli is pgquorum's own repmgr wrapper for this node, so that failovers in
// the tests go through the code an operator's tooling would use.
func (n *Node) cli() repmgr.CLI {
	// Each lab node archives under its own directory: node names repeat
	// across the clusters of one test run.
	return repmgr.CLI{Bin: "repmgr", ConfigFile: n.RepmgrConf(), Runner: n.run, ConfigArchiveDir: n.Dir}
}

func (n *Node) logged(what string, out string, err error) error {
	n.c.opts.Logf("%s: repmgr %s\n%s", n.Name, what, strings.TrimSpace(out))
	if err != nil {
		return fmt.Errorf("%s: %w", n.Name, err)
	}
	return nil
}

// Promote runs "repmgr standby promote" on the node.
func (n *Node) Promote(ctx context.Context) error {
	out, err := n.cli().Promote(ctx)
	return n.logged("standby promote", out, err)
}

// Follow runs "repmgr standby follow" on the node.
func (n *Node) Follow(ctx context.Context) error {
	out, err := n.cli().Follow(ctx)
	return n.logged("standby follow", out, err)
}

// Rejoin runs "repmgr node rejoin --force-rewind" on the stopped node,
// following upstream.
func (n *Node) Rejoin(ctx context.Context, upstream *Node) error {
	// A primary promoted without a checkpoint since still shows the old
	// timeline in its control file: pg_rewind would then find nothing to
	// rewind, and n, started with WAL past the fork, would never attach.
	if err := upstream.Exec(ctx, "CHECKPOINT"); err != nil {
		return fmt.Errorf("lab: checkpoint %s before the rejoin: %w", upstream.Name, err)
	}
	out, err := n.cli().Rejoin(ctx, upstream.Conninfo(), true)
	return n.logged("node rejoin", out, err)
}

func (n *Node) initPrimary(ctx context.Context) error {
	args := []string{"-D", n.DataDir(), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C"}
	conf := sharedConf
	if n.walMounted {
		args = append(args, "--waldir", n.walDir())
		conf += walDiskConf(n.c.opts.WALDisk)
	}
	if _, err := n.pg(ctx, "initdb", args...); err != nil {
		return err
	}
	if err := n.appendFile(filepath.Join(n.DataDir(), "postgresql.conf"), conf); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(n.DataDir(), "pg_hba.conf"), []byte(hbaConf), 0o600); err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	if err := n.chown(filepath.Join(n.DataDir(), "pg_hba.conf")); err != nil {
		return err
	}
	if err := n.StartPG(ctx); err != nil {
		return err
	}
	for _, sql := range []string{"CREATE USER repmgr SUPERUSER", "CREATE DATABASE repmgr OWNER repmgr"} {
		if _, err := n.pg(ctx, "psql", "-h", n.Host, "-p", strconv.Itoa(n.PGPort), "-U", "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-c", sql); err != nil {
			return err
		}
	}
	_, err := n.Repmgr(ctx, "primary", "register")
	return err
}

// cloneFrom clones the node from upstream and registers it; cascade says
// upstream is a standby, which the node then streams from.
func (n *Node) cloneFrom(ctx context.Context, upstream *Node, cascade bool) error {
	args := []string{"-h", upstream.Host, "-p", strconv.Itoa(upstream.PGPort), "-U", "repmgr", "-d", "repmgr", "standby", "clone", "--fast-checkpoint"}
	register := []string{"standby", "register", "--wait-sync=15"}
	if cascade {
		args = append(args, "--upstream-node-id="+strconv.Itoa(upstream.ID))
		register = append(register, "--upstream-node-id="+strconv.Itoa(upstream.ID))
	}
	if _, err := n.Repmgr(ctx, args...); err != nil {
		return err
	}
	if err := n.walToDisk(); err != nil {
		return err
	}
	if err := n.StartPG(ctx); err != nil {
		return err
	}
	// "standby register" refuses a standby still in "catchup": wait for streaming.
	err := WaitFor(ctx, 30*time.Second, n.Name+" streaming from "+upstream.Name, func(ctx context.Context) error {
		k, err := upstream.QueryInt(ctx, "SELECT count(*) FROM pg_stat_replication WHERE application_name = $1 AND state = 'streaming'", n.Name)
		if err == nil && k != 1 {
			err = fmt.Errorf("%d streaming walsenders", k)
		}
		return err
	})
	if err != nil {
		return err
	}
	_, err = n.Repmgr(ctx, register...)
	return err
}

// PromoteByHand promotes the standby with pg_promote(), outside repmgr: its
// repmgr metadata still names the old primary.
func (n *Node) PromoteByHand(ctx context.Context) error {
	if err := n.Exec(ctx, "SELECT pg_promote(true, 30)"); err != nil {
		return fmt.Errorf("%s: pg_promote: %w", n.Name, err)
	}
	return nil
}

// Repoint makes the standby stream from upstream by changing
// primary_conninfo and reloading, outside repmgr. It streams without a
// replication slot: its slot lives on the old upstream.
func (n *Node) Repoint(ctx context.Context, upstream *Node) error {
	conninfo := fmt.Sprintf("host=%s port=%d user=repmgr application_name=%s", upstream.Host, upstream.PGPort, n.Name)
	for _, sql := range []string{"ALTER SYSTEM SET primary_conninfo = '" + conninfo + "'",
		"ALTER SYSTEM SET primary_slot_name = ''", "SELECT pg_reload_conf()"} {
		if err := n.Exec(ctx, sql); err != nil {
			return fmt.Errorf("%s: re-point to %s: %w", n.Name, upstream.Name, err)
		}
	}
	return nil
}

// StreamsFrom tells whether n's WAL receiver streams from upstream.
func (n *Node) StreamsFrom(ctx context.Context, upstream *Node) (bool, error) {
	k, err := n.QueryInt(ctx, "SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming' AND sender_port = $1", upstream.PGPort)
	if err != nil {
		return false, fmt.Errorf("%s: %s", n.Name, strings.Join(strings.Fields(err.Error()), " "))
	}
	return k == 1, nil
}

// StartPG starts PostgreSQL and waits until it accepts connections.
func (n *Node) StartPG(ctx context.Context) error {
	n.clearZombieLock()
	_, err := n.pg(ctx, "pg_ctl", "-D", n.DataDir(), "-l", n.logFile(), "-o", n.serverOptions(), "-w", "-t", "30", "start")
	return err
}

// StopPG stops PostgreSQL with pg_ctl's mode: "fast" (clean), or "immediate"
// (as a crash would).
func (n *Node) StopPG(ctx context.Context, mode string) error {
	_, err := n.pg(ctx, "pg_ctl", "-D", n.DataDir(), "-m", mode, "-w", "-t", "30", "stop")
	return err
}

// clearZombieLock removes postmaster.pid (and the lock of its Unix socket)
// when the postmaster it names is a
// zombie: one killed by a test (SIGKILL), orphaned, that this machine's init
// has not reaped yet. PostgreSQL would take the zombie for a live postmaster
// and refuse to start.
func (n *Node) clearZombieLock() {
	pid := n.PostmasterPID()
	if pid == 0 {
		return
	}
	if state, ok := processState(pid); ok && state == "Z" {
		n.c.opts.Logf("lab: %s: postmaster %d is a zombie; removing its lock files", n.Name, pid)
		_ = os.Remove(filepath.Join(n.DataDir(), "postmaster.pid"))
		_ = os.Remove(filepath.Join(n.Dir, fmt.Sprintf(".s.PGSQL.%d.lock", n.PGPort)))
	}
}

// PostmasterPID reads the postmaster's PID, 0 if none is recorded.
func (n *Node) PostmasterPID() int {
	b, err := os.ReadFile(filepath.Join(n.DataDir(), "postmaster.pid"))
	if err != nil {
		return 0
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, _ := strconv.Atoi(strings.TrimSpace(first))
	return pid
}

// killPG stops PostgreSQL for good: pg_ctl immediate, then SIGKILL by PID.
func (n *Node) killPG() {
	pid := n.PostmasterPID()
	if pid == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if n.StopPG(ctx, "immediate") == nil {
		return
	}
	// A stale postmaster.pid may name a recycled PID: kill it only if it is
	// still this cluster's postgres.
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !strings.Contains(string(cmdline), n.DataDir()) {
		return
	}
	if p, err := os.FindProcess(pid); err == nil {
		_ = p.Kill()
	}
}

// Connect opens a connection to the node's repmgr database.
func (n *Node) Connect(ctx context.Context) (*pgx.Conn, error) {
	return pgx.Connect(ctx, n.Conninfo())
}

// Exec runs one statement on the node.
func (n *Node) Exec(ctx context.Context, sql string, args ...any) error {
	conn, err := n.Connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql, args...)
	return err
}

// QueryInt runs a query returning one integer.
func (n *Node) QueryInt(ctx context.Context, sql string, args ...any) (int64, error) {
	conn, err := n.Connect(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Close(ctx)
	var v int64
	err = conn.QueryRow(ctx, sql, args...).Scan(&v)
	return v, err
}

// Reclone clones the stopped node again from upstream over its data
// directory ("repmgr standby clone --force"), starts it and registers it
// again: what an operator does when a rejoin cannot rewind it.
func (n *Node) Reclone(ctx context.Context, upstream *Node) error {
	if _, err := n.Repmgr(ctx, "-h", upstream.Host, "-p", strconv.Itoa(upstream.PGPort), "-U", "repmgr", "-d", "repmgr",
		"standby", "clone", "--fast-checkpoint", "--force"); err != nil {
		return err
	}
	if err := n.walToDisk(); err != nil {
		return err
	}
	if err := n.StartPG(ctx); err != nil {
		return err
	}
	_, err := n.Repmgr(ctx, "standby", "register", "--force")
	return err
}
