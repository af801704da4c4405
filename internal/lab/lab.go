package lab

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pgquorum/pgquorum/client"
	"github.com/pgquorum/pgquorum/repmgr"
)

// DefaultPGBin is where Debian puts the PostgreSQL 15 server binaries.
const DefaultPGBin = "/usr/lib/postgresql/15/bin"

// NodeSpec describes one node of a cluster to build. The first node is the
// primary; the others are cloned from it.
type NodeSpec struct {
	Name     string
	Location string
	Upstream string // clone from and stream from this node (a cascade); default the first node
}

// Options configure a lab cluster.
type Options struct {
	Nodes    []NodeSpec
	Pgquorum string // path of the pgquorum binary; "" starts no pgquorum
	// Quorum holds extra pgquorum config keys (e.g. "consensus.refresh_interval": "250ms");
	// "{node}" in a value stands for each node's name.
	Quorum  map[string]string
	PGBin   string                           // default DefaultPGBin
	OSUser  string                           // default "postgres" when running as root
	Logf    func(format string, args ...any) // where subprocess output goes
	BaseDir string                           // default: a new directory under os.TempDir()
	// PortBase, when set, gives fixed ports: node i gets PostgreSQL on
	// PortBase+i and pgquorum on PortBase+100+i. Default: free ports.
	PortBase int
	// QuorumTLS, when set, makes the lab's own requests to pgquorum HTTPS
	// with it from the start (see SetQuorumTLS).
	QuorumTLS *tls.Config
	// Repmgrd, when set, adds repmgrd's failover settings to every
	// repmgr.conf; StartRepmgrd runs it.
	Repmgrd *RepmgrdOptions
	// OwnAddresses gives each node a loopback address of its own,
	// 127.77.<cluster>.<node id>, so that Partition can cut nodes apart.
	// Default: every node on 127.0.0.1.
	OwnAddresses bool
	// WrapQuorum, when set, may rewrite the command that starts a node's
	// pgquorum once the lab has set its path, arguments, environment and
	// credentials: to run it in a sandbox, for instance. A wrapper that
	// forks and forwards no signal (bwrap) must end in an exec of the
	// pgquorum binary: the lab signals that process, its descendant.
	WrapQuorum func(n *Node, cmd *exec.Cmd) error
	// WALDisk, when set, gives each node's pg_wal a tmpfs of its own of
	// this many bytes (at least MinWALDisk), and WAL settings that fit in
	// it (walDiskConf), so that FillWALDisk can fill it. Needs root.
	// Default: pg_wal in the data directory, on the machine's disk.
	WALDisk int64
}

// Cluster is a running lab cluster.
type Cluster struct {
	Dir   string
	Nodes []*Node
	opts  Options
	run   repmgr.Runner
	owner *user.User

	mu        sync.Mutex
	haproxies []*HAProxy // started by StartHAProxy, stopped by Close
	subnet    int        // with OwnAddresses: the third byte of its nodes' addresses
	subnetLck *os.File   // holds subnet against other test processes
	firewall  *Firewall  // with OwnAddresses: the nftables table of Partition
	// quorumTLS, when set, makes the lab's requests to pgquorum HTTPS
	// (SetQuorumTLS); quorum is the client of those requests, made with it.
	quorumTLS *tls.Config
	quorum    *client.Client
}

// clusters numbers the clusters with addresses of their own.
var clusters atomic.Int32

// reserveSubnet picks a third address byte no other cluster, in this or
// another test process on the machine, is using: test binaries of several
// packages or checkouts run at once and would otherwise share addresses
// and firewall tables. The lock is an flock, so it dies with the process.
func reserveSubnet() (int, *os.File, error) {
	for range 250 {
		n := int(clusters.Add(1)%250) + 1
		f, err := os.OpenFile(filepath.Join(os.TempDir(), fmt.Sprintf("pgq-lab-subnet-%d.lock", n)), os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			return 0, nil, fmt.Errorf("lab: subnet lock: %w", err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			_ = f.Close() // held by another cluster: try the next
			continue
		}
		return n, f, nil
	}
	return 0, nil, errors.New("lab: every 127.77.x subnet is in use")
}

// host is the loopback address of node id.
func (c *Cluster) host(id int) string {
	if c.subnet == 0 {
		return "127.0.0.1"
	}
	return fmt.Sprintf("127.77.%d.%d", c.subnet, id)
}

// Start builds and starts a cluster: initdb and "repmgr primary register" on
// the first node, "standby clone" and "standby register" on the others, then
// one pgquorum per node. On error, whatever was started is stopped.
func Start(ctx context.Context, opts Options) (_ *Cluster, err error) {
	if len(opts.Nodes) == 0 {
		return nil, errors.New("lab: no nodes")
	}
	if opts.PGBin == "" {
		opts.PGBin = DefaultPGBin
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	if opts.OSUser == "" && os.Geteuid() == 0 {
		opts.OSUser = "postgres"
	}
	c := &Cluster{opts: opts}
	c.SetQuorumTLS(opts.QuorumTLS)
	defer func() {
		if err != nil {
			_ = c.Close()
		}
	}()
	if opts.OwnAddresses {
		if c.subnet, c.subnetLck, err = reserveSubnet(); err != nil {
			return nil, err
		}
	}
	if opts.WALDisk != 0 && opts.WALDisk < MinWALDisk {
		return nil, fmt.Errorf("lab: Options.WALDisk %d: want at least %d bytes", opts.WALDisk, MinWALDisk)
	}
	if err := c.prepareDir(); err != nil {
		return nil, err
	}
	if opts.WALDisk != 0 {
		sweepWALDisks(opts.Logf)
	}
	for i, spec := range opts.Nodes {
		n, err := c.newNode(i+1, spec)
		if err != nil {
			return nil, err
		}
		c.Nodes = append(c.Nodes, n)
		if opts.WALDisk != 0 {
			if err := n.mountWALDisk(); err != nil {
				return nil, err
			}
		}
	}
	if err := c.Nodes[0].initPrimary(ctx); err != nil {
		return nil, err
	}
	if err := c.cloneStandbys(ctx); err != nil {
		return nil, err
	}
	if opts.Pgquorum != "" {
		for _, n := range c.Nodes {
			if err := n.StartQuorum(); err != nil {
				return nil, err
			}
		}
	}
	return c, nil
}

func (c *Cluster) prepareDir() error {
	dir := c.opts.BaseDir
	if dir == "" {
		d, err := os.MkdirTemp("", "pgq-lab-")
		if err != nil {
			return fmt.Errorf("lab: temp dir: %w", err)
		}
		dir = d
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("lab: base dir: %w", err)
	}
	c.Dir = dir
	c.run = repmgr.Runner{User: c.opts.OSUser, Dir: dir, Env: []string{"PATH=" + c.opts.PGBin + ":/usr/bin:/bin", "LC_ALL=C"}}
	if err := os.Chmod(dir, 0o755); err != nil {
		return fmt.Errorf("lab: chmod %s: %w", dir, err)
	}
	if c.opts.OSUser != "" {
		u, err := user.Lookup(c.opts.OSUser)
		if err != nil {
			return fmt.Errorf("lab: OS user: %w", err)
		}
		c.owner = u
		return c.chown(dir)
	}
	return nil
}

func (c *Cluster) chown(path string) error { return chownTo(c.owner, path) }

func chownTo(u *user.User, path string) error {
	if u == nil {
		return nil
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(path, uid, gid); err != nil {
		return fmt.Errorf("lab: chown %s: %w", path, err)
	}
	return nil
}

// nodeUser returns the OS user pgqlab<id>, creating it (a system user of
// the postgres group, without a home) on first use.
func nodeUser(id int) (*user.User, error) {
	name := fmt.Sprintf("pgqlab%d", id)
	usersMu.Lock()
	defer usersMu.Unlock()
	if u, err := user.Lookup(name); err == nil {
		return u, nil
	}
	out, err := exec.Command("useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
		"--shell", "/usr/sbin/nologin", "--gid", "postgres", name).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("lab: useradd %s: %w: %s", name, err, out)
	}
	return user.Lookup(name)
}

var usersMu sync.Mutex

// cloneStandbys clones the standbys of the primary concurrently, each being
// independent, then the cascaded ones from their upstreams.
func (c *Cluster) cloneStandbys(ctx context.Context) error {
	var wg sync.WaitGroup
	errs := make([]error, len(c.Nodes))
	for i, n := range c.Nodes[1:] {
		if c.opts.Nodes[i+1].Upstream != "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = n.cloneFrom(ctx, c.Nodes[0], false)
		}()
	}
	wg.Wait()
	for i, n := range c.Nodes[1:] {
		if up := c.opts.Nodes[i+1].Upstream; up != "" && errs[i] == nil {
			errs[i] = n.cloneFrom(ctx, c.Node(up), true)
		}
	}
	return errors.Join(errs...)
}

// Node returns the node called name, or panics: tests name nodes they built.
func (c *Cluster) Node(name string) *Node {
	for _, n := range c.Nodes {
		if n.Name == name {
			return n
		}
	}
	panic("lab: no node " + name)
}

// Close stops every pgquorum and PostgreSQL process of the cluster and
// removes its directory. It reports pgquorum processes that did not exit
// cleanly, such as a race-detector build that found a data race.
func (c *Cluster) Close() error {
	c.mu.Lock()
	for _, h := range c.haproxies {
		h.Stop()
	}
	fw := c.firewall
	c.mu.Unlock()
	if fw != nil {
		fw.Remove()
	}
	var wg sync.WaitGroup
	errs := make([]error, len(c.Nodes))
	for i, n := range c.Nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = errors.Join(n.StopQuorum(), n.StopRepmgrd())
			n.killPG()
			// Unmounted even with PGQ_LAB_KEEP: a mount would outlive the
			// test (its WAL goes with it; the logs stay).
			errs[i] = errors.Join(errs[i], n.unmountWALDisk())
		}()
	}
	wg.Wait()
	if c.Dir != "" && c.opts.BaseDir == "" && os.Getenv("PGQ_LAB_KEEP") == "" {
		// PGQ_LAB_KEEP=1 keeps it, with the servers' logs, for a post-mortem;
		// one left behind by mistake is said, not failed.
		if err := os.RemoveAll(c.Dir); err != nil {
			c.opts.Logf("lab: remove %s: %v", c.Dir, err)
		}
	}
	if c.subnetLck != nil {
		_ = c.subnetLck.Close() // releases the flock, which also dies with the process
	}
	return errors.Join(errs...)
}

// handedOut remembers every port freePort gave in this process. The kernel
// may hand a released port out again before its new owner binds it, and
// parallel tests then collide ("address already in use"); within one test
// process that never happens twice. The one piece of package state here,
// for the harness only.
var handedOut = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// freePort asks the kernel for an unused loopback port that this process
// has not handed out before.
func freePort() (int, error) {
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("lab: free port: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		_ = l.Close() // only asked for its number
		handedOut.Lock()
		taken := handedOut.ports[port]
		handedOut.ports[port] = true
		handedOut.Unlock()
		if !taken {
			return port, nil
		}
	}
	return 0, errors.New("lab: free port: the kernel kept offering ports already handed out")
}

// WaitFor polls cond every 50 ms until it returns nil or timeout passes, and
// returns cond's last error then: the last one not caused by the deadline
// itself, which says more than "context deadline exceeded".
func WaitFor(ctx context.Context, timeout time.Duration, what string, cond func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	var last error
	for {
		err := cond(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() == nil || last == nil {
			last = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting %s for %s: %w", timeout, what, last)
		case <-t.C:
		}
	}
}

func (c *Cluster) path(parts ...string) string {
	return filepath.Join(append([]string{c.Dir}, parts...)...)
}
