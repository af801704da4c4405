package repmgr

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// maxOutput bounds what is kept of a command's output: enough for repmgr's
// diagnostics, never a memory hazard.
const maxOutput = 64 << 10

// ErrCommandFailed is wrapped by every error of a command that ran and exited
// non-zero; errors.As with *CommandError gives the exit code and output.
var ErrCommandFailed = errors.New("command failed")

// CommandError describes a command that exited non-zero.
type CommandError struct {
	Command  string
	ExitCode int
	Output   string
}

func (e *CommandError) Error() string {
	return fmt.Sprintf("%s: exit code %d: %s", e.Command, e.ExitCode, lastLine(e.Output))
}

func (e *CommandError) Unwrap() error { return ErrCommandFailed }

// Runner runs external PostgreSQL tools (repmgr, pg_ctl, initdb). These
// refuse to run as root, so a root caller names the OS user to run them as.
type Runner struct {
	User   string // run as this OS user; "" runs as the caller
	Dir    string // working directory, readable by User
	Env    []string
	Logger *slog.Logger
}

// Run runs name with args until it exits or ctx ends, and returns its combined
// output, bounded to the last 64 KiB.
func (r Runner) Run(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = r.Dir
	cmd.Env = r.Env
	cmd.WaitDelay = 5 * time.Second // a child that keeps our pipe open must not hang us
	// A process group of its own, killed whole when ctx ends: a shell's
	// children (an operator's script, a hook) die with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	if r.User != "" {
		cred, err := Credential(r.User)
		if err != nil {
			return "", err
		}
		cmd.SysProcAttr.Credential = cred
	}
	out := &tailBuffer{max: maxOutput}
	cmd.Stdout, cmd.Stderr = out, out
	start := time.Now()
	err := cmd.Run()
	line := strings.Join(append([]string{name}, args...), " ")
	if r.Logger != nil {
		r.Logger.Debug("command finished", "command", line, "duration", time.Since(start), "error", err)
	}
	var exit *exec.ExitError
	switch {
	case err != nil && ctx.Err() != nil:
		// Killed because ctx ended: its "exit code -1" is not the tool's answer,
		// and callers must not mistake a timeout for a refusal.
		return out.String(), fmt.Errorf("run %s: %w", line, context.Cause(ctx))
	case errors.As(err, &exit):
		return out.String(), &CommandError{Command: line, ExitCode: exit.ExitCode(), Output: out.String()}
	case err != nil:
		return out.String(), fmt.Errorf("run %s: %w", line, err)
	}
	return out.String(), nil
}

// Untranslated returns r with PostgreSQL's and repmgr's messages in
// English, whatever the locale pgquorum runs in (systemd passes LANG from
// /etc/locale.conf; PostgreSQL ships translations of its tools): for every
// command whose output pgquorum reads, not only shows. Operators' commands
// and the postmaster keep the caller's locale.
func (r Runner) Untranslated() Runner {
	base := r.Env
	if base == nil {
		base = os.Environ() // what Run would have inherited
	}
	// The last value of a name wins (os/exec); gettext ignores LANGUAGE
	// under the C locale.
	r.Env = append(append([]string(nil), base...), "LC_ALL=C", "LC_MESSAGES=C")
	return r
}

// Shell runs an operator's command line with /bin/sh -c, with extra
// environment variables, as Run does.
func (r Runner) Shell(ctx context.Context, cmdline string, env ...string) (string, error) {
	base := r.Env
	if base == nil {
		base = os.Environ() // what Run would have inherited
	}
	r.Env = append(append([]string(nil), base...), env...)
	return r.Run(ctx, "/bin/sh", "-c", cmdline)
}

// ShellArgs runs an operator's command line with /bin/sh -c, args
// appended to it as positional parameters ("$@"), so that no argument is
// ever parsed by the shell; otherwise as Shell.
func (r Runner) ShellArgs(ctx context.Context, cmdline string, args []string, env ...string) (string, error) {
	base := r.Env
	if base == nil {
		base = os.Environ()
	}
	r.Env = append(append([]string(nil), base...), env...)
	// $0 names the hook in ps and in the shell's own messages.
	return r.Run(ctx, "/bin/sh", append([]string{"-c", cmdline + ` "$@"`, "pgquorum-hook"}, args...)...)
}

// Credential is the uid and gid of the OS user name, to run a process as.
func Credential(name string) (*syscall.Credential, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("look up OS user %q: %w", name, err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("OS user %q has a non-numeric uid/gid", name)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	buf bytes.Buffer
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.buf.Write(p)
	if extra := t.buf.Len() - t.max; extra > 0 {
		t.buf.Next(extra)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return t.buf.String() }

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
