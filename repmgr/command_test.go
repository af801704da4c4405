package repmgr

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// These tests run /bin/sh, which every supported machine has, as harmless
// stand-ins for repmgr and pg_ctl.
func TestRunnerRun(t *testing.T) {
	tests := []struct {
		name       string
		runner     Runner
		script     string
		wantOut    string
		wantCode   int // 0: success expected
		wantErrMsg string
	}{
		{name: "success returns output", script: "echo hello", wantOut: "hello\n"},
		{name: "stderr is captured with stdout", script: "echo out; echo err >&2", wantOut: "out\nerr\n"},
		{name: "exit 1 is a CommandError", script: "echo first; echo refused >&2; exit 1",
			wantOut: "first\nrefused\n", wantCode: 1, wantErrMsg: "exit code 1: refused"},
		{name: "exit 3 keeps its code", script: "exit 3", wantCode: 3},
		{name: "runs in Dir", runner: Runner{Dir: "/"}, script: "pwd", wantOut: "/\n"},
		{name: "passes Env", runner: Runner{Env: []string{"PGQ_TEST=42"}}, script: "echo $PGQ_TEST", wantOut: "42\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			out, err := tt.runner.Run(ctx, "/bin/sh", "-c", tt.script)
			if tt.wantOut != "" && out != tt.wantOut {
				t.Errorf("output = %q, want %q", out, tt.wantOut)
			}
			if tt.wantCode == 0 {
				if err != nil {
					t.Fatalf("Run: %v", err)
				}
				return
			}
			var ce *CommandError
			if !errors.As(err, &ce) || !errors.Is(err, ErrCommandFailed) {
				t.Fatalf("error = %v, want a *CommandError wrapping ErrCommandFailed", err)
			}
			if ce.ExitCode != tt.wantCode || ce.Output != out || ce.Command != "/bin/sh -c "+tt.script {
				t.Errorf("CommandError = %+v, want code %d, output %q", ce, tt.wantCode, out)
			}
			if !strings.Contains(err.Error(), tt.wantErrMsg) {
				t.Errorf("message %q does not contain %q", err.Error(), tt.wantErrMsg)
			}
		})
	}
}

// TestRunnerRunBoundsOutput writes 1 MiB and expects only its last 64 KiB.
func TestRunnerRunBoundsOutput(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := Runner{}.Run(ctx, "/bin/sh", "-c", "head -c 1048576 /dev/zero | tr '\\0' a; echo TAIL; exit 2")
	if len(out) != maxOutput {
		t.Errorf("kept %d bytes of output, want %d", len(out), maxOutput)
	}
	if !strings.HasSuffix(out, "aTAIL\n") {
		t.Errorf("output does not end with the command's last bytes: ...%q", out[max(0, len(out)-20):])
	}
	var ce *CommandError
	if !errors.As(err, &ce) || len(ce.Output) != maxOutput || ce.ExitCode != 2 {
		t.Fatalf("error = %v, want a CommandError with code 2 and bounded output", err)
	}
}

func TestRunnerRunFailuresThatAreNotExitCodes(t *testing.T) {
	t.Run("missing binary is not ErrCommandFailed", func(t *testing.T) {
		_, err := Runner{}.Run(context.Background(), "/nonexistent/pgq-no-such-tool")
		if err == nil || errors.Is(err, ErrCommandFailed) {
			t.Fatalf("error = %v, want a start failure, not ErrCommandFailed", err)
		}
	})
	t.Run("missing binary on PATH wraps exec.ErrNotFound", func(t *testing.T) {
		_, err := Runner{}.Run(context.Background(), "pgq-no-such-tool-on-path")
		if !errors.Is(err, exec.ErrNotFound) {
			t.Fatalf("error = %v, want exec.ErrNotFound", err)
		}
	})
	t.Run("unknown OS user", func(t *testing.T) {
		_, err := Runner{User: "pgq-no-such-user"}.Run(context.Background(), "/bin/true")
		if err == nil || !strings.Contains(err.Error(), `look up OS user "pgq-no-such-user"`) {
			t.Fatalf("error = %v, want a user look-up failure", err)
		}
	})
	t.Run("deadline kills the command and is reported as such", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := Runner{}.Run(ctx, "/bin/sh", "-c", "exec sleep 30")
		if took := time.Since(start); took > 10*time.Second {
			t.Errorf("Run took %s after a 200ms deadline", took)
		}
		if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrCommandFailed) {
			t.Fatalf("error = %v, want context.DeadlineExceeded and not ErrCommandFailed", err)
		}
	})
}

// TestRunnerShellArgs: the arguments reach the command as positional
// parameters, never parsed by the shell, with the extra environment.
func TestRunnerShellArgs(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r := Runner{Env: []string{"PATH=/usr/bin:/bin"}}
	out, err := r.ShellArgs(ctx, `printf '%s|' "$PGQ_ROLE"`, []string{"a b", "$(echo no)", ";x"}, "PGQ_ROLE=primary")
	if err != nil {
		t.Fatal(err)
	}
	if want := "primary|a b|$(echo no)|;x|"; out != want {
		t.Errorf("output %q, want %q", out, want)
	}
	_, err = r.ShellArgs(ctx, "exit 4", nil)
	var ce *CommandError
	if !errors.As(err, &ce) || ce.ExitCode != 4 {
		t.Errorf("exit 4: %v", err)
	}
}

// TestRunnerTimeoutKillsTheChildren: a command past its context is killed
// with its process group, so a shell's children neither outlive it nor
// hold its output open until WaitDelay.
func TestRunnerTimeoutKillsTheChildren(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := Runner{}.Shell(ctx, "sleep 30; echo never")
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v, want the deadline", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("returned after %s: the child sleep held the output open", took)
	}
}
