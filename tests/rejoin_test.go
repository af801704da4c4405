package tests

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/internal/lab"
)

// Tests of issue 16: auto_rejoin survives the operator. node1's postmaster
// is killed, node2 or node3 is promoted, and node1's pgquorum rejoins it;
// meanwhile someone else starts node1's PostgreSQL. Each ends with node1
// streaming from the new primary within rejoinBudget, never two 200s (the
// /state poller), and no write through HAProxy acknowledged by node1 once
// the rejoin started (its PostgreSQL may run again from then on).

// rejoinBudget bounds the time from the rejoin's first attempt to node1
// streaming from the new primary.
const rejoinBudget = 60 * time.Second

// rejoinScenario is a failed-over rig whose old primary is being rejoined.
type rejoinScenario struct {
	*failoverRig
	n1, p    *lab.Node
	fault    time.Time
	rejoinAt time.Time // when the log showed the first attempt
}

// startRejoinScenario kills node1's postmaster, waits for the failover,
// then for node1's first rejoin attempt to start (its log line); before
// that, it runs beforeRejoin, if any, once the postmaster is dead.
func startRejoinScenario(t *testing.T, beforeRejoin func(n1 *lab.Node)) *rejoinScenario {
	t.Helper()
	r := startFailoverRig(t, threeNodes("dc1"), withKeys(map[string]string{"failover.auto_rejoin": "true"}))
	s := &rejoinScenario{failoverRig: r, n1: r.c.Node("node1")}
	waitWritesOn(t, r.w, s.n1)
	s.fault = time.Now()
	if err := s.n1.KillPostmaster(); err != nil {
		t.Fatal(err)
	}
	if beforeRejoin != nil {
		beforeRejoin(s.n1)
	}
	s.p = r.failedOver(t, 2, "node1", s.fault)
	s.rejoinAt = waitLog(t, s.n1, `msg="rejoin attempt started"`, 1, primaryBudget)
	t.Logf("node1's rejoin started %s after the fault", s.rejoinAt.Sub(s.fault).Round(time.Millisecond))
	return s
}

// streams waits until node1 answers 202 and streams from the new primary,
// within rejoinBudget of the rejoin's start, and checks the writes: none
// acknowledged by node1 after the fault.
func (s *rejoinScenario) streams(t *testing.T, what string) {
	t.Helper()
	standbyOf(t, s.n1, s.p, rejoinBudget-time.Since(s.rejoinAt))
	ctx := context.Background()
	err := lab.WaitFor(ctx, 10*time.Second, "node1's WAL receiver to stream from "+s.p.Name, func(ctx context.Context) error {
		ok, err := s.n1.StreamsFrom(ctx, s.p)
		if err == nil && !ok {
			err = fmt.Errorf("node1 does not stream from %s", s.p.Name)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("MEASURED %s: node1 streams from %s %s after the rejoin started (%s after the fault)", what, s.p.Name,
		time.Since(s.rejoinAt).Round(time.Millisecond), time.Since(s.fault).Round(time.Millisecond))
	if lines := s.n1.LogLines(`msg="rejoin attempt succeeded"`); len(lines) == 0 {
		t.Error("node1's pgquorum logged no successful rejoin attempt")
	}
	s.writesMoveTo(t, s.p)
	// From the rejoin's start on, node1's PostgreSQL may run again: as
	// the deposed primary (the operator's), then as a standby.
	for _, w := range s.w.Acked() {
		if w.Port == s.n1.PGPort && w.Done.After(s.rejoinAt) {
			t.Errorf("write %d acknowledged by node1 at %s, after the rejoin started", w.Seq, w.Done.Format("15:04:05.000"))
		}
	}
	// The rejoined node is a registered standby of the new primary.
	waitVerdict(t, s.n1, "202, Following "+s.p.Name, func(status int, b api.StateBody) bool {
		return status == 202 && b.Failover != nil && b.Failover.State == api.FailoverFollowing && b.Failover.Primary == s.p.Name
	})
}

// TestRejoinWhileTheOperatorStartsTheOldPrimary: the operator runs pg_ctl
// start on node1 (as its OS user, as the lab starts it) 0 ms, 200 ms and
// 1 s after node1's pgquorum began its rejoin. Whether the operator's
// server or pgquorum's hold on the data directory comes first, node1 ends
// as a standby streaming from the new primary.
func TestRejoinWhileTheOperatorStartsTheOldPrimary(t *testing.T) {
	t.Parallel()
	for _, offset := range []time.Duration{0, 200 * time.Millisecond, time.Second} {
		t.Run(offset.String(), func(t *testing.T) {
			s := startRejoinScenario(t, nil)
			// The offset is the scenario: how long after the rejoin began
			// the operator acts.
			time.Sleep(offset)
			ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
			start := time.Now()
			err := s.n1.StartPG(ctx)
			cancel()
			t.Logf("operator's pg_ctl start %s into the rejoin: %v (took %s)", offset, err, time.Since(start).Round(time.Millisecond))
			s.streams(t, "operator's start "+offset.String()+" into the rejoin")
			t.Logf("node1's rejoin: %s", strings.Join(s.n1.LogLines(`rejoin attempt`), "\n"))
		})
	}
}

// TestRejoinWhileAServiceManagerRestartsTheOldPrimary: from the moment
// node1's rejoin begins, a loop like systemd's Restart=on-failure
// (RestartSec 100 ms) runs node1's postmaster in the foreground, again
// after every exit that is not clean: refused while pgquorum holds the
// data directory, stopped cleanly when it ran as the deposed primary.
func TestRejoinWhileAServiceManagerRestartsTheOldPrimary(t *testing.T) {
	t.Parallel()
	s := startRejoinScenario(t, nil)
	loop := s.n1.StartRestartOnFailure(100*time.Millisecond, 300)
	t.Cleanup(loop.Stop) // before the lab's Close stops the postmaster
	s.streams(t, "restart loop")
	starts, exits := loop.Starts()
	t.Logf("the restart loop ran the postmaster %d times: %q", starts, exits)
	if starts == 0 {
		t.Error("the restart loop never ran the postmaster")
	}
}

// TestRejoinFirstAttemptFails: node1's port is taken (a listener of the
// test on its address) until its first rejoin attempt fails at the start
// of PostgreSQL, after the rewind; the next attempt, after the backoff,
// starts the rewound standby. /state showed the failed attempt meanwhile.
func TestRejoinFirstAttemptFails(t *testing.T) {
	t.Parallel()
	var held net.Listener
	s := startRejoinScenario(t, func(n1 *lab.Node) {
		addr := net.JoinHostPort(n1.Host, strconv.Itoa(n1.PGPort))
		err := lab.WaitFor(context.Background(), 10*time.Second, "node1's port to be free", func(context.Context) error {
			var err error
			held, err = net.Listen("tcp", addr)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	})
	failedAt := waitLog(t, s.n1, `msg="rejoin attempt failed: trying again"`, 1, rejoinBudget)
	_ = held.Close()
	var b api.StateBody
	if _, err := s.n1.GetJSON(context.Background(), api.PathState, &b); err != nil {
		t.Fatal(err)
	}
	f := b.Failover
	if f == nil || f.State != api.FailoverRejoining || f.Rejoin == nil || f.Rejoin.Attempt < 1 || f.Rejoin.LastError == "" ||
		!strings.Contains(f.Reason, "last error") || f.RejoinFailures < 1 {
		t.Errorf("node1's failover object after the failed attempt: %+v, rejoin %+v; want Rejoining with the attempt and its error", f, f.Rejoin)
	} else {
		t.Logf("node1 /state after the failed attempt: %s: %s", f.State, f.Reason)
	}
	t.Logf("first attempt failed %s after it started", failedAt.Sub(s.rejoinAt).Round(time.Millisecond))
	s.streams(t, "first attempt failed")
	if n := len(s.n1.LogLines(`msg="rejoin attempt started"`)); n < 2 {
		t.Errorf("%d attempts, want a second one", n)
	}
}

// TestRejoinWhenTheOperatorStartedTheOldPrimaryFirst: node1's pgquorum is
// stopped with its postmaster killed; once node2 or node3 is promoted, the
// operator starts node1's PostgreSQL, then its pgquorum. node1 runs as the
// deposed primary (509, no write), and the rejoin stops it cleanly (the
// committed decision fences it), rewinds it and starts it as a standby.
func TestRejoinWhenTheOperatorStartedTheOldPrimaryFirst(t *testing.T) {
	t.Parallel()
	r := startFailoverRig(t, threeNodes("dc1"), withKeys(map[string]string{"failover.auto_rejoin": "true"}))
	s := &rejoinScenario{failoverRig: r, n1: r.c.Node("node1")}
	waitWritesOn(t, r.w, s.n1)
	s.fault = time.Now()
	if err := s.n1.KillPostmaster(); err != nil {
		t.Fatal(err)
	}
	if err := s.n1.StopQuorum(); err != nil {
		t.Fatal(err)
	}
	s.p = r.failedOver(t, 2, "node1", s.fault, r.c.Nodes[1:]...)
	s.rejoinAt = time.Now() // node1's PostgreSQL runs from here on
	if err := s.n1.StartPG(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.n1.StartQuorum(); err != nil {
		t.Fatal(err)
	}
	waitLog(t, s.n1, `msg="rejoin attempt started"`, 1, primaryBudget)
	s.streams(t, "operator's start before the rejoin")
	if lines := s.n1.LogLines("the deposed primary"); len(lines) == 0 {
		t.Error("node1's rejoin did not stop the deposed primary the operator started")
	}
}
