package tests

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDemoTour runs the README's demo (pgquorum-demo --tour, what
// scripts/demo.sh runs after installing packages) and checks its story.
func TestDemoTour(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs PostgreSQL 15, repmgr, HAProxy and root")
	}
	requireTools(t)
	t.Parallel()
	demo := filepath.Join(t.TempDir(), "pgquorum-demo")
	if out, err := exec.Command("go", "build", "-o", demo, "../cmd/pgquorum-demo").CombinedOutput(); err != nil {
		t.Fatalf("build demo: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// A port base of its own, below the ephemeral range the other tests use.
	out, err := exec.CommandContext(ctx, demo, "--pgquorum", pgquorumBin, "--tour", "--port-base", "27400").CombinedOutput()
	t.Logf("demo output:\n%s", out)
	if err != nil {
		t.Fatalf("demo --tour: %v", err)
	}
	text := string(out)
	steps := []string{
		`synchronous (asked node3): on, ANY 1 of set [node2, node3], primary's synchronous_standby_names 'ANY 1 ("node2", "node3")': RPO 0`,
		"/history: epoch 1, primary node1",
		"writes through HAProxy :27601 land on node1",
		"1. Kill -9 node1's postmaster",
		"node1: 503 Down, Down",
		"Standby, Suspect",
		"Standby, Promoting",
		"acknowledged writes lost: 0 of",
		"200   Primary", // its votes: 2, or 3 once node1's pgquorum, its database down, follows the committed primary
		"Leading",
		"synchronous (asked node3): on, ANY 1 of set [node", // the other standby, once it streams from the new primary
		"RPO 0",
		"/history: epoch 2, primary node",
		"writes through HAProxy :27601 land on node",
		"2. Start old node1 again",
		"node1  509   Unknown", // its own vote is leased to node2 by then, or not yet
		"Deposed",
		"3. repmgr node rejoin",
		"node1  202   Standby  -      Following",
		"4. pgquorum switchover --to node1",
		"stepped down and stopped cleanly",
		"committed node1 as the primary of epoch 3",
		"switchover done: node1 is the primary",
		"writes through HAProxy :27601 land on node1",
		"Tour done",
	}
	rest := text
	for _, s := range steps {
		i := strings.Index(rest, s)
		if i < 0 {
			t.Fatalf("demo output lacks %q after the earlier steps", s)
		}
		rest = rest[i+len(s):]
	}
}
