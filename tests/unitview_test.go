package tests

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/internal/lab"
)

// Issue 15: failover mode under the filesystem view of the shipped unit,
// scripts/pgquorum.service, without systemd as PID 1. The unit's
// directives that shape the filesystem are read from the file itself and
// turned into a bubblewrap sandbox (bwrap, run as root so that no user
// namespace changes who owns what, then setpriv to the unit's User=, as
// systemd sets up the namespace before it drops to User=); every node's
// pgquorum, and so the repmgr, pg_ctl, pg_rewind and PostgreSQL it runs,
// live in it. Tightening the unit in a way that breaks failover fails
// these tests; a directive that shapes the filesystem but is not modelled
// here fails them too, rather than being silently ignored.
//
// The lab's paths stand for the unit's: a node's directory holds its data
// directory, socket and server log, so it stands for /var/lib/postgresql,
// /var/run/postgresql and /var/log/postgresql at once, and is bound
// read-write only if the unit leaves every one of them writable; its
// consensus.state_dir, in a directory of the test's, stands for
// /var/lib/pgquorum (StateDirectory=). The rest of the lab's directories
// (the pgquorum binary, the other nodes) is read-only, as /usr/bin would
// be. The lab signals pgquorum itself, below bwrap (lab.Options.WrapQuorum).
//
// The sandbox models ProtectSystem=, ProtectHome=, ReadWritePaths=,
// ReadOnlyPaths=, InaccessiblePaths=, State/Runtime/Logs/CacheDirectory=,
// PrivateTmp=, PrivateDevices=, ProtectKernelTunables=,
// ProtectKernelModules= and ProtectControlGroups= (unitview_sandbox_test.go);
// not what the unit does to anything but the filesystem (capabilities,
// address families, the cgroup and KillMode= itself).

// loadUnitView parses unitFile, with edit applied to its text.
func loadUnitView(t *testing.T, edit func(string) string) unitView {
	t.Helper()
	text, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	v, err := parseUnit(edit(string(text)))
	if err != nil {
		t.Fatalf("%s: %v", unitFile, err)
	}
	if v.user == "" {
		t.Fatalf("%s sets no User=", unitFile)
	}
	return v
}

// unitCredential is the unit's User= (and its group), which must be the
// OS user the lab runs the node's tools as.
func unitCredential(t *testing.T, v unitView) (uint32, uint32) {
	t.Helper()
	u, err := user.Lookup(v.user)
	if err != nil {
		t.Fatalf("the unit's User=%s: %v", v.user, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return uint32(uid), uint32(gid)
}

// stateDirs makes a directory holding one consensus.state_dir per node
// (its name), owned by the unit's User= with StateDirectoryMode=0700, as
// systemd makes /var/lib/pgquorum, and returns it.
func stateDirs(t *testing.T, uid, gid uint32, names ...string) string {
	t.Helper()
	base, err := os.MkdirTemp("", "pgq-unitview-state-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(base) }) // a temporary directory: nothing to do if it stays
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		dir := filepath.Join(base, name)
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(dir, int(uid), int(gid)); err != nil {
			t.Fatal(err)
		}
	}
	return base
}

// nodePaths are n's lab paths, with its state directory in stateBase
// ("" for none).
func nodePaths(n *lab.Node, stateBase string) labPaths {
	lp := labPaths{clusterDir: filepath.Dir(n.Dir), nodeDir: n.Dir}
	if stateBase != "" {
		lp.stateBase, lp.stateDir = stateBase, filepath.Join(stateBase, n.Name)
	}
	return lp
}

// wrapInView is a lab.Options.WrapQuorum that starts each pgquorum in v as
// the unit's User=, with its state directory in stateBase.
func wrapInView(v unitView, uid, gid uint32, stateBase string) func(*lab.Node, *exec.Cmd) error {
	return func(n *lab.Node, cmd *exec.Cmd) error {
		if cmd.SysProcAttr == nil || cmd.SysProcAttr.Credential == nil || cmd.SysProcAttr.Credential.Uid != uid {
			return fmt.Errorf("the lab runs %s's pgquorum as %+v, the unit as uid %d", n.Name, cmd.SysProcAttr, uid)
		}
		argv, err := v.command(nodePaths(n, stateBase), uid, gid, append([]string{cmd.Path}, cmd.Args[1:]...)...)
		if err != nil {
			return err
		}
		// bwrap runs as root to make the mount namespace; setpriv drops.
		cmd.Path, cmd.Args = argv[0], argv
		cmd.SysProcAttr.Credential = nil
		return nil
	}
}

// runInView runs argv in n's directory under v, as uid:gid (0: root),
// with the lab's PATH, and returns its output and error.
func runInView(ctx context.Context, v unitView, lp labPaths, uid, gid uint32, argv ...string) (string, error) {
	full, err := v.command(lp, uid, gid, argv...)
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, full[0], full[1:]...)
	cmd.Dir = lp.nodeDir
	cmd.Env = []string{"PATH=" + lab.DefaultPGBin + ":/usr/bin:/bin", "LC_ALL=C", "HOME=" + lp.nodeDir}
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// mountReadOnly tells whether path is on a read-only mount in process
// pid's mount namespace: the last, longest mount point above it decides.
func mountReadOnly(pid int, path string) (bool, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/mountinfo", pid))
	if err != nil {
		return false, err
	}
	defer func() { _ = f.Close() }() // only read
	best, ro := -1, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 {
			continue
		}
		mp := fields[4]
		if under(path, mp) && len(mp) >= best {
			best, ro = len(mp), slices.Contains(strings.Split(fields[5], ","), "ro")
		}
	}
	if best < 0 {
		return false, fmt.Errorf("no mount above %s in /proc/%d/mountinfo", path, pid)
	}
	return ro, sc.Err()
}

// mountNamespace is the mount namespace of process pid.
func mountNamespace(pid int) (string, error) {
	return os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid))
}

// strictWithoutWritePaths is the unit's text with ProtectSystem=strict and
// no ReadWritePaths=: the unit that made every failover action fail.
func strictWithoutWritePaths(text string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		switch {
		case strings.HasPrefix(l, "ReadWritePaths="):
			continue
		case strings.HasPrefix(l, "ProtectSystem="):
			l = "ProtectSystem=strict"
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n")
}

func unchanged(text string) string { return text }

func TestUnitViewOfTheShippedUnit(t *testing.T) {
	shipped := loadUnitView(t, unchanged)
	strict := loadUnitView(t, strictWithoutWritePaths)
	for _, tc := range []struct {
		name string
		v    unitView
		path string
		want access
	}{
		{"shipped: /etc read-only", shipped, "/etc/pgquorum", readOnly},
		{"shipped: /usr read-only", shipped, "/usr/bin", readOnly},
		{"shipped: /home read-only", shipped, "/home/someone", readOnly},
		{"shipped: data directory writable", shipped, "/var/lib/postgresql/15/main", readWrite},
		{"shipped: socket directory writable", shipped, "/var/run/postgresql", readWrite},
		{"shipped: PostgreSQL log writable", shipped, "/var/log/postgresql/postgresql-15-main.log", readWrite},
		{"shipped: state directory writable", shipped, "/var/lib/pgquorum/raft", readWrite},
		{"strict: data directory read-only", strict, "/var/lib/postgresql/15/main", readOnly},
		{"strict: state directory still writable", strict, "/var/lib/pgquorum", readWrite},
		{"strict: /dev writable", strict, "/dev/shm", readWrite},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.v.accessOf(tc.path)
			if err != nil || got != tc.want {
				t.Errorf("access of %s = %d, %v; want %d", tc.path, got, err, tc.want)
			}
		})
	}
	if _, err := parseUnit("[Service]\nTemporaryFileSystem=/var\n"); err == nil || !strings.Contains(err.Error(), "does not model") {
		t.Errorf("an unmodelled directive: %v, want refused", err)
	}
}

// TestUnitViewStrictWithoutWritePathsCannotPromote: the control that shows
// the sandbox has teeth. With node1's postmaster killed, "repmgr standby
// promote" on node2 fails under ProtectSystem=strict without
// ReadWritePaths= (the old unit's bug), leaving node2 a standby, and then
// succeeds under the shipped unit's view.
func TestUnitViewStrictWithoutWritePathsCannotPromote(t *testing.T) {
	t.Parallel()
	shipped := loadUnitView(t, unchanged)
	strict := loadUnitView(t, strictWithoutWritePaths)
	uid, gid := unitCredential(t, shipped)
	c := startClusterWith(t, lab.Options{Nodes: []lab.NodeSpec{{Name: "node1"}, {Name: "node2"}}})
	n2 := c.Node("node2")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	probe := filepath.Join(n2.DataDir(), "pgq-unitview-probe")
	if out, err := runInView(ctx, strict, nodePaths(n2, ""), uid, gid, "touch", probe); err == nil || !strings.Contains(out, "Read-only file system") {
		t.Fatalf("strict view: writing the data directory: %v %q, want Read-only file system", err, out)
	}
	if err := c.Node("node1").KillPostmaster(); err != nil {
		t.Fatal(err)
	}
	promote := []string{"repmgr", "-f", n2.RepmgrConf(), "standby", "promote"}
	out, err := runInView(ctx, strict, nodePaths(n2, ""), uid, gid, promote...)
	t.Logf("strict view: repmgr standby promote: %v\n%s", err, out)
	if err == nil {
		t.Fatal("repmgr standby promote succeeded under ProtectSystem=strict without ReadWritePaths: the sandbox has no teeth")
	}
	if k, err := n2.QueryInt(ctx, "SELECT pg_is_in_recovery()::int"); err != nil || k != 1 {
		t.Fatalf("node2 after the refused promote: in recovery %d, %v; want still a standby", k, err)
	}
	out, err = runInView(ctx, shipped, nodePaths(n2, ""), uid, gid, promote...)
	t.Logf("shipped view: repmgr standby promote: %v\n%s", err, out)
	if err != nil {
		t.Fatal("repmgr standby promote failed under the shipped unit's view")
	}
	err = lab.WaitFor(ctx, settle, "node2 out of recovery", func(ctx context.Context) error {
		if k, err := n2.QueryInt(ctx, "SELECT pg_is_in_recovery()::int"); err != nil || k != 0 {
			return fmt.Errorf("in recovery %d, %v", k, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestUnitViewFailoverPromoteFollowRejoin: every pgquorum runs in the
// shipped unit's view as its User=, with failover.mode pgquorum, fence
// stop and auto_rejoin. node1's postmaster is killed: another node is
// committed and promoted, the third follows it and node1, left stopped,
// is rejoined with pg_rewind; each by pgquorum, in the sandbox. Never two
// 200s. The rejoined PostgreSQL runs in node1's sandbox and outlives its
// pgquorum (KillMode=process).
func TestUnitViewFailoverPromoteFollowRejoin(t *testing.T) {
	t.Parallel()
	v := loadUnitView(t, unchanged)
	uid, gid := unitCredential(t, v)
	state := stateDirs(t, uid, gid, "node1", "node2", "node3")
	keys := withKeys(map[string]string{"failover.fence": api.FenceStop, "failover.fence_after": "3s", "failover.auto_rejoin": "true",
		"consensus.state_dir": filepath.Join(state, "{node}")})
	start := time.Now()
	c := startClusterWith(t, lab.Options{Nodes: threeNodes("dc1"), Quorum: keys, WrapQuorum: wrapInView(v, uid, gid, state)})
	n1 := c.Node("node1")
	checkInView(t, v, c, state, uid, gid)
	waitState(t, n1, api.StatePrimary, settle)
	if d := waitDecision(t, c, 1, settle); d.Primary != "node1" {
		t.Fatalf("epoch 1 adopted %s, want node1", d.Primary)
	}
	watchStates(t, c)
	fault := time.Now()
	if err := n1.KillPostmaster(); err != nil {
		t.Fatal(err)
	}
	d := waitDecision(t, c, 2, primaryBudget, c.Nodes[1:]...)
	if d.OldPrimary != "node1" || d.Primary == "node1" {
		t.Fatalf("epoch 2 = %+v, want a node replacing node1", d)
	}
	p := c.Node(d.Primary)
	t.Logf("epoch 2: %s replaces node1, decided %s after the fault", p.Name, d.At.Sub(fault).Round(time.Millisecond))
	waitState(t, p, api.StatePrimary, primaryBudget)
	actionSucceeded(t, p, "promote command", 2)
	waitPromotionRecorded(t, p, 2)
	for _, n := range c.Nodes[1:] {
		if n != p {
			actionSucceeded(t, n, "follow command", 2)
			streamsFrom(t, n, p, settle)
		}
	}
	actionSucceeded(t, n1, "rejoin command", 2)
	standbyOf(t, n1, p, 60*time.Second)
	streamsFrom(t, n1, p, settle)
	t.Logf("promote, follow and rejoin done %s after the fault", time.Since(fault).Round(time.Millisecond))

	pm := n1.PostmasterPID()
	pmNS, err1 := mountNamespace(pm)
	qNS, err2 := mountNamespace(n1.QuorumPID())
	ownNS, err3 := mountNamespace(os.Getpid())
	if err1 != nil || err2 != nil || err3 != nil || pmNS != qNS || pmNS == ownNS {
		t.Errorf("node1's rejoined postmaster %d in %s, its pgquorum in %s, the test in %s (%v %v %v): want the postmaster in pgquorum's sandbox",
			pm, pmNS, qNS, ownNS, err1, err2, err3)
	}
	stopQuorum(t, n1)
	if n1.PostmasterPID() != pm || syscall.Kill(pm, 0) != nil {
		t.Errorf("node1's postmaster %d did not outlive its pgquorum (KillMode=process)", pm)
	}
	streamsFrom(t, n1, p, settle)
	t.Logf("whole test %s", time.Since(start).Round(time.Millisecond))
}

// checkInView shows that every pgquorum runs in the unit's view: its own
// mount namespace, /etc and /usr read-only, its node's directory
// writable; and that root itself cannot write /etc in that view.
func checkInView(t *testing.T, v unitView, c *lab.Cluster, state string, uid, gid uint32) {
	t.Helper()
	ownNS, err := mountNamespace(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range c.Nodes {
		pid := n.QuorumPID()
		if ns, err := mountNamespace(pid); err != nil || ns == ownNS {
			t.Fatalf("%s's pgquorum (%d) in mount namespace %s, %v: not in a sandbox", n.Name, pid, ns, err)
		}
		st, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
		if err != nil || st.Sys().(*syscall.Stat_t).Uid != uid {
			t.Fatalf("%s's pgquorum (%d) not run as the unit's User=%s: %v", n.Name, pid, v.user, err)
		}
		paths := map[string]bool{"/etc": true, "/usr/bin": true, n.DataDir(): false, nodePaths(n, state).stateDir: false, c.Dir: true, state: true}
		for path, wantRO := range paths {
			ro, err := mountReadOnly(pid, path)
			if err != nil || ro != wantRO {
				t.Errorf("%s's pgquorum sees %s read-only %v (%v), want %v", n.Name, path, ro, err, wantRO)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	lp := nodePaths(c.Nodes[0], state)
	out, err := runInView(ctx, v, lp, 0, 0, "touch", "/etc/pgq-unitview-probe")
	if err == nil || !strings.Contains(out, "Read-only file system") {
		t.Errorf("root writing /etc in the unit's view: %v %q, want Read-only file system", err, out)
	}
	probe := filepath.Join(c.Nodes[0].DataDir(), "pgq-unitview-probe")
	if out, err := runInView(ctx, v, lp, uid, gid, "sh", "-c", "touch "+probe+" && rm "+probe); err != nil {
		t.Errorf("the unit's User= writing its data directory in the unit's view: %v %q", err, out)
	}
}

// actionSucceeded waits until n's pgquorum logs msg (its failover action)
// for epoch without an error.
func actionSucceeded(t *testing.T, n *lab.Node, msg string, epoch uint64) {
	t.Helper()
	err := lab.WaitFor(context.Background(), 60*time.Second, fmt.Sprintf("%s's %s of epoch %d to succeed", n.Name, msg, epoch), func(context.Context) error {
		lines := n.LogLines(fmt.Sprintf("msg=%q", msg))
		for _, l := range lines {
			if containsAll(l, fmt.Sprintf(" epoch=%d ", epoch), "error=<nil>") {
				return nil
			}
		}
		return fmt.Errorf("log lines %q", lines)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// streamsFrom waits until n's WAL receiver streams from upstream.
func streamsFrom(t *testing.T, n, upstream *lab.Node, timeout time.Duration) {
	t.Helper()
	err := lab.WaitFor(context.Background(), timeout, n.Name+" to stream from "+upstream.Name, func(ctx context.Context) error {
		ok, err := n.StreamsFrom(ctx, upstream)
		if err == nil && !ok {
			err = fmt.Errorf("%s does not stream from %s", n.Name, upstream.Name)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}
