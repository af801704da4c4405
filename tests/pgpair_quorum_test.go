package tests

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/client"
	"github.com/pgquorum/pgquorum/internal/lab"
	"github.com/pgquorum/pgquorum/repmgr"
)

// pairQuorum is the pgquorum daemon under test, run beside one server of a
// version-matrix pair, as the postgres OS user.
type pairQuorum struct {
	s        *pgServer
	port     int
	raftPort int
	cmd      *exec.Cmd
	exited   chan struct{} // closed once it exited, with err
	err      error
}

// startPairQuorums starts one pgquorum per server of p, each with a
// repmgr.conf of its node and the other as its peer, and stops them when t
// ends, failing t if one did not exit cleanly (a race found by -race).
// Their failover.mode is repmgrd: the failover controller runs and reports
// to its coordinator, but never promotes (no repmgr here for 16–18).
func startPairQuorums(t *testing.T, p *pgPair) (primary, standby *pairQuorum) {
	t.Helper()
	owner, err := user.Lookup("postgres")
	if err != nil {
		t.Fatal(err)
	}
	// The test binary's directory is root's alone: the postgres user runs
	// a copy.
	bin := filepath.Join(filepath.Dir(p.Primary.Dir), "pgquorum")
	if err := copyExecutable(pgquorumBin, bin); err != nil {
		t.Fatal(err)
	}
	qs := []*pairQuorum{{s: p.Primary}, {s: p.Standby}}
	for _, q := range qs {
		if q.port, err = freeLoopbackPort(); err != nil {
			t.Fatal(err)
		}
		if q.raftPort, err = freeLoopbackPort(); err != nil {
			t.Fatal(err)
		}
	}
	peers := fmt.Sprintf("%s=127.0.0.1:%d,%s=127.0.0.1:%d", qs[0].s.Name, qs[0].port, qs[1].s.Name, qs[1].port)
	raftPeers := fmt.Sprintf("%s=127.0.0.1:%d,%s=127.0.0.1:%d", qs[0].s.Name, qs[0].raftPort, qs[1].s.Name, qs[1].raftPort)
	for _, q := range qs {
		if err := q.start(t, bin, owner, peers, raftPeers); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := q.stop(); err != nil {
				t.Error(err)
			}
		})
	}
	return qs[0], qs[1]
}

func (q *pairQuorum) start(t *testing.T, bin string, owner *user.User, peers, raftPeers string) error {
	s := q.s
	repmgrConf := filepath.Join(s.Dir, "repmgr.conf")
	err := writeOwned(owner, repmgrConf, fmt.Sprintf("node_id=%d\nnode_name='%s'\nconninfo='%s'\ndata_directory='%s'\n",
		s.ID, s.Name, s.Conninfo(), s.DataDir()))
	if err != nil {
		return err
	}
	cfg := filepath.Join(s.Dir, "pgquorum.yaml")
	err = writeOwned(owner, cfg, fmt.Sprintf(`node:
  name: %q
server:
  listen: "127.0.0.1:%d"
repmgr:
  config_file: %q
database:
  timeout: "1s"
consensus:
  peers: %q
  refresh_interval: "250ms"
  cache_ttl: "2s"
  peer_timeout: "300ms"
  state_dir: %q
failover:
  mode: "repmgrd"
  raft_listen: "127.0.0.1:%d"
  raft_peers: %q
`, s.Name, q.port, repmgrConf, peers, s.Dir, q.raftPort, raftPeers))
	if err != nil {
		return err
	}
	cred, err := repmgr.Credential(owner.Username)
	if err != nil {
		return err
	}
	q.cmd = exec.Command(bin, "serve", "--config", cfg)
	q.cmd.Env = []string{"PATH=/usr/bin:/bin", "GORACE=halt_on_error=1", "LC_ALL=C", "HOME=" + s.Dir, "USER=" + owner.Username}
	q.cmd.Dir = s.Dir
	q.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	out, err := q.cmd.StdoutPipe()
	if err != nil {
		return err
	}
	q.cmd.Stderr = q.cmd.Stdout
	if err := q.cmd.Start(); err != nil {
		return fmt.Errorf("start pgquorum of %s: %w", s.Name, err)
	}
	q.exited = make(chan struct{})
	logged := make(chan struct{})
	go func() {
		defer close(logged)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			t.Logf("%s pgquorum: %s", s.Name, sc.Text())
		}
	}()
	go func() {
		<-logged
		q.err = q.cmd.Wait()
		close(q.exited)
	}()
	return lab.WaitFor(context.Background(), 30*time.Second, s.Name+"'s pgquorum answering", func(ctx context.Context) error {
		select {
		case <-q.exited:
			return fmt.Errorf("pgquorum of %s exited: %v", s.Name, q.err)
		default:
		}
		_, _, err := q.state(ctx)
		return err
	})
}

// pairClient asks the pair's daemons, over plain HTTP, through pgquorum's
// client as the lab asks a cluster's nodes: one, so that its idle
// connections are reused across polls.
var pairClient = client.New(client.Options{})

// api is the daemon's HTTP API.
func (q *pairQuorum) api() client.Node {
	return pairClient.Node(&url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", q.port)})
}

// state is the daemon's /state answer.
func (q *pairQuorum) state(ctx context.Context) (int, api.StateBody, error) {
	var b api.StateBody
	status, err := q.api().GetJSON(ctx, api.PathState, client.MaxStateBody, &b)
	return status, b, err
}

// report is the daemon's answer to the failover coordinator's poll.
func (q *pairQuorum) report(ctx context.Context) (api.Report, error) {
	return lab.Report(ctx, q.api())
}

// waitReport waits until the daemon's report passes ok.
func (q *pairQuorum) waitReport(t *testing.T, what string, ok func(api.Report) error) api.Report {
	t.Helper()
	var r api.Report
	err := lab.WaitFor(context.Background(), 30*time.Second, q.s.Name+" "+what, func(ctx context.Context) error {
		var err error
		if r, err = q.report(ctx); err != nil {
			return err
		}
		return ok(r)
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// waitState waits until the daemon's /state answers ok.
func (q *pairQuorum) waitState(t *testing.T, what string, ok func(int, api.StateBody) bool) api.StateBody {
	t.Helper()
	var last api.StateBody
	err := lab.WaitFor(context.Background(), 30*time.Second, q.s.Name+" "+what, func(ctx context.Context) error {
		status, b, err := q.state(ctx)
		if err != nil {
			return err
		}
		if last = b; !ok(status, b) {
			return fmt.Errorf("/state %d %s: %s", status, b.State, b.Reason)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return last
}

// stop ends the daemon with SIGTERM, as systemd would, and reports an
// unclean exit.
func (q *pairQuorum) stop() error {
	if q.cmd == nil || q.cmd.Process == nil {
		return nil
	}
	_ = q.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-q.exited:
		var exit *exec.ExitError
		if errors.As(q.err, &exit) {
			return fmt.Errorf("pgquorum of %s exited with %v", q.s.Name, q.err)
		}
		return nil
	case <-time.After(15 * time.Second):
		_ = q.cmd.Process.Kill()
		<-q.exited
		return fmt.Errorf("pgquorum of %s did not stop within 15 s of SIGTERM", q.s.Name)
	}
}

func copyExecutable(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o755)
}
