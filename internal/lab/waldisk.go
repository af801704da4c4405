package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// WAL disks (Options.WALDisk): each node's pg_wal on a tmpfs of its own,
// so that a test can fill the filesystem PostgreSQL writes its WAL to
// without filling the machine's. The tmpfs is mounted before the node's
// postmaster first starts: initdb --waldir for the first node, a move of
// pg_wal and a symlink after each clone for the others.

// walDiskSource names the lab's WAL disks in the mount table, followed by
// ".<PID>" of the test process that mounted them: a later run unmounts
// those of a process that is gone (sweepWALDisks).
const walDiskSource = "pgq-lab-wal"

// MinWALDisk is the smallest Options.WALDisk: walDiskConf's settings
// (a quarter of it each, max_wal_size at least two segments) then fit.
const MinWALDisk = 128 << 20

// walSegment is PostgreSQL's default WAL segment size, which initdb uses.
const walSegment = 16 << 20

// walDiskConf sizes the WAL of a node whose pg_wal holds size bytes.
// pg_wal grows to about max_wal_size plus the larger of wal_keep_size and
// what a lagging slot holds: max_wal_size and wal_keep_size get a quarter
// of the disk each, max_slot_wal_keep_size half, and that sum stays under
// the disk. Without the slot's cap (an operator with slots on a small WAL
// disk sets one) a standby that stops receiving fills the primary's disk,
// seen in a chaos run; with a cap of a quarter, the fault's six segment
// switches while a standby's disk was full cost that standby its slot and
// the WAL it needed, seen in the next. For 256 MB: 64 MB, 64 MB, 128 MB
// and min_wal_size 32 MB, against sharedConf's wal_keep_size of 128 MB and
// the default max_wal_size of 1 GB, which would not fit. Appended after
// sharedConf, it overrides it.
func walDiskConf(size int64) string {
	q := size / 4 >> 20
	return fmt.Sprintf("max_wal_size = %dMB\nmin_wal_size = %dMB\nwal_keep_size = %dMB\nmax_slot_wal_keep_size = %dMB\n", q, q/2, q, 2*q)
}

// walMount is where the node's WAL disk is mounted; walDir, inside it,
// is what the data directory's pg_wal points to.
func (n *Node) walMount() string { return filepath.Join(n.Dir, "waldisk") }
func (n *Node) walDir() string   { return filepath.Join(n.walMount(), "pg_wal") }
func (n *Node) ballast() string  { return filepath.Join(n.walMount(), "ballast") }

// mountWALDisk mounts a tmpfs of Options.WALDisk bytes at walMount, owned
// by the node's OS user.
func (n *Node) mountWALDisk() error {
	if n.owner == nil {
		return errors.New("lab: Options.WALDisk needs root (it mounts a tmpfs per node)")
	}
	dir := n.walMount()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("lab: %s: WAL disk: %w", n.Name, err)
	}
	opts := fmt.Sprintf("size=%d,mode=0700,uid=%s,gid=%s", n.c.opts.WALDisk, n.owner.Uid, n.owner.Gid)
	src := fmt.Sprintf("%s.%d", walDiskSource, os.Getpid())
	if err := syscall.Mount(src, dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, opts); err != nil {
		return fmt.Errorf("lab: %s: mount a tmpfs at %s: %w", n.Name, dir, err)
	}
	n.walMounted = true
	n.c.opts.Logf("lab: %s: pg_wal on a tmpfs of %d MB at %s", n.Name, n.c.opts.WALDisk>>20, dir)
	return nil
}

// unmountWALDisk unmounts the node's WAL disk, lazily when a process
// still holds a file there (a postgres that a kill left as a zombie), so
// that no mount outlives the cluster.
func (n *Node) unmountWALDisk() error {
	if !n.walMounted {
		return nil
	}
	dir := n.walMount()
	err := syscall.Unmount(dir, 0)
	if errors.Is(err, syscall.EBUSY) {
		err = syscall.Unmount(dir, syscall.MNT_DETACH)
	}
	if err != nil {
		return fmt.Errorf("lab: %s: unmount %s: %w", n.Name, dir, err)
	}
	n.walMounted = false
	return nil
}

// walToDisk moves the pg_wal a clone wrote into the data directory to
// the node's WAL disk, if it has one, and leaves a symlink in its place,
// as initdb --waldir does. What an earlier clone left on the disk goes
// first.
func (n *Node) walToDisk() error {
	if !n.walMounted {
		return nil
	}
	src, dst := filepath.Join(n.DataDir(), "pg_wal"), n.walDir()
	if target, err := os.Readlink(src); err == nil && target == dst {
		return nil // the clone wrote through the symlink: already there
	}
	if err := os.RemoveAll(dst); err != nil {
		return fmt.Errorf("lab: %s: clear the WAL disk: %w", n.Name, err)
	}
	if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
		return fmt.Errorf("lab: %s: copy pg_wal to the WAL disk: %w: %s", n.Name, err, out)
	}
	if err := os.RemoveAll(src); err != nil {
		return fmt.Errorf("lab: %s: %w", n.Name, err)
	}
	if err := os.Symlink(dst, src); err != nil {
		return fmt.Errorf("lab: %s: %w", n.Name, err)
	}
	uid, _ := strconv.Atoi(n.owner.Uid)
	gid, _ := strconv.Atoi(n.owner.Gid)
	if err := os.Lchown(src, uid, gid); err != nil {
		return fmt.Errorf("lab: %s: %w", n.Name, err)
	}
	return nil
}

// FillWALDisk fills the node's WAL disk with a ballast file until the
// filesystem says ENOSPC, and returns the bytes left free (less than a
// page). PostgreSQL writes into the segments it already has; it fails
// at the next one it must create, which SwitchWAL on the primary brings
// about. It fails when pg_wal no longer points to the disk (a clone
// that replaced it).
func (n *Node) FillWALDisk() (free int64, err error) {
	if !n.walMounted {
		return 0, fmt.Errorf("lab: %s has no WAL disk (Options.WALDisk)", n.Name)
	}
	if p, err := filepath.EvalSymlinks(filepath.Join(n.DataDir(), "pg_wal")); err != nil || p != n.walDir() {
		return 0, fmt.Errorf("lab: %s: pg_wal is not on the WAL disk (%q, %v)", n.Name, p, err)
	}
	f, err := os.OpenFile(n.ballast(), os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, fmt.Errorf("lab: %s: ballast: %w", n.Name, err)
	}
	defer func() { _ = f.Close() }() // only allocated, never written: nothing to flush
	// In chunks, down to a page: PostgreSQL may take space meanwhile,
	// and one allocation larger than what is free fails whole.
	st, _ := f.Stat()
	off := st.Size()
	for chunk := int64(walSegment); chunk >= 4096; {
		err := syscall.Fallocate(int(f.Fd()), 0, off, chunk)
		switch {
		case err == nil:
			off += chunk
		case errors.Is(err, syscall.ENOSPC):
			chunk /= 2
		default:
			return 0, fmt.Errorf("lab: %s: fill the WAL disk: %w", n.Name, err)
		}
	}
	var fs syscall.Statfs_t
	if err := syscall.Statfs(n.walMount(), &fs); err != nil {
		return 0, fmt.Errorf("lab: %s: %w", n.Name, err)
	}
	free = int64(fs.Bavail) * fs.Bsize
	n.c.opts.Logf("lab: %s: WAL disk filled: %d MB of ballast, %d bytes free", n.Name, off>>20, free)
	return free, nil
}

// FreeWALDisk removes the ballast of FillWALDisk.
func (n *Node) FreeWALDisk() error {
	if err := os.Remove(n.ballast()); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("lab: %s: remove the ballast: %w", n.Name, err)
	}
	n.c.opts.Logf("lab: %s: WAL disk freed", n.Name)
	return nil
}

// sweepWALDisks unmounts the WAL disks of test processes that are gone
// (killed before their cleanup ran), which would otherwise hold their
// memory for good. Those of running processes, other tests' among them,
// are left alone.
func sweepWALDisks(logf func(string, ...any)) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		logf("lab: read the mount table: %v", err)
		return
	}
	for _, dir := range staleWALDisks(string(b), os.Getpid(), processExists) {
		err := syscall.Unmount(dir, syscall.MNT_DETACH)
		logf("lab: unmount %s, a WAL disk left by a test process that is gone: %v", dir, errText(err))
	}
}

// staleWALDisks returns the mount points of the lab's WAL disks in
// mountinfo (proc(5)) whose process is neither self nor alive. A PID
// reused since is taken for alive: that disk waits for a later sweep.
func staleWALDisks(mountinfo string, self int, alive func(pid int) bool) []string {
	var out []string
	for _, line := range strings.Split(mountinfo, "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		fields, fs := strings.Fields(pre), strings.Fields(post)
		if !ok || len(fields) < 5 || len(fs) < 2 || fs[0] != "tmpfs" {
			continue
		}
		pidText, ok := strings.CutPrefix(fs[1], walDiskSource+".")
		pid, err := strconv.Atoi(pidText)
		if !ok || err != nil || pid == self || alive(pid) {
			continue
		}
		out = append(out, unescapeMountPath(fields[4]))
	}
	return out
}

// unescapeMountPath undoes mountinfo's octal escapes (\040 for a space).
func unescapeMountPath(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// processExists tells whether pid names a process (one of another user's
// answers EPERM: it exists).
func processExists(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// PostmasterRunning tells whether the postmaster that postmaster.pid
// names runs (not a zombie): after a PANIC whose crash recovery failed,
// it has exited.
func (n *Node) PostmasterRunning() bool {
	pid := n.PostmasterPID()
	if pid == 0 {
		return false
	}
	state, ok := processState(pid)
	return ok && state != "Z"
}

// processState is the state letter of pid in /proc (R, S, T, Z …);
// false when it has none.
func processState(pid int) (string, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", false
	}
	// pid (comm) state …; comm may hold spaces, so cut at the last ')'.
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) == 0 {
		return "", false
	}
	return fields[0], true
}

func errText(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}

// SwitchWAL ends the primary's current WAL segment (pg_switch_wal) and
// commits a transaction in the next one, flushed locally
// (synchronous_commit local: no standby waited for), and returns the WAL
// position after it. The commit needs the next segment's file: when none
// was recycled and the WAL disk is full, PostgreSQL cannot create it and
// the backend PANICs, which returns an error here.
func (n *Node) SwitchWAL(ctx context.Context) (int64, error) {
	conn, err := n.Connect(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.Background())
	var lsn int64
	for _, sql := range []string{"SET synchronous_commit = local", "SELECT pg_switch_wal()", "SELECT txid_current()"} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			return 0, fmt.Errorf("%s: %s: %w", n.Name, sql, err)
		}
	}
	if err := conn.QueryRow(ctx, "SELECT (pg_current_wal_flush_lsn() - '0/0')::bigint").Scan(&lsn); err != nil {
		return 0, fmt.Errorf("%s: WAL position: %w", n.Name, err)
	}
	return lsn, nil
}

// ReceivedLSN is how far the standby's WAL receiver has written and
// flushed WAL (pg_last_wal_receive_lsn), 0 if it has received none.
func (n *Node) ReceivedLSN(ctx context.Context) (int64, error) {
	return n.QueryInt(ctx, "SELECT coalesce((pg_last_wal_receive_lsn() - '0/0')::bigint, 0)")
}
