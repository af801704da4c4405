package repmgr

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Service starts and stops the local PostgreSQL instance the way repmgr
// does: with repmgr.conf's service_start_command or service_stop_command
// when set (systemd setups), else with pg_ctl from pg_bindir and the
// pg_ctl_options of repmgr.conf, through the shell as repmgr runs them.
type Service struct {
	Runner Runner
	Conf   Config // the node's repmgr.conf
}

func (s Service) pgctl(action string) string {
	cmd := shellQuote(s.bin("pg_ctl"))
	if s.Conf.PGCtlOptions != "" {
		cmd += " " + s.Conf.PGCtlOptions // shell words, as repmgr passes them
	}
	return cmd + " -w -D " + shellQuote(s.Conf.DataDirectory) + " " + action
}

func (s Service) bin(name string) string {
	if s.Conf.PGBinDir == "" {
		return name
	}
	return filepath.Join(s.Conf.PGBinDir, name)
}

// Stop stops the instance with a fast shutdown: clients are disconnected,
// and the WAL up to the shutdown checkpoint reaches the connected standbys
// before the walsenders exit.
func (s Service) Stop(ctx context.Context) (string, error) {
	cmd := s.Conf.ServiceStopCommand
	if cmd == "" {
		cmd = s.pgctl("-m fast stop")
	}
	out, err := s.Runner.Shell(ctx, cmd)
	if err != nil {
		return out, fmt.Errorf("stop PostgreSQL: %w", err)
	}
	return out, nil
}

// Start starts the instance and waits until it accepts connections.
func (s Service) Start(ctx context.Context) (string, error) {
	cmd := s.Conf.ServiceStartCommand
	if cmd == "" {
		cmd = s.pgctl("start")
	}
	out, err := s.Runner.Shell(ctx, cmd)
	if err != nil {
		return out, fmt.Errorf("start PostgreSQL: %w", err)
	}
	return out, nil
}

// Running tells whether a postmaster runs on the data directory
// ("pg_ctl status": 0 running, 3 not running).
func (s Service) Running(ctx context.Context) (bool, error) {
	out, err := s.Runner.Run(ctx, s.bin("pg_ctl"), "status", "-D", s.Conf.DataDirectory)
	var ce *CommandError
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &ce) && ce.ExitCode == 3:
		return false, nil
	}
	return false, fmt.Errorf("pg_ctl status: %w: %s", err, lastLine(out))
}

// Control is what pg_controldata says of a stopped instance.
type Control struct {
	State      string // "shut down", "in production", "shut down in recovery", …
	Checkpoint int64  // the latest checkpoint's location
	Timeline   int
}

// Controldata reads the control file of the instance.
func (s Service) Controldata(ctx context.Context) (Control, error) {
	// Untranslated: the labels ParseControldata reads.
	out, err := s.Runner.Untranslated().Run(ctx, s.bin("pg_controldata"), "-D", s.Conf.DataDirectory)
	if err != nil {
		return Control{}, fmt.Errorf("read the control file: %w", err)
	}
	return ParseControldata(out)
}

// ParseControldata reads the fields of pg_controldata's output that Control
// holds, by their labels in the C locale; their absence is an error rather
// than a guess.
func ParseControldata(out string) (Control, error) {
	var c Control
	var haveState, haveCkpt, haveTLI bool
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch strings.TrimSpace(k) {
		case "Database cluster state":
			c.State, haveState = v, true
		case "Latest checkpoint location":
			lsn, err := ParseLSN(v)
			if err != nil {
				return Control{}, fmt.Errorf("pg_controldata: latest checkpoint location: %w", err)
			}
			c.Checkpoint, haveCkpt = lsn, true
		case "Latest checkpoint's TimeLineID":
			tli, err := strconv.Atoi(v)
			if err != nil || tli < 1 {
				return Control{}, fmt.Errorf("pg_controldata: latest checkpoint's TimeLineID %q is not a timeline", v)
			}
			c.Timeline, haveTLI = tli, true
		}
	}
	if !haveState || !haveCkpt || !haveTLI {
		return Control{}, fmt.Errorf("pg_controldata: output lacks the cluster state, checkpoint location or timeline (is LC_MESSAGES C?)")
	}
	return c, nil
}

// ParseLSN reads a WAL location written as PostgreSQL does, "16/B374D848",
// as the byte position pg_wal_lsn_diff(lsn, '0/0') gives.
func ParseLSN(s string) (int64, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok {
		return 0, fmt.Errorf("WAL location %q: want X/X", s)
	}
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if err1 != nil || err2 != nil || h >= 1<<31 {
		return 0, fmt.Errorf("WAL location %q: want two hexadecimal 32-bit halves", s)
	}
	return int64(h<<32 | l), nil
}

// shellQuote quotes s for /bin/sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// RunningServer is what the data directory says of the server running on it,
// without connecting to it.
type RunningServer struct {
	PID int // the live postmaster's; 0 when none runs (or pgquorum holds the directory)
	// Standby is set when standby.signal or recovery.signal is there: the
	// postmaster started (or will start) in recovery, and has not been
	// promoted since (a promotion removes them).
	Standby bool
}

// RunningServer reads postmaster.pid and the recovery signal files of the data
// directory: whether a postmaster runs, and as what, when the database
// itself does not answer (a probe timing out on a busy machine). A
// rejoin's placeholder (DataDirLock), which writes no state line, is no
// server.
func (s Service) RunningServer() (RunningServer, error) {
	dir := s.Conf.DataDirectory
	pm, ok, err := ReadPostmaster(dir)
	if err != nil || !ok || !pm.Alive || pm.Status == "" {
		return RunningServer{}, err
	}
	srv := RunningServer{PID: pm.PID}
	for _, name := range []string{"standby.signal", "recovery.signal"} {
		_, err := os.Stat(filepath.Join(dir, name))
		switch {
		case err == nil:
			srv.Standby = true
		case !errors.Is(err, os.ErrNotExist):
			return RunningServer{}, fmt.Errorf("look for %s: %w", name, err)
		}
	}
	return srv, nil
}
