package failover

import (
	"errors"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/repmgr"
)

// TestRejoinStreamVerdict: what the rejoin makes of the standby it started
// (roleOf, streamWait, startFailure, rejoinFailure). From the adversarial
// review of the fork rewind: the rule that only the primary's timeline
// counts as streaming called a standby slowly catching up on an older
// timeline, from the primary and not past its switch, "not streaming"
// after 30 s, and after a pg_rewind that found nothing to rewind filed it
// as a fork on the same timeline number, which no retry fixes.
func TestRejoinStreamVerdict(t *testing.T) {
	s2 := repmgr.Node{ID: 2, Name: "s2", Conninfo: "host=s2 port=5432"}
	lsn := func(v int64) *int64 { return &v }
	// receiving is a standby whose receiver streams timeline tli from
	// host, received up to received and replayed up to replayed (0: NULL).
	receiving := func(host string, tli int32, received, replayed int64) repmgr.Facts {
		f := repmgr.Facts{InRecovery: true}
		f.WAL.ReceiverStatus, f.WAL.SenderHost, f.WAL.SenderPort, f.WAL.ReceivedTimeline = repmgr.StreamingState, host, 5432, &tli
		if received != 0 {
			f.WAL.Position = lsn(received)
		}
		if replayed != 0 {
			f.WAL.Replayed = lsn(replayed)
		}
		return f
	}
	notStreaming := repmgr.Facts{InRecovery: true}
	const fork = 0x70BC648 // tl4: s2 left timeline 3 there
	tests := []struct {
		name     string
		facts    repmgr.Facts
		err      error
		tl       repmgr.Timelines
		seen     bool          // seen catching up earlier in this wait
		stalled  time.Duration // since the wait began or it was last seen catching up
		ended    bool          // the attempt's time is over
		rewound  bool          // pg_rewind rewound something
		want     string        // streams, waits, retried, permanent
		catching bool          // roleOf calls it catching up
	}{
		{name: "streams s2's timeline from s2: done", facts: receiving("s2", 4, 0x9000000, 0x9000000), tl: tl4, want: "streams"},
		{name: "catching up on timeline 3 from s2, behind the switch: waits past the stream patience",
			facts: receiving("s2", 3, 0x6000000, 0x5F00000), tl: tl4, stalled: time.Minute, want: "waits", catching: true},
		{name: "catching up after a rewind that found nothing to rewind, the attempt's time over: retried, not permanent",
			facts: receiving("s2", 3, 0x6000000, 0x5F00000), tl: tl4, ended: true, want: "retried", catching: true},
		{name: "catching up after a rewind, the attempt's time over: retried",
			facts: receiving("s2", 3, 0x6000000, 0x5F00000), tl: tl4, ended: true, rewound: true, want: "retried", catching: true},
		{name: "exactly at the switch: still catching up",
			facts: receiving("s2", 3, fork, fork), tl: tl4, ended: true, want: "retried", catching: true},
		{name: "replay not yet known (NULL), received before the switch: catching up",
			facts: receiving("s2", 3, 0x6000000, 0), tl: tl4, ended: true, want: "retried", catching: true},
		{name: "a blip of its receiver at the end, seen catching up a moment before: retried",
			facts: notStreaming, tl: tl4, seen: true, stalled: 2 * time.Second, ended: true, want: "retried"},
		{name: "seen catching up long ago, not since: not streaming, and nothing rewound: permanent",
			facts: notStreaming, tl: tl4, seen: true, stalled: streamPatience, want: "permanent"},
		{name: "forked: timeline 3 from s2 with its replay past the switch, nothing rewound: permanent",
			facts: receiving("s2", 3, 0x70B0000, 0x70BD000), tl: tl4, stalled: streamPatience, want: "permanent"},
		{name: "forked, not patient yet: waits",
			facts: receiving("s2", 3, 0x70B0000, 0x70BD000), tl: tl4, stalled: time.Second, want: "waits"},
		{name: "timeline 3 from another node: not catching up from the primary",
			facts: receiving("p", 3, 0x6000000, 0x5F00000), tl: tl4, stalled: streamPatience, rewound: true, want: "retried"},
		{name: "the primary's history unread: an older timeline is not told catching up",
			facts: receiving("s2", 3, 0x6000000, 0x5F00000), tl: repmgr.Timelines{Current: 4}, stalled: streamPatience, want: "permanent"},
		{name: "its positions unknown: not told catching up",
			facts: receiving("s2", 3, 0, 0), tl: tl4, stalled: streamPatience, rewound: true, want: "retried"},
		{name: "a timeline not in the primary's history: not catching up",
			facts: receiving("s2", 2, 0x4000000, 0x4000000), tl: repmgr.Timelines{Current: 4, History: []repmgr.TimelineSwitch{{Timeline: 3, Switch: fork}}},
			stalled: streamPatience, want: "permanent"},
		{name: "not answering, never seen catching up: not streaming within the patience",
			err: errors.New("connection refused"), tl: tl4, stalled: streamPatience, rewound: true, want: "retried"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := roleOf(tt.facts, tt.err, s2, tt.tl)
			if r.CatchingUp != tt.catching {
				t.Errorf("roleOf = %+v, want catching up %t", r, tt.catching)
			}
			done, err := streamWait(r, tt.seen || r.CatchingUp, tt.stalled, streamPatience, tt.ended)
			got := "waits"
			switch {
			case done:
				got = "streams"
			case err != nil:
				got = "retried"
				if _, permanent := rejoinFailure(startFailure(err, tt.rewound)); permanent {
					got = "permanent"
				}
			}
			if got != tt.want {
				t.Errorf("verdict %s (role %+v, error %v), want %s", got, r, err, tt.want)
			}
		})
	}
}

// TestCatchingUpWithItsReceiverWaitingAtTheSwitch: a rewound
// standby (or one after a pg_rewind that found nothing to rewind) catches
// up on timeline 3 from s2. Its receiver gets timeline 3 up to s2's switch
// at 0/70BC648 quickly, while replay, from the last common checkpoint, is
// far behind (a long checkpoint_timeout under load: minutes of WAL). At
// the end of timeline 3 the walreceiver stops streaming and waits for the
// startup process to replay up to the switch and ask for timeline 4
// (WalRcvWaitForStartPosition): pg_stat_wal_receiver.status is "waiting",
// received_tli 3, for as long as that replay lags. roleOf asks for
// "streaming", so this standby, on its way, is not catching up: the wait
// files it errNotStreaming after 30 s, and after a no-op pg_rewind
// startFailure turns that into errForkedSameTimeline, which waits the
// longest backoff; the next attempt's ownDataDir stops it after 10 s.
// (Adversarial review.)
func TestCatchingUpWithItsReceiverWaitingAtTheSwitch(t *testing.T) {
	s2 := repmgr.Node{ID: 2, Name: "s2", Conninfo: "host=s2 port=5432"}
	const fork = 0x70BC648 // tl4: s2 left timeline 3 there
	tests := []struct {
		name               string
		status             string
		received, replayed int64
	}{
		{name: "its receiver waits at the end of timeline 3, replay behind", status: "waiting", received: fork, replayed: 0x5F00000},
		{name: "its receiver waits at the end of timeline 3, replay just behind", status: "waiting", received: fork, replayed: fork - 0x1000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := repmgr.Facts{InRecovery: true}
			tli := int32(3)
			received, replayed := tt.received, tt.replayed
			f.WAL.ReceiverStatus, f.WAL.SenderHost, f.WAL.SenderPort, f.WAL.ReceivedTimeline = tt.status, "s2", 5432, &tli
			f.WAL.Position, f.WAL.Replayed = &received, &replayed
			r := roleOf(f, nil, s2, tl4)
			_, err := streamWait(r, false, streamPatience, streamPatience, false)
			if err != nil {
				err = startFailure(err, false)
			}
			if !r.CatchingUp || errors.Is(err, errForkedSameTimeline) {
				t.Errorf("a standby whose receiver got s2's timeline 3 up to the switch and waits there while replay catches up: "+
					"roleOf catching up %v, after the stream patience %v; want it catching up, waited for", r.CatchingUp, err)
			}
		})
	}
}

// TestWaitingWithReplayAtTheSwitchIsNotCatchingUp (review): a receiver
// waiting at the end of timeline 3 while replay is already at the switch
// has nothing left to replay (replay paused, a pinned recovery target):
// not catching up, so the rejoin reports it instead of waiting forever.
func TestWaitingWithReplayAtTheSwitchIsNotCatchingUp(t *testing.T) {
	const fork = 0x70BC648
	s2 := repmgr.Node{ID: 2, Name: "s2", Conninfo: "host=s2 port=5432"}
	tli, at := int32(3), int64(fork)
	f := repmgr.Facts{InRecovery: true}
	f.WAL.ReceiverStatus, f.WAL.SenderHost, f.WAL.SenderPort, f.WAL.ReceivedTimeline = repmgr.WaitingState, "s2", 5432, &tli
	f.WAL.Position, f.WAL.Replayed = &at, &at
	if r := roleOf(f, nil, s2, tl4); r.CatchingUp {
		t.Fatalf("replay at the switch, receiver waiting: counted as catching up (%s)", r.Where)
	}
}
