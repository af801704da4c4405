package repmgr

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The data directory's lock: PostgreSQL's postmaster.pid. A postmaster
// (and pg_ctl status, and a single-user postgres) takes the directory as
// busy while the PID on its first line names a live process; it writes its
// state on the eighth line (PostgreSQL 10 and later). A rejoin holds the
// directory the same way while it rewinds, so that an operator's pg_ctl
// start, or a service manager's, is refused by PostgreSQL itself.

// Postmaster states of postmaster.pid's eighth line.
const (
	PMStarting = "starting" // crash or archive recovery, not accepting connections
	PMStopping = "stopping"
	PMReady    = "ready"   // accepting connections (a primary, or a standby without hot_standby)
	PMStandby  = "standby" // a hot standby accepting connections
)

// Postmaster is what postmaster.pid says, and whether its process lives.
type Postmaster struct {
	PID    int
	Alive  bool   // the process lives and is no zombie
	Status string // the eighth line, trimmed; "" when absent
}

// ErrDataDirBusy is TakeDataDir's answer when a live process holds the data
// directory: a postmaster, or another holder.
var ErrDataDirBusy = errors.New("a live process holds the data directory")

func pidFile(dataDir string) string { return filepath.Join(dataDir, "postmaster.pid") }

// ReadPostmaster reads dataDir's postmaster.pid; ok is false when there is none.
func ReadPostmaster(dataDir string) (pm Postmaster, ok bool, err error) {
	pm, raw, err := readPostmaster(dataDir)
	return pm, raw != nil, err
}

// readPostmaster is ReadPostmaster with the file's bytes; nil when absent.
func readPostmaster(dataDir string) (Postmaster, []byte, error) {
	b, err := os.ReadFile(pidFile(dataDir))
	if errors.Is(err, os.ErrNotExist) {
		return Postmaster{}, nil, nil
	}
	if err != nil {
		return Postmaster{}, nil, fmt.Errorf("read postmaster.pid: %w", err)
	}
	if b == nil {
		b = []byte{}
	}
	pm := ParsePostmaster(string(b))
	pm.Alive = pm.PID > 0 && processAlive(pm.PID)
	return pm, b, nil
}

// ParsePostmaster reads the PID and the state of a postmaster.pid. A file
// being written may lack both: PID 0, state "".
func ParsePostmaster(s string) Postmaster {
	lines := strings.Split(s, "\n")
	pid, _ := strconv.Atoi(strings.TrimSpace(lines[0]))
	pm := Postmaster{PID: pid}
	if len(lines) >= 8 {
		pm.Status = strings.TrimSpace(lines[7])
	}
	return pm
}

// processAlive tells whether pid is a live process, as PostgreSQL asks
// (kill 0; a process of another OS user, EPERM, cannot be a postmaster of
// this directory), except that a zombie, a killed postmaster nobody has
// reaped yet, is dead.
func processAlive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return !errors.Is(err, os.ErrNotExist)
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(fields) == 0 || fields[0] != "Z"
}

// DataDirLock holds a data directory for pgquorum: postmaster.pid names a
// placeholder process of its own (sleep, for at most the hold given), so
// that PostgreSQL refuses to start there meanwhile. The placeholder dies
// with pgquorum or at the end of the hold, whichever comes first: a lock
// pgquorum can no longer release goes stale by itself, and PostgreSQL then
// removes it as it removes any stale postmaster.pid.
type DataDirLock struct {
	dir  string
	proc *exec.Cmd
}

// TakeDataDir takes dataDir for at most hold. It returns ErrDataDirBusy,
// and what postmaster.pid says, when a live process holds it or any
// process works in it; a stale postmaster.pid (its process dead, or a
// zombie) is removed first.
func TakeDataDir(dataDir string, hold time.Duration) (*DataDirLock, Postmaster, error) {
	if pm, err := clearStale(dataDir); err != nil {
		return nil, pm, err
	}
	secs := int(hold.Seconds()) + 1
	cmd := exec.Command("sleep", strconv.Itoa(secs))
	// Its own process group, so that a signal to pgquorum's does not end
	// it early; killed by the kernel when pgquorum dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, Postmaster{}, fmt.Errorf("start the data directory's placeholder: %w", err)
	}
	l := &DataDirLock{dir: dataDir, proc: cmd}
	if err := l.claim(); err != nil {
		pm, _, _ := ReadPostmaster(dataDir)
		return nil, pm, err
	}
	if err := l.clearGuard(); err != nil {
		_ = l.Release()
		return nil, Postmaster{}, err
	}
	return l, Postmaster{PID: cmd.Process.Pid, Alive: true}, nil
}

// clearStale removes a postmaster.pid whose process is dead. A postmaster
// starting meanwhile may replace the stale file with its own between the
// read and the removal: the file is moved aside first, and put back when
// it is no longer the stale one read.
func clearStale(dataDir string) (Postmaster, error) {
	pm, raw, err := readPostmaster(dataDir)
	switch {
	case err != nil || raw == nil:
		return pm, err
	case pm.Alive:
		return pm, ErrDataDirBusy
	}
	aside := pidFile(dataDir) + ".pgquorum-stale"
	if err := os.Rename(pidFile(dataDir), aside); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return pm, nil // removed by a starting postmaster
		}
		return pm, fmt.Errorf("move the stale postmaster.pid (PID %d) aside: %w", pm.PID, err)
	}
	moved, err := os.ReadFile(aside)
	if err == nil && !bytes.Equal(moved, raw) {
		// A postmaster's own, written since the read: back where it
		// was, unless yet another took its place.
		_ = os.Link(aside, pidFile(dataDir))
		_ = os.Remove(aside)
		return ParsePostmaster(string(moved)), ErrDataDirBusy
	}
	if err := os.Remove(aside); err != nil {
		return pm, fmt.Errorf("remove the stale postmaster.pid (PID %d): %w", pm.PID, err)
	}
	return pm, nil
}

// claim writes postmaster.pid exclusively, as a postmaster does (of two,
// one wins), then makes sure the directory is the lock's alone: no
// process but the placeholder works in it (a postmaster that got past its
// own check first does), and the file still names the placeholder. A
// postmaster refused by the file leaves at once: it is waited for, briefly.
// On failure the lock is released and the error is ErrDataDirBusy.
func (l *DataDirLock) claim() error {
	if err := l.write(); err != nil {
		l.stop()
		if errors.Is(err, os.ErrExist) {
			return ErrDataDirBusy
		}
		return err
	}
	deadline := time.Now().Add(time.Second)
	for {
		others := InDataDir(l.dir, l.PID())
		if len(others) == 0 && l.holds() {
			return nil
		}
		if time.Now().After(deadline) || !l.holds() {
			_ = l.Release()
			return ErrDataDirBusy
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// holds tells whether postmaster.pid still names the placeholder.
func (l *DataDirLock) holds() bool {
	pm, ok, err := ReadPostmaster(l.dir)
	return err == nil && ok && pm.PID == l.PID()
}

// Check fails unless the lock still holds the directory alone.
func (l *DataDirLock) Check() error {
	if others := InDataDir(l.dir, l.PID()); len(others) > 0 || !l.holds() {
		return fmt.Errorf("%w: processes %v work in it", ErrDataDirBusy, others)
	}
	return nil
}

// InDataDir lists the postgres processes, but those of except and this
// one, whose working directory is dataDir: every postgres process works in
// its data directory, a postmaster from before it takes postmaster.pid.
// Other programs (an operator's shell cd'ed there) do not count. Only the
// processes of this OS user can be seen; a postmaster runs as the data
// directory's owner, as pgquorum must.
func InDataDir(dataDir string, except ...int) []int {
	want, err := filepath.EvalSymlinks(dataDir)
	if err != nil {
		want = dataDir
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self || slices.Contains(except, pid) {
			continue
		}
		cwd, err := os.Readlink("/proc/" + e.Name() + "/cwd")
		if err != nil || cwd != want {
			continue
		}
		if comm, err := os.ReadFile("/proc/" + e.Name() + "/comm"); err == nil && strings.TrimSpace(string(comm)) == "postgres" {
			pids = append(pids, pid)
		}
	}
	return pids
}

// write creates postmaster.pid naming the placeholder, exclusively.
func (l *DataDirLock) write() error {
	f, err := os.OpenFile(pidFile(l.dir), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create postmaster.pid: %w", err)
	}
	// The PID and the directory, as a postmaster's first two lines; no
	// shared memory key, no state: pg_ctl reads the PID alone.
	_, err = fmt.Fprintf(f, "%d\n%s\n", l.proc.Process.Pid, l.dir)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(pidFile(l.dir))
		return fmt.Errorf("write postmaster.pid: %w", err)
	}
	return nil
}

// PID is the placeholder's PID.
func (l *DataDirLock) PID() int { return l.proc.Process.Pid }

// Env lets a postgres run by pgquorum itself (the single-user recovery)
// take the lock over: PostgreSQL deems a postmaster.pid naming its
// "grandparent" stale.
func (l *DataDirLock) Env() string { return "PG_GRANDPARENT_PID=" + strconv.Itoa(l.PID()) }

// Retake writes postmaster.pid again after a postgres that took the lock
// over removed it at its exit. ErrDataDirBusy: another postmaster came
// first, and the lock is released.
func (l *DataDirLock) Retake() error {
	if l.holds() {
		return l.Check()
	}
	if _, err := clearStale(l.dir); err != nil {
		l.stop()
		return err
	}
	return l.claim()
}

// Release removes postmaster.pid if it still names the placeholder, and
// ends the placeholder. Safe to call twice.
func (l *DataDirLock) Release() error {
	if l.proc == nil {
		return nil
	}
	var err error
	if pm, ok, rerr := ReadPostmaster(l.dir); rerr == nil && ok && pm.PID == l.PID() {
		if err = os.Remove(pidFile(l.dir)); err != nil {
			err = fmt.Errorf("remove pgquorum's postmaster.pid: %w", err)
		}
	}
	l.stop()
	return err
}

func (l *DataDirLock) stop() {
	if l.proc == nil {
		return
	}
	_ = l.proc.Process.Kill()
	_ = l.proc.Wait()
	l.proc = nil
}

// WaitPostmaster polls postmaster.pid until done says so or ctx ends.
func WaitPostmaster(ctx context.Context, dataDir string, every time.Duration, done func(pm Postmaster, ok bool) bool) (Postmaster, bool, error) {
	for {
		pm, ok, err := ReadPostmaster(dataDir)
		if err != nil {
			return pm, ok, err
		}
		if done(pm, ok) {
			return pm, ok, nil
		}
		select {
		case <-ctx.Done():
			return pm, ok, context.Cause(ctx)
		case <-time.After(every):
		}
	}
}

// pg_rewind removes postmaster.pid from its target, among the files it
// never copies: the lock alone does not keep PostgreSQL out during a
// rewind. The guard does: a data directory others may enter (o+x) is one
// PostgreSQL refuses to start in ("data directory has invalid
// permissions"), while pg_rewind, running as the owner, works as before.

// guardBit is the mode bit the guard sets.
const guardBit = 0o001

// Guard makes PostgreSQL refuse the data directory until Unguard, then
// waits (a second at most) until no process but the lock's works in it: a
// postmaster that passed its permission check before the guard meets the
// lock's postmaster.pid and leaves.
func (l *DataDirLock) Guard() error {
	if err := setMode(l.dir, guardBit, 0); err != nil {
		return err
	}
	deadline := time.Now().Add(time.Second)
	for {
		if err := l.Check(); err == nil {
			return nil
		} else if time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Unguard writes postmaster.pid again (pg_rewind removed it), checks that
// no other process worked in the directory meanwhile (ErrDataDirBusy, and
// the guard stays), then lifts the guard.
func (l *DataDirLock) Unguard() error {
	if !l.holds() {
		if err := l.write(); err != nil {
			return err
		}
	}
	if err := l.Check(); err != nil {
		return err
	}
	return setMode(l.dir, 0, guardBit)
}

// clearGuard lifts a guard a pgquorum that died during a rewind left: the
// lock, held, keeps PostgreSQL out as well.
func (l *DataDirLock) clearGuard() error { return setMode(l.dir, 0, guardBit) }

func setMode(dir string, set, clear os.FileMode) error {
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("stat the data directory: %w", err)
	}
	mode := st.Mode().Perm()
	if want := (mode | set) &^ clear; want != mode {
		if err := os.Chmod(dir, want); err != nil {
			return fmt.Errorf("chmod the data directory to %o: %w", want, err)
		}
	}
	return nil
}

// RewindRoom is the least free space the rejoin wants on the filesystems
// of the data directory and of its pg_wal before it runs crash recovery or
// pg_rewind: two WAL segments (an end-of-recovery checkpoint may start a
// new one; pg_rewind writes history files and copies what changed). Either
// run out of space part way leaves the directory for a rebuild (pg_rewind's
// documentation: "the data folder of the target is likely not in a state
// that can be recovered"), seen with a full WAL disk in the chaos harness.
const RewindRoom = 2 * 16 << 20

// Room is the free space (bytes available to an unprivileged user) of the
// filesystems holding dataDir and dataDir/pg_wal (which may be a symlink to
// another filesystem): the smaller of the two, and which path it is.
func Room(dataDir string) (free uint64, where string, err error) {
	free = ^uint64(0)
	for _, p := range []string{dataDir, filepath.Join(dataDir, "pg_wal")} {
		var st syscall.Statfs_t
		if err := syscall.Statfs(p, &st); errors.Is(err, os.ErrNotExist) && p != dataDir {
			continue // no pg_wal: what reads the directory next says so
		} else if err != nil {
			return 0, p, fmt.Errorf("free space of %s: %w", p, err)
		}
		if f := st.Bavail * uint64(st.Bsize); f < free {
			free, where = f, p
		}
	}
	return free, where, nil
}
