package failover

import (
	"strings"
	"testing"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/repmgr"
)

// From the adversarial review of the fork rewind: a concrete event sequence
// that called a healthy standby forked (failed before forkStep trusted a
// receiver streaming the primary's current timeline).

// TestStreamingPrimaryTimelineIsNoFork: s3 was re-pointed at s2
// before s2's promotion was recorded (followAction's Repoint), s2 was
// promoted to timeline 4 at 0/70BC648, and s3's receiver went on to
// stream timeline 4 from s2 past the switch: the checker's probe shows it
// streaming from s2 with received_tli 4. PostgreSQL switched it to
// timeline 4 only because its replay was not past the switch point: it
// is not forked. The fork probe (StandbyEnd) is a separate read taken a
// moment later; if the receiver restarts in between (a walsender timeout,
// a network blip), received_tli is NULL and greatest() falls back to the
// control file's checkpoint timeline, still 3 until s3 replays a timeline
// 4 checkpoint record (s2's end-of-recovery checkpoint is a spread one:
// minutes), and min_recovery_end_timeline, 3 until a buffer write moves it.
// End (its WAL on timeline 4) is past 0/70BC648: classifyFork calls it
// forked, and a healthy standby is handed to the rejoin (stop, pg_rewind)
// instead of being followed; without auto_rejoin it is left unfollowed
// with "rewind it by hand".
func TestStreamingPrimaryTimelineIsNoFork(t *testing.T) {
	all := []repmgr.Node{actP, actS2, actS3}
	f := standbyFacts("s2", all...)
	tli := int32(4)
	f.Facts.WAL.ReceiverStatus, f.Facts.WAL.ReceivedTimeline = repmgr.StreamingState, &tli
	for _, auto := range []bool{true, false} {
		o := Options{Self: "s3", Mode: api.ModePgquorum, AutoRejoin: auto}
		got := decideAll(o, f, chose(actS2, true), actorMemory{},
			answers{timelines: tl4, end: repmgr.StandbyEnd{Timeline: 3, End: 0x70D0000}})
		if last := got[len(got)-1]; !strings.HasPrefix(last, "follow 2 s2") {
			t.Errorf("auto_rejoin %v: a standby seen streaming s2's timeline 4 from s2 got %v, want it followed, not rewound", auto, got)
		}
	}
}
