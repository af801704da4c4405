package tests

import (
	"context"
	"encoding/csv"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/tests/lab"
)

// saveStateScript is scripts/haproxy/save-state.sh seen from this package.
const saveStateScript = "../scripts/haproxy/save-state.sh"

// lateInter makes HAProxy's first checks late: it spreads the first check
// of its n servers over one inter (here 6 servers, 20 s / 6 ≈ 3.3 s apart),
// so right after a start at most one server has been checked.
const lateInter = 20 * time.Second

// stateRig is one cluster with the HAProxy config pieces the tests vary.
type stateRig struct {
	c               *lab.Cluster
	listen          []string // listener flags, the same for every HAProxy of the rig
	rw, ro          int
	cfgPath, socket string
	n1, n2, n3      *lab.Node
}

func newStateRig(t *testing.T) *stateRig {
	c := startCluster(t, threeNodes("dc1"), nil)
	r := &stateRig{c: c, n1: c.Node("node1"), n2: c.Node("node2"), n3: c.Node("node3")}
	waitState(t, r.n1, api.StatePrimary, settle)
	waitState(t, r.n2, api.StateStandby, settle)
	waitState(t, r.n3, api.StateStandby, settle)
	r.listen, r.rw, r.ro = listenArgs(t)
	r.cfgPath, r.socket = c.HAProxyPaths()
	return r
}

// render writes haproxy.cfg with the real CLI (servers from node1's
// repmgr.nodes) at the path StartHAProxy uses, with inter and, unless "",
// a server-state file, and returns it.
func (r *stateRig) render(t *testing.T, inter time.Duration, stateFile string) string {
	t.Helper()
	args := append([]string{"haproxy-config", "--dsn", r.c.Nodes[0].Conninfo(), "--stats-socket", r.socket,
		"--output", r.cfgPath}, r.listen...)
	args = append(args, "--inter", inter.String()) // after listenArgs' --inter: the last one wins
	if stateFile != "" {
		args = append(args, "--server-state-file", stateFile)
	}
	for _, n := range r.c.Nodes {
		args = append(args, "--node-check-port", fmt.Sprintf("%s=%d", n.Name, n.QuorumPort))
	}
	if out, code := runPgquorum(t, args...); code != 0 {
		t.Fatalf("pgquorum haproxy-config: exit %d\n%s", code, out)
	}
	cfg, err := os.ReadFile(r.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	return string(cfg)
}

// start starts HAProxy on cfg and returns it with the time it answered.
func (r *stateRig) start(t *testing.T, cfg string) (*labHAProxy, time.Time) {
	t.Helper()
	h := startHAProxy(t, r.c, cfg, r.rw, r.ro)
	return h, time.Now()
}

// statColumn returns column of every "proxy/server" row of show stat, for
// the columns lab.ServerStat leaves out.
func statColumn(t *testing.T, h *labHAProxy, column string) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := h.Command(ctx, "show stat")
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(strings.NewReader(strings.TrimPrefix(out, "# "))).ReadAll()
	if err != nil || len(rows) < 2 {
		t.Fatalf("parse show stat: %v: %q", err, out)
	}
	col := map[string]int{}
	for i, name := range rows[0] {
		col[name] = i
	}
	if _, ok := col[column]; !ok {
		t.Fatalf("show stat has no column %q", column)
	}
	got := map[string]string{}
	for _, row := range rows[1:] {
		got[row[col["pxname"]]+"/"+row[col["svname"]]] = row[col[column]]
	}
	return got
}

// unchecked tells, for each of keys whose check status is HAProxy's initial
// INI (never checked, or restored as such), whether still no check has
// completed on it: its check_duration is empty. A server restored with
// another status shows a duration before any check.
func unchecked(t *testing.T, h *labHAProxy, keys ...string) map[string]bool {
	return columnEmpty(t, h, "check_duration", keys...)
}

// noFailedCheck tells, for each of keys, whether no check has failed on it
// since HAProxy started: last_chk holds a failed check's reason ("Accepted"
// for a standby's 202 on the read-write listener) and is not restored from
// the state file.
func noFailedCheck(t *testing.T, h *labHAProxy, keys ...string) map[string]bool {
	return columnEmpty(t, h, "last_chk", keys...)
}

func columnEmpty(t *testing.T, h *labHAProxy, column string, keys ...string) map[string]bool {
	t.Helper()
	values := statColumn(t, h, column)
	out := map[string]bool{}
	for _, k := range keys {
		out[k] = values[k] == ""
	}
	return out
}

// statuses returns the status of each "proxy/server" of keys.
func statuses(t *testing.T, h *labHAProxy, keys ...string) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stats, err := h.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, k := range keys {
		out[k] = stats[k].Status
	}
	return out
}

// saveState runs save-state.sh with args and the socket client env, and
// fails t unless it exits 0.
func saveState(t *testing.T, client string, args ...string) string {
	t.Helper()
	code, out := runTool(t, []string{"PGQUORUM_SOCKET_CLIENT=" + client}, "sh", append([]string{saveStateScript}, args...)...)
	if code != 0 {
		t.Fatalf("save-state.sh %s (client %s): exit %d\n%s", strings.Join(args, " "), client, code, out)
	}
	return out
}

// stateOps reads a state file into "be_name/srv_name" → srv_op_state
// (0 DOWN, 2 UP).
func stateOps(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ops := map[string]string{}
	for i, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if i < 2 || len(f) < 20 || strings.HasPrefix(f[0], "#") {
			continue
		}
		ops[f[1]+"/"+f[3]] = f[5]
	}
	return ops
}

// socketClients lists the admin-socket clients save-state.sh can use here.
func socketClients(t *testing.T) []string {
	var clients []string
	if _, err := exec.LookPath("socat"); err == nil {
		clients = append(clients, "socat")
	}
	if out, err := exec.Command("nc", "-h").CombinedOutput(); strings.Contains(string(out), "OpenBSD") {
		clients = append(clients, "nc")
	} else {
		t.Logf("OpenBSD nc not installed (%v): save-state.sh's nc fallback is not exercised", err)
	}
	if len(clients) == 0 {
		t.Fatal("neither socat nor OpenBSD nc is installed (scripts/install-deps.sh installs socat)")
	}
	return clients
}

var (
	rwStandbys = []string{"postgres_rw/node2", "postgres_rw/node3"}
	allServers = []string{"postgres_rw/node1", "postgres_rw/node2", "postgres_rw/node3",
		"postgres_ro/node1", "postgres_ro/node2", "postgres_ro/node3"}
)

// stateFilePath is where the tests' state file lives: beside haproxy.cfg.
func stateFilePath(r *stateRig, name string) string {
	return filepath.Join(filepath.Dir(r.cfgPath), name)
}

// settledStatuses is every server's status once checks have run on a
// settled cluster: node1 the primary, node2 and node3 standbys.
var settledStatuses = map[string]string{
	"postgres_rw/node1": "UP", "postgres_rw/node2": "DOWN", "postgres_rw/node3": "DOWN",
	"postgres_ro/node1": "DOWN", "postgres_ro/node2": "UP", "postgres_ro/node3": "UP",
}

// TestHAProxyStateAcrossRestarts starts HAProxy again and again in front of
// one settled cluster, each time with a long inter so that the moment
// before the first checks can be looked at.
func TestHAProxyStateAcrossRestarts(t *testing.T) {
	t.Parallel()
	r := newStateRig(t)
	t.Run("fact: without a state file node2 and node3 start UP on the read-write listener and take sessions", func(t *testing.T) {
		h, started := r.start(t, r.render(t, lateInter, ""))
		defer h.Stop()
		assertUpUnchecked(t, h, rwStandbys...)
		seen := assertAllLandOn(t, h.rw, 6, readSQL, r.n1, r.n2, r.n3)
		took := time.Since(started)
		assertStillUnchecked(t, h, took, rwStandbys...)
		if seen["node2"]+seen["node3"] == 0 {
			t.Fatalf("no session reached a standby while both were UP unchecked: %v", seen)
		}
		t.Logf("without a state file, sessions through the read-write listener within %s of HAProxy's start reached %v",
			took.Round(time.Millisecond), seen)
	})
	t.Run("a missing state file: HAProxy starts, its servers UP as without one", func(t *testing.T) {
		missing := stateFilePath(r, "missing.state")
		cfg := r.render(t, lateInter, missing)
		if !strings.Contains(cfg, "\n    server-state-file "+missing+"\n") {
			t.Fatalf("config names no state file %s:\n%s", missing, cfg)
		}
		h, _ := r.start(t, cfg)
		defer h.Stop()
		assertUpUnchecked(t, h, rwStandbys...)
		if _, err := os.Stat(missing); !os.IsNotExist(err) {
			t.Fatalf("stat %s: %v; HAProxy should not have made it", missing, err)
		}
	})
	t.Run("saved state: a restarted HAProxy starts node2 and node3 DOWN and every session reaches node1", func(t *testing.T) {
		savedStateRestart(t, r)
	})
	t.Run("cold start: save-state.sh -i starts every server DOWN until a check passes", func(t *testing.T) {
		coldStart(t, r)
	})
}

// savedStateRestart is what the systemd drop-in does on a restart: the
// running HAProxy's state is saved (reconciled with the config on disk),
// HAProxy stops, and a new one loads the file at start.
func savedStateRestart(t *testing.T, r *stateRig) {
	state := stateFilePath(r, "pgquorum.state")
	h1, _ := r.start(t, r.render(t, hapInter, state))
	h1.waitStatus(t, settledStatuses)
	// The next HAProxy's config is written first, as before a reload; it
	// differs from the running one in inter only.
	cfg := r.render(t, lateInter, state)
	want := map[string]string{"postgres_rw/node1": "2", "postgres_rw/node2": "0", "postgres_rw/node3": "0",
		"postgres_ro/node1": "0", "postgres_ro/node2": "2", "postgres_ro/node3": "2"}
	for _, client := range socketClients(t) {
		if err := os.Remove(state); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		saveState(t, client, "-c", r.cfgPath, r.socket, state)
		if got := stateOps(t, state); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("state saved through %s: srv_op_state %v, want %v", client, got, want)
		}
	}
	h1.Stop()

	h2, started := r.start(t, cfg)
	defer h2.Stop()
	if got := statuses(t, h2, allServers...); fmt.Sprint(got) != fmt.Sprint(settledStatuses) {
		t.Fatalf("right after the restart: %v, want the saved %v", got, settledStatuses)
	}
	assertAllLandOn(t, h2.rw, 20, readSQL, r.n1)
	took := time.Since(started)
	// Without the state file node2 and node3 would still be UP here (see
	// the fact above): no check has reached them yet.
	assertStillUnchecked(t, h2, took, rwStandbys...)
	t.Logf("restored state: 20 sessions within %s of HAProxy's start all reached node1, before any check of node2 and node3",
		took.Round(time.Millisecond))
}

// coldStart is the drop-in's ExecStartPre with no recent state file: every
// server starts DOWN and takes clients only once a check has passed.
func coldStart(t *testing.T, r *stateRig) {
	state := stateFilePath(r, "cold.state")
	cfg := r.render(t, 2*time.Second, state)
	out := saveState(t, socketClients(t)[0], "-c", r.cfgPath, "-i", state)
	for k, op := range stateOps(t, state) {
		if op != "0" {
			t.Fatalf("%s written with srv_op_state %s, want 0 (DOWN); save-state.sh said: %s", k, op, out)
		}
	}
	h, started := r.start(t, cfg)
	defer h.Stop()
	st, fresh := statuses(t, h, allServers...), unchecked(t, h, allServers...)
	for _, k := range allServers {
		if strings.HasPrefix(st[k], "UP") && fresh[k] {
			t.Fatalf("%s is %q before any check completed on it", k, st[k])
		}
	}
	for _, k := range rwStandbys {
		if st[k] != "DOWN" {
			t.Fatalf("%s is %q right after a cold start, want DOWN", k, st[k])
		}
	}
	h.waitStatus(t, settledStatuses)
	t.Logf("cold start: every server took its checked state within %s", time.Since(started).Round(time.Millisecond))
	assertAllLandOn(t, h.rw, 20, readSQL, r.n1)
}

// assertUpUnchecked fails unless each of keys is UP while no check has
// completed on it: HAProxy 2.6's initial state.
func assertUpUnchecked(t *testing.T, h *labHAProxy, keys ...string) {
	t.Helper()
	st, fresh := statuses(t, h, keys...), unchecked(t, h, keys...)
	for _, k := range keys {
		if !strings.HasPrefix(st[k], "UP") || !fresh[k] {
			t.Fatalf("%s: status %q, no check completed yet: %v; want UP before its first check", k, st[k], fresh[k])
		}
	}
}

// assertStillUnchecked fails if a check reached one of keys (standbys on
// the read-write listener, whose every check fails) within took of the
// start: the test could then not tell what kept sessions off it.
func assertStillUnchecked(t *testing.T, h *labHAProxy, took time.Duration, keys ...string) {
	t.Helper()
	for k, fresh := range noFailedCheck(t, h, keys...) {
		if !fresh {
			t.Fatalf("a check completed on %s within %s of the start (inter %s): the window closed before the sessions ended", k, took, lateInter)
		}
	}
}

// scriptConfig is a config as pgquorum renders it, reduced to what
// save-state.sh reads.
const scriptConfig = `global
    stats socket /run/x.sock mode 600 level admin
    server-state-file /var/lib/x.state
defaults
    mode tcp
    load-server-state-from-file global
listen stats
    bind :7000
listen postgres_rw
    bind :5000
    option httpchk GET /state
    http-check expect status 200
    server n1 127.0.0.1:5432 check port 5999 agent-check agent-port 5998 agent-send "rw\n" agent-inter 1s
    server n2 [::1]:5433 check port 6000
listen postgres_ro
    bind :5001
    option httpchk GET /state
    http-check expect status 202
    server n1 127.0.0.1:5432 check port 5999 agent-check agent-port 5998 agent-send "ro\n" agent-inter 1s
    server n2 [::1]:5433 check port 6000
`

// stateLine is one "show servers state" line: op 2 UP / 0 DOWN, check
// status 15 (L7OK) or 1 (INI, never checked).
func stateLine(be, srv string, op, checkStatus, port, checkPort, agentPort int) string {
	return fmt.Sprintf("2 %s 1 %s 127.0.0.1 %d 0 100 100 7 %d 3 2 6 22 0 0 - %d - 0 %d - - %d", be, srv, op, checkStatus, port, checkPort, agentPort)
}

func stateFile(lines ...string) string {
	return "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state ...\n" + strings.Join(lines, "\n") + "\n\n"
}

// allSaved is a saved state that agrees with scriptConfig: n1 the primary.
var allSaved = []string{
	stateLine("postgres_rw", "n1", 2, 15, 5432, 5999, 5998), stateLine("postgres_rw", "n2", 0, 15, 5433, 6000, 6000),
	stateLine("postgres_ro", "n1", 0, 15, 5432, 5999, 5998), stateLine("postgres_ro", "n2", 2, 15, 5433, 6000, 6000),
}

func withLine(i int, line string) []string {
	lines := append([]string(nil), allSaved...)
	lines[i] = line
	return lines
}

// TestHAProxyStateScriptReconciles runs save-state.sh -i on saved states
// against scriptConfig: a fresh state is kept where its ports agree with the
// config, and everything unknown starts DOWN with the config's port. The
// write listener's servers always start DOWN: a state saved before a stop
// or a crash may predate a failover.
func TestHAProxyStateScriptReconciles(t *testing.T) {
	allDown := "postgres_ro/n1=0:5432 postgres_ro/n2=0:5433 postgres_rw/n1=0:5432 postgres_rw/n2=0:5433"
	tests := []struct {
		name  string
		state string // "" : no file
		age   time.Duration
		want  string // be/srv=op:port, sorted
	}{
		{"read-only servers whose ports agree keep their saved state", stateFile(allSaved...), 0,
			"postgres_ro/n1=0:5432 postgres_ro/n2=2:5433 postgres_rw/n1=0:5432 postgres_rw/n2=0:5433"},
		{"the old primary saved UP on the write listener starts DOWN: the state may predate a failover",
			stateFile(withLine(1, stateLine("postgres_rw", "n2", 2, 15, 5433, 6000, 6000))...), 0,
			"postgres_ro/n1=0:5432 postgres_ro/n2=2:5433 postgres_rw/n1=0:5432 postgres_rw/n2=0:5433"},
		{"a changed port is written DOWN with the config's port", stateFile(withLine(0, stateLine("postgres_rw", "n1", 2, 15, 5400, 5999, 5998))...), 0,
			"postgres_ro/n1=0:5432 postgres_ro/n2=2:5433 postgres_rw/n1=0:5432 postgres_rw/n2=0:5433"},
		{"a changed check port is written DOWN", stateFile(withLine(3, stateLine("postgres_ro", "n2", 2, 15, 5433, 6100, 6100))...), 0,
			"postgres_ro/n1=0:5432 postgres_ro/n2=0:5433 postgres_rw/n1=0:5432 postgres_rw/n2=0:5433"},
		{"a changed agent port is written DOWN", stateFile(withLine(0, stateLine("postgres_rw", "n1", 2, 15, 5432, 5999, 7000))...), 0,
			"postgres_ro/n1=0:5432 postgres_ro/n2=2:5433 postgres_rw/n1=0:5432 postgres_rw/n2=0:5433"},
		{"a server never checked is written DOWN even if saved UP", stateFile(withLine(0, stateLine("postgres_rw", "n1", 2, 1, 5432, 5999, 5998))...), 0,
			"postgres_ro/n1=0:5432 postgres_ro/n2=2:5433 postgres_rw/n1=0:5432 postgres_rw/n2=0:5433"},
		{"a server new in the config is written DOWN, one gone is dropped",
			stateFile(allSaved[0], allSaved[1], allSaved[2], stateLine("postgres_ro", "n9", 2, 15, 5439, 6009, 6009)), 0,
			"postgres_ro/n1=0:5432 postgres_ro/n2=0:5433 postgres_rw/n1=0:5432 postgres_rw/n2=0:5433"},
		{"a state older than MAXAGE starts every server DOWN", stateFile(allSaved...), 2 * time.Minute, allDown},
		{"a missing state file starts every server DOWN", "", 0, allDown},
		{"a file without a version line starts every server DOWN", strings.Join(allSaved, "\n") + "\n", 0, allDown},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg, state := filepath.Join(dir, "haproxy.cfg"), filepath.Join(dir, "x.state")
			writeFile(t, cfg, scriptConfig)
			if tc.state != "" {
				writeFile(t, state, tc.state)
				old := time.Now().Add(-tc.age)
				if err := os.Chtimes(state, old, old); err != nil {
					t.Fatal(err)
				}
			}
			saveState(t, "socat", "-c", cfg, "-i", "-a", "60", state)
			if got := opsAndPorts(t, state); got != tc.want {
				t.Fatalf("state written:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

// TestHAProxyStateScriptWithoutHAProxy checks what save-state.sh does when
// the admin socket gives no dump, and how it refuses misuse.
func TestHAProxyStateScriptWithoutHAProxy(t *testing.T) {
	dir := t.TempDir()
	cfg, state := filepath.Join(dir, "haproxy.cfg"), filepath.Join(dir, "x.state")
	writeFile(t, cfg, scriptConfig)
	dead := filepath.Join(dir, "no.sock")
	kept := stateFile(allSaved...)
	tests := []struct {
		name string
		args []string
		code int
		want string // the state file afterwards, as opsAndPorts; "kept": untouched
	}{
		{"with -c, no HAProxy answering: every server written DOWN", []string{"-c", cfg, dead, state}, 0,
			"postgres_ro/n1=0:5432 postgres_ro/n2=0:5433 postgres_rw/n1=0:5432 postgres_rw/n2=0:5433"},
		{"without -c, no HAProxy answering: the file is left as it was", []string{dead, state}, 1, "kept"},
		{"no arguments is misuse", nil, 2, "kept"},
		{"-i without -c is misuse", []string{"-i", state}, 2, "kept"},
		{"a non-numeric MAXAGE is misuse", []string{"-c", cfg, "-i", "-a", "1m", state}, 2, "kept"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			writeFile(t, state, kept)
			code, out := runTool(t, nil, "sh", append([]string{saveStateScript}, tc.args...)...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d: %s", code, tc.code, out)
			}
			if tc.want == "kept" {
				if b, _ := os.ReadFile(state); string(b) != kept {
					t.Fatalf("state file changed to:\n%s", b)
				}
				return
			}
			if got := opsAndPorts(t, state); got != tc.want {
				t.Fatalf("state written:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

// opsAndPorts reads a state file as sorted "be/srv=srv_op_state:srv_port".
func opsAndPorts(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	if lines[0] != "1" {
		t.Fatalf("state file does not start with version 1:\n%s", b)
	}
	var out []string
	for _, line := range lines[1:] {
		if f := strings.Fields(line); len(f) >= 20 && !strings.HasPrefix(f[0], "#") {
			out = append(out, f[1]+"/"+f[3]+"="+f[5]+":"+f[18])
		}
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}
