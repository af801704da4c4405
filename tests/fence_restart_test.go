package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/internal/lab"
)

// TestFenceNotAfterAWholeClusterRestart: a planned stop of the whole
// cluster. The standbys' pgquorum stops first, so node1's fencer starts rule
// 2's clock and keeps it in fence.json; then node1's pgquorum and every
// PostgreSQL stop. The hours the cluster stays down are simulated by moving
// every time in node1's fence.json back by five hours. node1 starts first,
// its standbys only once its fencer has taken a step: the carried clock,
// saved hours before this start, must start afresh with the quiet period,
// not fence the primary at its first step (review finding: it did, and the
// cluster failed over from a primary that was never lost).
func TestFenceNotAfterAWholeClusterRestart(t *testing.T) {
	t.Parallel()
	const fenceAfter = 3 * time.Second
	r := startFailoverRig(t, threeNodes("dc1"), withKeys(map[string]string{
		"failover.fence": api.FenceStop, "failover.fence_after": fenceAfter.String()}))
	ctx := context.Background()
	n1, n2, n3 := r.c.Node("node1"), r.c.Node("node2"), r.c.Node("node3")
	waitWritesOn(t, r.w, n1)
	r.w.Stop() // the cluster goes down on purpose
	for _, n := range []*lab.Node{n2, n3} {
		if err := n.StopQuorum(); err != nil {
			t.Fatal(err)
		}
	}
	state := filepath.Join(n1.RaftDir(), "fence.json")
	err := lab.WaitFor(ctx, settle, "node1's fencer to keep rule 2's clock", func(context.Context) error {
		b, err := os.ReadFile(state)
		if err != nil {
			return err
		}
		var st map[string]any
		if err := json.Unmarshal(b, &st); err != nil {
			return err
		}
		if st["not_ready_since"] == nil {
			return fmt.Errorf("no clock in %s", b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := n1.StopQuorum(); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*lab.Node{n1, n2, n3} {
		if err := n.StopPG(ctx, "fast"); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}
	var st any
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	if b, err = json.Marshal(shiftTimes(st, -5*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(state, b, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Logf("node1's fence state, five hours old: %s", b)

	const stepLine = `msg="fence inputs changed"`
	seen := len(n1.LogLines(stepLine))
	if err := n1.StartPG(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n1.StartQuorum(); err != nil {
		t.Fatal(err)
	}
	err = lab.WaitFor(ctx, settle, "node1's fencer to step", func(context.Context) error {
		if len(n1.LogLines(stepLine)) == seen {
			return fmt.Errorf("no step yet")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []*lab.Node{n2, n3} {
		if err := n.StartPG(ctx); err != nil {
			t.Fatal(err)
		}
		if err := n.StartQuorum(); err != nil {
			t.Fatal(err)
		}
	}
	took := waitState(t, n1, api.StatePrimary, settle)
	t.Logf("node1 primary again %s after its standbys started", took.Round(time.Millisecond))
	if lines := n1.LogLines(fenceLine); len(lines) > 0 {
		t.Fatalf("node1 fenced after the restart of the whole cluster: %s", lines[0])
	}
	if n1.PostmasterPID() == 0 {
		t.Fatal("node1's postmaster stopped")
	}
	noFenceInHistory(t, n1)
}

// shiftTimes moves every time in a decoded JSON document by d.
func shiftTimes(v any, d time.Duration) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = shiftTimes(e, d)
		}
	case []any:
		for i, e := range x {
			x[i] = shiftTimes(e, d)
		}
	case string:
		if at, err := time.Parse(time.RFC3339Nano, x); err == nil {
			return at.Add(d).Format(time.RFC3339Nano)
		}
	}
	return v
}
