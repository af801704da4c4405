package tests

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/internal/lab"
)

// keepalivedScripts is scripts/keepalived seen from this package's directory.
const keepalivedScripts = "../scripts/keepalived"

// runTool runs name with args and env for at most 20 s and returns its exit
// code and its stdout and stderr together.
func runTool(t *testing.T, env []string, name string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append([]string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}, env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String()
	case errors.As(err, &ee) && ctx.Err() == nil:
		return ee.ExitCode(), out.String()
	default:
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out.String())
		return -1, ""
	}
}

// installScripts copies the keepalived scripts into a root-owned directory,
// as an install would (keepalived's script security refuses scripts a
// non-root user could modify).
func installScripts(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "pgquorum")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"check_primary.sh", "check_haproxy.sh", "notify.sh"} {
		b, err := os.ReadFile(filepath.Join(keepalivedScripts, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func writeExecutable(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o755); err != nil {
		t.Fatal(err)
	}
}

type toolCase struct {
	name string
	args []string
	code int
	out  string // a substring of the output
}

func runToolCases(t *testing.T, env []string, bin string, cases []toolCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out := runTool(t, env, bin, tc.args...)
			if code != tc.code || !strings.Contains(out, tc.out) {
				t.Errorf("exit %d, output %q; want exit %d and %q", code, out, tc.code, tc.out)
			}
		})
	}
}

// TestKeepalivedCheckCommandAgainstLiveCluster runs "pgquorum check" and
// check_primary.sh against the pgquorum of each node of a real cluster.
func TestKeepalivedCheckCommandAgainstLiveCluster(t *testing.T) {
	t.Parallel()
	c := startCluster(t, threeNodes("dc1"), nil)
	n1, n2, n3 := c.Node("node1"), c.Node("node2"), c.Node("node3")
	waitSettled(t, c)
	check := func(n *lab.Node, expect string) []string {
		return []string{"check", "--expect", expect, "--url", n.QuorumURL(), "--timeout", "2s"}
	}
	env := []string{"PGQUORUM_BIN=" + pgquorumBin}
	primary := filepath.Join(keepalivedScripts, "check_primary.sh")

	runToolCases(t, nil, pgquorumBin, []toolCase{
		{"expect primary on the primary exits 0", check(n1, "primary"), 0, "primary: node1 is Primary ("},
		{"expect primary on a standby exits 1", check(n2, "primary"), 1, "not primary: node2 is Standby"},
		{"expect standby on a standby exits 0", check(n2, "standby"), 0, "standby: node2 is Standby"},
		{"expect standby on the primary exits 1", check(n1, "standby"), 1, "not standby: node1 is Primary"},
		{"expect up on the primary exits 0", check(n1, "up"), 0, "up: node1 is Primary"},
		{"expect up on a standby exits 0", check(n2, "up"), 0, "up: node2 is Standby"},
	})
	runToolCases(t, env, primary, []toolCase{
		{"check_primary.sh finds the primary among all nodes", []string{n2.QuorumURL(), n3.QuorumURL(), n1.QuorumURL()}, 0, "primary: node1 is Primary"},
		{"check_primary.sh over standbys only exits 1", []string{n2.QuorumURL(), n3.QuorumURL()}, 1, "no primary reachable"},
	})

	stopQuorum(t, n3)
	runToolCases(t, env, pgquorumBin, []toolCase{
		{"a stopped pgquorum is unreachable: exit 2", check(n3, "up"), 2, "unreachable: "},
	})
	runToolCases(t, env, primary, []toolCase{
		{"check_primary.sh with no verdict at all exits 2", []string{n3.QuorumURL()}, 2, "no primary reachable"},
		{"check_primary.sh skips an unreachable node", []string{n3.QuorumURL(), n1.QuorumURL()}, 0, "primary: node1 is Primary"},
	})

	if err := n2.StopPG(context.Background(), "fast"); err != nil {
		t.Fatal(err)
	}
	waitState(t, n2, api.StateDown, settle)
	runToolCases(t, env, pgquorumBin, []toolCase{
		{"expect up with the database stopped exits 1", check(n2, "up"), 1, "not up: node2 is Down"},
		{"expect standby with the database stopped exits 1", check(n2, "standby"), 1, "not standby: node2 is Down"},
	})
}

// TestKeepalivedNotifyScript calls notify.sh as keepalived does, with a fake
// logger first in PATH to see what goes to syslog.
func TestKeepalivedNotifyScript(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	notify := filepath.Join(keepalivedScripts, "notify.sh")
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	writeExecutable(t, filepath.Join(bin, "logger"), "#!/bin/sh\necho \"$*\" >> \"$LOGGER_OUT\"\n")
	hook := filepath.Join(dir, "hook")
	writeExecutable(t, hook, "#!/bin/sh\necho \"$*\" >> \"$HOOK_OUT\"\nexit \"${HOOK_EXIT:-0}\"\n")
	notExec := filepath.Join(dir, "not-executable")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name     string
		args     []string
		env      []string
		code     int
		logged   string // the line's text after the tag, "" for none
		hookArgs string // what the hook received, "" for no call
	}{
		{"MASTER is logged and handed to the hook", []string{"INSTANCE", "VI_PGQ", "MASTER", "101"}, nil, 0,
			"INSTANCE VI_PGQ is now MASTER (priority 101)", "INSTANCE VI_PGQ MASTER 101"},
		{"BACKUP is logged and handed to the hook", []string{"INSTANCE", "VI_PGQ", "BACKUP", "81"}, nil, 0,
			"INSTANCE VI_PGQ is now BACKUP (priority 81)", "INSTANCE VI_PGQ BACKUP 81"},
		{"FAULT is logged and handed to the hook", []string{"INSTANCE", "VI_PGQ", "FAULT", "100"}, nil, 0,
			"INSTANCE VI_PGQ is now FAULT (priority 100)", "INSTANCE VI_PGQ FAULT 100"},
		{"STOP of a group is logged and handed to the hook", []string{"GROUP", "G1", "STOP", "0"}, nil, 0,
			"GROUP G1 is now STOP (priority 0)", "GROUP G1 STOP 0"},
		{"a failing hook is logged, not a failure", []string{"INSTANCE", "VI_PGQ", "MASTER", "101"}, []string{"HOOK_EXIT=3"}, 0,
			"hook " + hook + " INSTANCE VI_PGQ MASTER 101 exited 3", "INSTANCE VI_PGQ MASTER 101"},
		{"no hook configured: logged only", []string{"INSTANCE", "VI_PGQ", "BACKUP", "100"}, []string{"PGQUORUM_NOTIFY_HOOK="}, 0,
			"INSTANCE VI_PGQ is now BACKUP (priority 100)", ""},
		{"a hook that is not executable is misuse", []string{"INSTANCE", "VI_PGQ", "MASTER", "101"}, []string{"PGQUORUM_NOTIFY_HOOK=" + notExec}, 2,
			"hook " + notExec + " is not an executable file: not run", ""},
		{"three arguments is misuse", []string{"INSTANCE", "VI_PGQ", "MASTER"}, nil, 2, "", ""},
		{"a lower-case state is misuse", []string{"INSTANCE", "VI_PGQ", "master", "101"}, nil, 2, "", ""},
		{"a non-numeric priority is misuse", []string{"INSTANCE", "VI_PGQ", "MASTER", "high"}, nil, 2, "", ""},
		{"an unknown kind is misuse", []string{"ROUTER", "VI_PGQ", "MASTER", "101"}, nil, 2, "", ""},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := func(name string) string { return filepath.Join(dir, fmt.Sprintf("%d.%s", i, name)) }
			env := append([]string{
				"PATH=" + bin + ":/usr/bin:/bin",
				"LOGGER_OUT=" + out("syslog"), "PGQUORUM_NOTIFY_LOG=" + out("log"),
				"PGQUORUM_NOTIFY_HOOK=" + hook, "HOOK_OUT=" + out("hook"),
			}, tc.env...)
			code, output := runTool(t, env, notify, tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d: %s", code, tc.code, output)
			}
			assertLastLine(t, out("syslog"), "-t pgquorum-keepalived -- "+tc.logged, tc.logged != "")
			assertLastLine(t, out("log"), " pgquorum-keepalived: "+tc.logged, tc.logged != "")
			assertLastLine(t, out("hook"), tc.hookArgs, tc.hookArgs != "")
		})
	}
}

// assertLastLine checks that path's last line ends with want, or, when
// present is false, that path was never written.
func assertLastLine(t *testing.T, path, want string, present bool) {
	t.Helper()
	b, err := os.ReadFile(path)
	if !present {
		if err == nil {
			t.Errorf("%s written: %q", filepath.Base(path), b)
		}
		return
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if last := lines[len(lines)-1]; err != nil || !strings.HasSuffix(last, want) {
		t.Errorf("%s: last line %q (err %v), want it to end with %q", filepath.Base(path), last, err, want)
	}
}

// TestKeepalivedCheckHAProxyScript runs check_haproxy.sh against a real
// HAProxy, then against the pid files a dead or foreign process leaves.
func TestKeepalivedCheckHAProxyScript(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := context.Background()
	hap, pidfile, err := lab.StartHAProxy(ctx, dir, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := hap.Stop(5 * time.Second); err != nil {
			t.Error(err)
		}
	})
	script := filepath.Join(keepalivedScripts, "check_haproxy.sh")
	foreign := filepath.Join(dir, "foreign.pid")
	garbage := filepath.Join(dir, "garbage.pid")
	for path, content := range map[string]string{foreign: strconv.Itoa(os.Getpid()) + "\n", garbage: "not a pid\n"} {
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	runToolCases(t, nil, script, []toolCase{
		{"a running HAProxy exits 0", []string{pidfile}, 0, fmt.Sprintf("haproxy up: PID %d", hap.PID())},
		{"a missing pid file exits 1", []string{filepath.Join(dir, "none.pid")}, 1, "cannot read"},
		{"a pid file without a PID exits 1", []string{garbage}, 1, "no PID in"},
		{"a PID that is not HAProxy exits 1", []string{foreign}, 1, fmt.Sprintf("PID %d from %s is ", os.Getpid(), foreign)},
	})
	if err := hap.Stop(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	runToolCases(t, nil, script, []toolCase{
		{"the stale pid file of a stopped HAProxy exits 1", []string{pidfile}, 1, "is not running"},
	})
}
