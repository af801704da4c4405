package tests

import (
	"context"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/internal/lab"
)

// TestOneWayPartitionDeposesBeforePromoting (issue 13, item 1): what node2
// and node3 send to node1 is dropped, while node1 still reaches them. The
// coordinator sees node1 silent and its probes failing; node1 still polls
// its peers, whose WAL receivers still name it. node2 (or node3) must be
// promoted only after node1 has lost its votes and the router's hold has
// passed: node1's last 200 plus consensus.router_hold comes before the
// decision that replaces it, and no write node1 acknowledges comes after.
func TestOneWayPartitionDeposesBeforePromoting(t *testing.T) {
	t.Parallel()
	// The lab's HAProxy (inter 300ms, fall 2) needs (2 × fall + 1) × inter.
	const hold = 5 * hapInter
	r := startFailoverRig(t, threeNodes("dc1"), withKeys(map[string]string{"consensus.router_hold": hold.String()}))
	ctx := context.Background()
	n1, n2, n3 := r.c.Node("node1"), r.c.Node("node2"), r.c.Node("node3")
	waitWritesOn(t, r.w, n1)
	if err := r.c.PartitionOneWay(ctx, []*lab.Node{n2, n3}, []*lab.Node{n1}); err != nil {
		t.Fatal(err)
	}
	cut := time.Now()
	// Not failedOver's budgets: cut off one way, node1 no longer hears the
	// Raft leader and campaigns, which under load can move the leadership
	// and restart detection; what this test asserts is the order of events.
	d := waitDecision(t, r.c, 2, 2*primaryBudget, n2, n3)
	if d.OldPrimary != n1.Name || d.Primary == n1.Name {
		t.Fatalf("epoch 2 = %+v, want a node replacing node1", d)
	}
	p := r.c.Node(d.Primary)
	waitState(t, p, api.StatePrimary, 2*primaryBudget)
	r.writesMoveTo(t, p)
	h, err := history(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Depositions) == 0 || h.Depositions[0].Node != n1.Name || h.Depositions[0].Epoch != 1 || !h.Depositions[0].At.Before(d.At) {
		t.Errorf("%s's /history shows depositions %+v, want node1's at epoch 1, before the decision at %s", p.Name, h.Depositions, d.At.Format("15:04:05.000"))
	}
	var last time.Time
	for _, run := range r.poller.PrimaryRuns() {
		if run.Node == n1.Name && run.Last.After(last) {
			last = run.Last
		}
	}
	t.Logf("one-way cut at %s; node1's last 200 at %s (+%s); %s decided at %s (+%s); %s",
		cut.Format("15:04:05.000"), last.Format("15:04:05.000"), last.Sub(cut).Round(time.Millisecond),
		d.Primary, d.At.Format("15:04:05.000"), d.At.Sub(cut).Round(time.Millisecond), r.poller.Summary())
	if last.IsZero() {
		t.Fatal("node1 was never seen answering 200")
	}
	if !last.Add(hold).Before(d.At) {
		t.Errorf("%s was decided %s after node1's last 200, less than consensus.router_hold %s", d.Primary, d.At.Sub(last).Round(time.Millisecond), hold)
	}
	lost := 0
	for _, x := range r.w.Acked() {
		if x.Port == n1.PGPort && x.Done.After(d.At) {
			lost++
		}
	}
	if lost > 0 {
		t.Errorf("node1 acknowledged %d writes after %s was decided", lost, d.Primary)
	}
	// Writes node1 acknowledged before its 509 while its WAL no longer
	// reached the standbys are lost all the same (asynchronous
	// replication): counted, not bounded.
	gone, err := lab.LostWrites(ctx, p, r.w.Acked())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("one-way partition: %d acknowledged writes lost, none acknowledged by node1 after the decision", len(gone))
	if err := r.c.Heal(ctx); err != nil {
		t.Fatal(err)
	}
}
