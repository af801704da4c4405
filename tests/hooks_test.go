package tests

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/internal/lab"
	"github.com/pgquorum/pgquorum/repmgr"
)

// hookDir is a directory that every lab node's OS user may read and write
// (the hooks run as pgquorum's user, PgBouncer as postgres), removed at the
// end. t.TempDir's parents are private to root.
func hookDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "pgquorum-hooks-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	return dir
}

// writeShared writes a file every lab user may read and write (and run,
// when exec is set).
func writeShared(t *testing.T, path, content string, exec bool) {
	t.Helper()
	mode := os.FileMode(0o666)
	if exec {
		mode = 0o777
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // past the umask
		t.Fatal(err)
	}
}

// hookLog are the lines the test's hooks appended to dir/hooks.log.
func hookLog(t *testing.T, dir string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "hooks.log"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

func countLines(lines []string, want string) int {
	n := 0
	for _, l := range lines {
		if l == want {
			n++
		}
	}
	return n
}

// pgbouncer is a PgBouncer of the test's own, on a free loopback port,
// with its ini in dir, run as the postgres OS user (PgBouncer refuses
// root) and stopped by its PID. Its one database, app, starts pointed at
// nothing (port 1): the hooks point it.
type pgbouncer struct {
	ini  string
	port int
	cmd  *exec.Cmd
}

func startPgbouncer(t *testing.T, dir string) *pgbouncer {
	t.Helper()
	bin, err := exec.LookPath("pgbouncer")
	if err != nil {
		if bin, err = exec.LookPath("/usr/sbin/pgbouncer"); err != nil {
			t.Fatal("pgbouncer is not installed: run scripts/install-deps.sh (Debian's pgbouncer)")
		}
	}
	port, err := lab.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	b := &pgbouncer{ini: filepath.Join(dir, "pgbouncer.ini"), port: port}
	writeShared(t, filepath.Join(dir, "userlist.txt"), "\"repmgr\" \"\"\n\"postgres\" \"\"\n", false)
	// server_login_retry 1: after failed logins to a dead primary, the
	// pool tries again within a second rather than 15.
	writeShared(t, b.ini, fmt.Sprintf(`[databases]
app = host=127.0.0.1 port=1 dbname=repmgr

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = trust
auth_file = %[2]s/userlist.txt
admin_users = postgres
pool_mode = session
server_login_retry = 1
server_connect_timeout = 2
ignore_startup_parameters = extra_float_digits
logfile = %[2]s/pgbouncer.log
pidfile = %[2]s/pgbouncer.pid
`, port, dir), false)
	cred, err := repmgr.Credential("postgres")
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(filepath.Join(dir, "pgbouncer.out"))
	if err != nil {
		t.Fatal(err)
	}
	b.cmd = exec.Command(bin, b.ini)
	b.cmd.Stdout, b.cmd.Stderr = out, out
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if err := b.cmd.Start(); err != nil {
		t.Fatalf("start pgbouncer: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = b.cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = b.cmd.Process.Kill()
		<-exited
		_ = out.Close()
		if t.Failed() {
			for _, f := range []string{"pgbouncer.out", "pgbouncer.log", "pgbouncer.ini"} {
				text, _ := os.ReadFile(filepath.Join(dir, f))
				t.Logf("%s:\n%s", f, text)
			}
		}
	})
	err = lab.WaitFor(context.Background(), 10*time.Second, "pgbouncer to listen", func(ctx context.Context) error {
		select {
		case <-exited:
			return fmt.Errorf("pgbouncer exited: %v", b.cmd.ProcessState)
		default:
		}
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", b.addr())
		if err == nil {
			_ = c.Close()
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (b *pgbouncer) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(b.port)) }

// admin is the conninfo of PgBouncer's admin console.
func (b *pgbouncer) admin() string {
	return fmt.Sprintf("host=127.0.0.1 port=%d dbname=pgbouncer user=postgres", b.port)
}

// write inserts row id through PgBouncer, and returns the port of the
// server that took it.
func (b *pgbouncer) write(ctx context.Context, id int) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, fmt.Sprintf("host=127.0.0.1 port=%d dbname=app user=repmgr default_query_exec_mode=simple_protocol", b.port))
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.Background())
	var port int
	err = conn.QueryRow(ctx, "INSERT INTO hooks_probe (id, port) VALUES ($1, inet_server_port()) RETURNING port", id).Scan(&port)
	return port, err
}

// writesReach waits until a write through b lands on n, and returns the
// next row id.
func (b *pgbouncer) writesReach(t *testing.T, n *lab.Node, id int, timeout time.Duration) int {
	t.Helper()
	err := lab.WaitFor(context.Background(), timeout, "writes through pgbouncer to reach "+n.Name, func(ctx context.Context) error {
		id++
		port, err := b.write(ctx, id)
		switch {
		case err != nil:
			return err
		case port != n.PGPort:
			return fmt.Errorf("row %d written on port %d", id, port)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return id + 1
}

// TestHooksRepointPgbouncer: hooks.on_role_change runs the shipped
// scripts/hooks/pgbouncer-repoint.sh, which points a real PgBouncer at the
// node that became primary. Before the failover, writes through PgBouncer
// reach node1 (pointed there by node1's hook at epoch 1); after node1's
// postmaster is killed and the failover, they reach the new primary, whose
// hook ran once for epoch 2; on_failover ran on the surviving nodes.
func TestHooksRepointPgbouncer(t *testing.T) {
	t.Parallel()
	dir := hookDir(t)
	writeShared(t, filepath.Join(dir, "hooks.log"), "", false)
	script, err := os.ReadFile("../scripts/hooks/pgbouncer-repoint.sh")
	if err != nil {
		t.Fatal(err)
	}
	writeShared(t, filepath.Join(dir, "pgbouncer-repoint.sh"), string(script), true)
	b := startPgbouncer(t, dir)
	writeShared(t, filepath.Join(dir, "on-role-change.sh"), fmt.Sprintf(`#!/bin/sh
echo "on_role_change $*" >>%[1]s/hooks.log
PGBOUNCER_INI=%[1]s/pgbouncer.ini PGBOUNCER_DB=app PGBOUNCER_ADMIN=%[2]q exec %[1]s/pgbouncer-repoint.sh "$@"
`, dir, b.admin()), true)
	writeShared(t, filepath.Join(dir, "on-failover.sh"), fmt.Sprintf(`#!/bin/sh
echo "on_failover $PGQUORUM_NODE $*" >>%s/hooks.log
`, dir), true)

	r := startFailoverRig(t, threeNodes("dc1"), withKeys(map[string]string{
		"hooks.on_role_change": filepath.Join(dir, "on-role-change.sh"),
		"hooks.on_failover":    filepath.Join(dir, "on-failover.sh"),
		"hooks.timeout":        "10s",
	}))
	n1 := r.c.Node("node1")
	if err := n1.Exec(context.Background(), "CREATE TABLE hooks_probe (id int PRIMARY KEY, port int NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	id := b.writesReach(t, n1, 0, settle)
	// Replication is asynchronous: the failover keeps the table only once
	// the standbys have it (and the last row written).
	err = lab.WaitFor(context.Background(), settle, "the standbys to replay the rows written", func(ctx context.Context) error {
		for _, n := range r.c.Nodes[1:] {
			if rows, err := n.QueryInt(ctx, "SELECT count(*) FROM hooks_probe WHERE id = $1", id-1); err != nil || rows != 1 {
				return fmt.Errorf("%s has %d rows: %v", n.Name, rows, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := countLines(hookLog(t, dir), "on_role_change primary node1 1"); got != 1 {
		t.Errorf("node1's on_role_change for epoch 1 ran %d times, want once: %q", got, hookLog(t, dir))
	}

	if err := n1.KillPostmaster(); err != nil {
		t.Fatal(err)
	}
	fault := time.Now()
	p := r.failedOver(t, 2, "node1", fault)
	id = b.writesReach(t, p, id, primaryBudget)
	t.Logf("writes through pgbouncer reach %s %s after the fault", p.Name, time.Since(fault).Round(time.Millisecond))
	var rows int64
	rows, err = p.QueryInt(context.Background(), "SELECT count(*) FROM hooks_probe WHERE id = $1 AND port = $2", id-1, p.PGPort)
	if err != nil || rows != 1 {
		t.Errorf("row %d on %s: %d rows, %v", id-1, p.Name, rows, err)
	}

	var others []string
	for _, n := range r.c.Nodes {
		if n != n1 {
			others = append(others, fmt.Sprintf("on_failover %s %s node1 2", n.Name, p.Name))
		}
	}
	err = lab.WaitFor(context.Background(), settle, "on_failover on the surviving nodes", func(context.Context) error {
		lines := hookLog(t, dir)
		for _, want := range others {
			if countLines(lines, want) == 0 {
				return fmt.Errorf("no %q in %q", want, lines)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	lines := hookLog(t, dir)
	want := fmt.Sprintf("on_role_change primary %s 2", p.Name)
	if got := countLines(lines, want); got != 1 {
		t.Errorf("%q ran %d times, want once", want, got)
	}
	for _, want := range others {
		if got := countLines(lines, want); got != 1 {
			t.Errorf("%q ran %d times, want once", want, got)
		}
	}
	t.Logf("hooks: %q", lines)
}

// TestHooksPrePromoteVetoes: node2, the best candidate, has a pre_promote
// that exits 1. node2 does not promote, and the coordinator commits node3
// in its place.
func TestHooksPrePromoteVetoes(t *testing.T) {
	t.Parallel()
	dir := hookDir(t)
	writeShared(t, filepath.Join(dir, "hooks.log"), "", false)
	writeShared(t, filepath.Join(dir, "veto.sh"), fmt.Sprintf(`#!/bin/sh
echo "pre_promote $*" >>%s/hooks.log
echo "not this one" >&2
exit 1
`, dir), true)
	r := startFailoverRig(t, threeNodes("dc1"), withKeys(map[string]string{"hooks.timeout": "10s"}))
	n1, n2, n3 := r.c.Node("node1"), r.c.Node("node2"), r.c.Node("node3")
	if err := n2.RestartQuorumWith(map[string]string{"hooks.pre_promote": filepath.Join(dir, "veto.sh")}); err != nil {
		t.Fatal(err)
	}
	waitState(t, n1, api.StatePrimary, settle)
	if err := n1.KillPostmaster(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	if d := waitDecision(t, r.c, 2, primaryBudget); d.Primary != "node2" {
		t.Skipf("epoch 2 chose %s, not node2 whose pre_promote vetoes", d.Primary)
	}
	d3 := waitDecision(t, r.c, 3, 3*primaryBudget)
	if d3.Primary != "node3" || d3.OldPrimary != "node2" || !strings.Contains(d3.Reason, "hooks.pre_promote vetoed") {
		t.Fatalf("epoch 3 = %+v, want node3 in place of node2, for node2's veto", d3)
	}
	waitState(t, n3, api.StatePrimary, primaryBudget)
	t.Logf("epoch 3 after %s: %s", d3.At.Sub(killed).Round(time.Millisecond), d3.Reason)
	if inRecovery, err := n2.QueryInt(context.Background(), "SELECT pg_is_in_recovery()::int"); err != nil || inRecovery != 1 {
		t.Errorf("node2 in recovery: %d, %v; want still a standby", inRecovery, err)
	}
	if got := countLines(hookLog(t, dir), "pre_promote node2 2"); got != 1 {
		t.Errorf("node2's pre_promote for epoch 2 ran %d times, want once: %q", got, hookLog(t, dir))
	}
	r.writesMoveTo(t, n3)
}
