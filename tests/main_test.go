package tests

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/internal/lab"
)

// pgquorumBin is the binary under test, built once by TestMain.
var pgquorumBin string

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "pgq-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = os.RemoveAll(dir) }() // a temporary directory: nothing to do if it stays
	pgquorumBin = filepath.Join(dir, "pgquorum")
	// The daemon under test is built with the race detector whenever the
	// tests are, so races in the real process under real load fail the run.
	args := []string{"build", "-o", pgquorumBin}
	if raceEnabled {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, "../cmd/pgquorum")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build pgquorum:", err)
		return 1
	}
	return m.Run()
}

// shippedBin is the binary as the Dockerfile ships it, without the race
// detector, built at the first call: tests that measure the daemon's memory
// use it, because a race-detector build keeps state of its own for every
// goroutine that ever ran and never gives it back.
func shippedBin(t *testing.T) string {
	t.Helper()
	shipped.once.Do(func() {
		bin := filepath.Join(filepath.Dir(pgquorumBin), "pgquorum-shipped")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", bin, "../cmd/pgquorum")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			shipped.err = fmt.Errorf("build pgquorum without -race: %w\n%s", err, out)
			return
		}
		shipped.path = bin
	})
	if shipped.err != nil {
		t.Fatal(shipped.err)
	}
	return shipped.path
}

var shipped struct {
	once sync.Once
	path string
	err  error
}

// startCluster brings up a real cluster for t and tears it down after.
func startCluster(t *testing.T, nodes []lab.NodeSpec, quorum map[string]string) *lab.Cluster {
	t.Helper()
	return startClusterWith(t, lab.Options{Nodes: nodes, Quorum: quorum})
}

// startClusterWith brings up a real cluster of opts (its log given here,
// and its pgquorum unless opts names one) for t and tears it down after.
func startClusterWith(t *testing.T, opts lab.Options) *lab.Cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: needs PostgreSQL 15, repmgr and root (run scripts/test.sh)")
	}
	requireTools(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	if opts.Pgquorum == "" {
		opts.Pgquorum = pgquorumBin
	}
	opts.Logf = t.Logf
	c, err := lab.Start(ctx, opts)
	if err != nil {
		t.Fatalf("start cluster: %v", err)
	}
	t.Logf("cluster of %d nodes up in %s under %s", len(opts.Nodes), time.Since(start).Round(time.Millisecond), c.Dir)
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	})
	return c
}

// requireTools fails (not skips) when the real parts are missing: a suite
// that silently skips its integration tests proves nothing.
func requireTools(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("integration tests run PostgreSQL as the postgres OS user and must run as root (or use -short)")
	}
	for _, bin := range []string{filepath.Join(lab.DefaultPGBin, "initdb"), filepath.Join(lab.DefaultPGBin, "pg_ctl")} {
		if _, err := os.Stat(bin); err != nil {
			t.Fatalf("PostgreSQL 15 server binaries missing: %v", err)
		}
	}
	if _, err := exec.LookPath("repmgr"); err != nil {
		t.Fatalf("repmgr missing (apt-get install postgresql-15-repmgr): %v", err)
	}
}

func threeNodes(location string) []lab.NodeSpec {
	return []lab.NodeSpec{{Name: "node1", Location: location}, {Name: "node2", Location: location}, {Name: "node3", Location: location}}
}

// stopQuorum stops n's pgquorum and fails t if it did not exit cleanly.
func stopQuorum(t *testing.T, n *lab.Node) {
	t.Helper()
	if err := n.StopQuorum(); err != nil {
		t.Error(err)
	}
}

// containsAll tells whether s contains every one of parts.
func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// fileExists is nil once path exists.
func fileExists(path string) error {
	_, err := os.Stat(path)
	return err
}

// runPgquorum runs the binary under test with args, bounded to 30 s, and
// returns its combined output and exit code.
func runPgquorum(t *testing.T, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, pgquorumBin, args...).CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &exit):
		return string(out), exit.ExitCode()
	}
	t.Fatalf("run pgquorum %v: %v", args, err)
	return "", -1
}
