package repmgr

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

func TestParsePostmaster(t *testing.T) {
	tests := []struct {
		name, in string
		want     Postmaster
	}{
		{"a primary accepting connections", "4242\n/data\n1700000000\n5432\n/tmp\n*\n  5432001     65536\nready   \n", Postmaster{PID: 4242, Status: PMReady}},
		{"a hot standby", "17\n/data\n1\n5432\n/tmp\n*\n1 2\nstandby \n", Postmaster{PID: 17, Status: PMStandby}},
		{"a postmaster in recovery", "17\n/data\n1\n5432\n/tmp\n*\n1 2\nstarting\n", Postmaster{PID: 17, Status: PMStarting}},
		{"pgquorum's placeholder: no state", "99\n/data\n", Postmaster{PID: 99}},
		{"a file being written", "", Postmaster{}},
	}
	for _, tt := range tests {
		if got := ParsePostmaster(tt.in); got != tt.want {
			t.Errorf("%s: ParsePostmaster = %+v, want %+v", tt.name, got, tt.want)
		}
	}
}

// deadPID is the PID of a process that has exited and been reaped.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

func writePidFile(t *testing.T, dir, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "postmaster.pid"), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestTakeDataDir(t *testing.T) {
	t.Run("an empty directory is taken, and refused to others until released", func(t *testing.T) {
		dir := t.TempDir()
		l, _, err := TakeDataDir(dir, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		pm, ok, err := ReadPostmaster(dir)
		if err != nil || !ok || !pm.Alive || pm.PID != l.PID() {
			t.Fatalf("postmaster.pid while held: %+v %t %v", pm, ok, err)
		}
		if _, pm, err := TakeDataDir(dir, time.Minute); !errors.Is(err, ErrDataDirBusy) || pm.PID != l.PID() {
			t.Fatalf("second take: %+v %v, want busy, held by %d", pm, err, l.PID())
		}
		if err := l.Release(); err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := ReadPostmaster(dir); ok {
			t.Fatal("postmaster.pid left after the release")
		}
		if err := l.Release(); err != nil {
			t.Fatalf("second release: %v", err)
		}
	})
	t.Run("a stale postmaster.pid is replaced", func(t *testing.T) {
		dir := t.TempDir()
		writePidFile(t, dir, fmt.Sprintf("%d\n%s\n", deadPID(t), dir))
		l, _, err := TakeDataDir(dir, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = l.Release() }()
		if pm, _, _ := ReadPostmaster(dir); pm.PID != l.PID() {
			t.Fatalf("postmaster.pid names %d, want the placeholder %d", pm.PID, l.PID())
		}
	})
	t.Run("a live holder is not disturbed", func(t *testing.T) {
		dir := t.TempDir()
		content := strconv.Itoa(os.Getpid()) + "\n" + dir + "\n1\n5432\n/tmp\n*\n1 2\nready   \n"
		writePidFile(t, dir, content)
		if _, pm, err := TakeDataDir(dir, time.Minute); !errors.Is(err, ErrDataDirBusy) || pm.Status != PMReady {
			t.Fatalf("take: %+v %v, want busy", pm, err)
		}
		if b, _ := os.ReadFile(filepath.Join(dir, "postmaster.pid")); string(b) != content {
			t.Fatalf("postmaster.pid changed to %q", b)
		}
	})
	t.Run("a postgres process working in the directory owns it; another program does not", func(t *testing.T) {
		dir := t.TempDir()
		shell := exec.Command("sleep", "30") // an operator's shell cd'ed there
		shell.Dir = dir
		if err := shell.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = shell.Process.Kill(); _ = shell.Wait() }()
		l, _, err := TakeDataDir(dir, time.Minute)
		if err != nil {
			t.Fatalf("take beside a shell: %v", err)
		}
		if err := l.Release(); err != nil {
			t.Fatal(err)
		}
		// A program named postgres, as a postmaster is.
		sleep, err := exec.LookPath("sleep")
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(sleep)
		if err != nil {
			t.Fatal(err)
		}
		postgres := filepath.Join(t.TempDir(), "postgres")
		if err := os.WriteFile(postgres, b, 0o755); err != nil {
			t.Fatal(err)
		}
		worker := exec.Command(postgres, "30")
		worker.Dir = dir
		if err := worker.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = worker.Process.Kill(); _ = worker.Wait() }()
		if _, _, err := TakeDataDir(dir, time.Minute); !errors.Is(err, ErrDataDirBusy) {
			t.Fatalf("take: %v, want busy", err)
		}
		if _, ok, _ := ReadPostmaster(dir); ok {
			t.Fatal("postmaster.pid left behind by the refused take")
		}
	})
}

func TestDataDirGuard(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	l, _, err := TakeDataDir(dir, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Release() }()
	mode := func() os.FileMode {
		st, err := os.Stat(dir)
		if err != nil {
			t.Fatal(err)
		}
		return st.Mode().Perm()
	}
	if err := l.Guard(); err != nil {
		t.Fatal(err)
	}
	if m := mode(); m != 0o701 {
		t.Fatalf("guarded mode %o, want 701 (PostgreSQL refuses it)", m)
	}
	// pg_rewind removes postmaster.pid.
	if err := os.Remove(filepath.Join(dir, "postmaster.pid")); err != nil {
		t.Fatal(err)
	}
	if err := l.Unguard(); err != nil {
		t.Fatal(err)
	}
	if m := mode(); m != 0o700 {
		t.Fatalf("mode after the guard %o, want 700", m)
	}
	if pm, _, _ := ReadPostmaster(dir); pm.PID != l.PID() {
		t.Fatalf("postmaster.pid after the guard names %d, want the placeholder %d", pm.PID, l.PID())
	}
	// A guard left by a pgquorum that died is lifted by the next take.
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o701); err != nil {
		t.Fatal(err)
	}
	l2, _, err := TakeDataDir(dir, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l2.Release() }()
	if m := mode(); m != 0o700 {
		t.Fatalf("mode after a take %o, want 700", m)
	}
}

func TestProcessAlive(t *testing.T) {
	if !processAlive(os.Getpid()) {
		t.Error("this process is not alive")
	}
	if processAlive(deadPID(t)) {
		t.Error("a reaped process is alive")
	}
	zombie := exec.Command("true")
	if err := zombie.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = zombie.Wait() }()
	err := waitUntil(5*time.Second, func() bool { return !processAlive(zombie.Process.Pid) })
	if err != nil {
		t.Errorf("a zombie (exited, not reaped) is alive: %v", err)
	}
}

func waitUntil(d time.Duration, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return errors.New("timed out")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}
