package failover

import (
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/api"
)

// TestFenceColdRestartDoesNotFenceAtTheFirstStep: a planned stop
// of a three-node cluster (p primary, s2 the Raft leader, s3): the operator
// stops pgquorum on s2 and s3 first; two heartbeats later p hears no
// coordinator and its fencer saves not_ready_since = t0 in fence.json (the
// standbys still stream live: no fence); at t0+2s pgquorum and PostgreSQL
// are stopped on p too, then the machines are powered off. Five hours later
// all three boot; p's PostgreSQL (systemd) and pgquorum start a few seconds
// before the standbys' PostgreSQL. p's first fencer step runs before its
// Raft member could hear any leader (Ready false), and before any walsender
// is listed: the carried clock says "no coordinator for 5h", the quiet
// period is waived for a carried clock, the restored marks are hours old,
// so rule 2 fires at once and stops the only primary, which was never
// replaced (the log has no later decision; nothing ran while all were
// down). The cluster then fails over from a primary that was not lost.
func TestFenceColdRestartDoesNotFenceAtTheFirstStep(t *testing.T) {
	pos, reply := int64(4096), 1.0
	mem := fenceMemory{Epoch: 2, Primary: "p", NotReadySince: t0,
		Marks: map[string]streamMark{
			"s2": {LSN: pos, FlushAt: t0.Add(2 * time.Second), Reply: reply, ReplyAt: t0.Add(2 * time.Second), Streaming: true},
			"s3": {LSN: pos, FlushAt: t0.Add(2 * time.Second), Reply: reply, ReplyAt: t0.Add(2 * time.Second), Streaming: true},
		}}
	boot := t0.Add(5 * time.Hour)
	now := boot.Add(time.Second) // the fencer's first step, a second after pgquorum started
	v := FenceView{Policy: api.FenceStop, Self: "p", DBUp: true, Registered: true, Ready: false, Primary: "p", Epoch: 2,
		FenceAfter: 3 * time.Second, AdoptWithin: 8 * time.Second, Members: 3, Quiet: true}
	f := fenceFacts{View: v, Streams: streamFacts{Standbys: []string{"s2", "s3"}, Position: &pos, Known: true},
		Window: 15 * time.Second, Started: boot, QuietUntil: boot.Add(8 * time.Second)}
	in := fenceStep(f, mem, now)
	if in.Fence != "" {
		t.Fatalf("the primary of a cluster restarted as a whole is fenced %s after its pgquorum started, before its Raft "+
			"member could hear a leader or a standby could connect: %s", now.Sub(boot), in.Fence)
	}
}
