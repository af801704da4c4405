package repmgr

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
	b, err := os.ReadFile(pidFile(dataDir))
	if errors.Is(err, os.ErrNotExist) {
		return Postmaster{}, false, nil
	}
	if err != nil {
		return Postmaster{}, false, fmt.Errorf("read postmaster.pid: %w", err)
	}
	pm = ParsePostmaster(string(b))
	pm.Alive = pm.PID > 0 && processAlive(pm.PID)
	return pm, true, nil
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
// (kill 0), except that a zombie, a killed postmaster nobody has reaped
// yet, is dead.
func processAlive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
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
// and what postmaster.pid says, when a live process holds it; a stale
// postmaster.pid (its process dead, or a zombie) is removed first.
func TakeDataDir(dataDir string, hold time.Duration) (*DataDirLock, Postmaster, error) {
	pm, ok, err := ReadPostmaster(dataDir)
	switch {
	case err != nil:
		return nil, pm, err
	case ok && pm.Alive:
		return nil, pm, ErrDataDirBusy
	case ok:
		if err := os.Remove(pidFile(dataDir)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, pm, fmt.Errorf("remove the stale postmaster.pid (PID %d): %w", pm.PID, err)
		}
	}
	secs := int(hold.Seconds()) + 1
	cmd := exec.Command("sleep", strconv.Itoa(secs))
	// Its own process group, so that a signal to pgquorum's does not end
	// it early; killed by the kernel when pgquorum dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, pm, fmt.Errorf("start the data directory's placeholder: %w", err)
	}
	l := &DataDirLock{dir: dataDir, proc: cmd}
	if err := l.write(); err != nil {
		l.stop()
		if errors.Is(err, os.ErrExist) {
			// A postmaster came first: it holds the directory.
			pm, _, _ := ReadPostmaster(dataDir)
			return nil, pm, ErrDataDirBusy
		}
		return nil, pm, err
	}
	return l, Postmaster{PID: cmd.Process.Pid, Alive: true}, nil
}

// write creates postmaster.pid naming the placeholder, exclusively, as a
// postmaster does: of two, one wins.
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
	pm, ok, err := ReadPostmaster(l.dir)
	switch {
	case err != nil:
		return err
	case ok && pm.PID == l.PID():
		return nil
	case ok && pm.Alive:
		l.stop()
		return ErrDataDirBusy
	case ok:
		if err := os.Remove(pidFile(l.dir)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove the stale postmaster.pid (PID %d): %w", pm.PID, err)
		}
	}
	if err := l.write(); err != nil {
		l.stop()
		if errors.Is(err, os.ErrExist) {
			return ErrDataDirBusy
		}
		return err
	}
	return nil
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
