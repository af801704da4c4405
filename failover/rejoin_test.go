package failover

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/repmgr"
)

func TestRejoinBackoff(t *testing.T) {
	tests := []struct {
		n         int
		permanent bool
		want      time.Duration
	}{
		{1, false, 5 * time.Second},
		{2, false, 10 * time.Second},
		{3, false, 20 * time.Second},
		{5, false, 80 * time.Second},
		{6, false, 2 * time.Minute},
		{50, false, 2 * time.Minute},
		{1, true, 2 * time.Minute},
	}
	for _, tt := range tests {
		if got := rejoinBackoff(tt.n, tt.permanent); got != tt.want {
			t.Errorf("rejoinBackoff(%d, %t) = %s, want %s", tt.n, tt.permanent, got, tt.want)
		}
	}
}

func TestNextDirStep(t *testing.T) {
	live := func(status string) repmgr.Postmaster { return repmgr.Postmaster{PID: 42, Alive: true, Status: status} }
	tests := []struct {
		name string
		v    dirView
		want dirStep
	}{
		{"no postmaster.pid: take it", dirView{}, dirTake},
		{"a stale postmaster.pid (a crash): take it", dirView{Exists: true, PM: repmgr.Postmaster{PID: 42}}, dirTake},
		{"a postmaster in crash recovery: wait for it", dirView{Exists: true, PM: live(repmgr.PMStarting)}, dirWait},
		{"a postmaster stopping: wait for it", dirView{Exists: true, PM: live(repmgr.PMStopping)}, dirWait},
		{"a holder without a state (another pgquorum's placeholder): wait", dirView{Exists: true, PM: live("")}, dirWait},
		{"a postmaster accepting connections: ask it", dirView{Exists: true, PM: live(repmgr.PMReady)}, dirProbe},
		{"a postmaster that does not answer yet: wait", dirView{Exists: true, PM: live(repmgr.PMReady), Role: &localRole{Err: errors.New("refused")}}, dirWait},
		{"the deposed primary, started by someone else: stop it", dirView{Exists: true, PM: live(repmgr.PMReady), Role: &localRole{}}, dirStop},
		{"a standby streaming from the committed primary: leave it alone",
			dirView{Exists: true, PM: live(repmgr.PMStandby), Role: &localRole{InRecovery: true, Streams: true}}, dirLeave},
		{"a standby not streaming yet: wait, for a while",
			dirView{Exists: true, PM: live(repmgr.PMStandby), Role: &localRole{InRecovery: true}, Waited: time.Second, StandbyPatience: 10 * time.Second}, dirWait},
		{"a standby that never streams: stop it, then rewind",
			dirView{Exists: true, PM: live(repmgr.PMStandby), Role: &localRole{InRecovery: true}, Waited: 10 * time.Second, StandbyPatience: 10 * time.Second}, dirStop},
		{"a standby catching up on an older timeline from the committed primary: wait, however long (the attempt bounds it)",
			dirView{Exists: true, PM: live(repmgr.PMStandby), Role: &localRole{InRecovery: true, CatchingUp: true}, Waited: time.Hour, StandbyPatience: 10 * time.Second}, dirWait},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := nextDirStep(tt.v); got != tt.want {
				t.Errorf("nextDirStep = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestRejoinFailure(t *testing.T) {
	cmdErr := func(output string) error {
		return fmt.Errorf("pg_rewind: %w", &repmgr.CommandError{Command: "pg_rewind -D /data", ExitCode: 1, Output: output})
	}
	tests := []struct {
		name      string
		err       error
		permanent bool
	}{
		{"neither checksums nor wal_log_hints",
			cmdErr(`pg_rewind: error: target server needs to use either data checksums or "wal_log_hints = on"`), true},
		{"no common ancestor", cmdErr("pg_rewind: error: could not find common ancestor of the source and target cluster's timelines"), true},
		{"WAL missing from pg_wal",
			cmdErr(`pg_rewind: error: could not open file "/data/pg_wal/000000010000000000000003": No such file or directory`), true},
		{"previous WAL record missing", cmdErr("pg_rewind: error: could not find previous WAL record at 0/3000060"), true},
		{"another system", cmdErr("pg_rewind: error: source and target clusters are from different systems"), true},
		{"a postmaster during the rewind", fmt.Errorf("%w: busy", errStartedDuringRewind), true},
		{"a fork on the same timeline number", fmt.Errorf("%w: %w", errForkedSameTimeline, errNotStreaming), true},
		{"the primary unreachable", cmdErr("pg_rewind: error: could not connect to server: Connection refused"), false},
		{"not shut down cleanly", cmdErr("pg_rewind: error: target server must be shut down cleanly"), false},
		{"another file the rewind could not open", cmdErr(`pg_rewind: error: could not open file "/data/postgresql.auto.conf": Permission denied`), false},
		{"a start that failed", errors.New("start PostgreSQL: exit code 1"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			why, permanent := rejoinFailure(tt.err)
			if permanent != tt.permanent || (permanent && why == "") {
				t.Errorf("rejoinFailure = %q, %t; want permanent %t", why, permanent, tt.permanent)
			}
		})
	}
}

// TestRejoinRunnerRetries drives the runner as the actor does: a rejoin
// that fails is tried again after the backoff, for as long as the
// decision stands, and shown as Rejoining with its attempt and last error
// until it succeeds; a failure retrying cannot fix names the manual step.
func TestRejoinRunnerRetries(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	opts := Options{Self: "p", RefreshInterval: time.Second, CommandTimeout: time.Minute, RepmgrConfigFile: "/etc/repmgr.conf",
		Now: func() time.Time { return now }, Logger: slog.New(slog.DiscardHandler)}
	board := newStatusBoard()
	r := &actionRunner{opts: opts, fsm: NewFSM(), board: board, note: func(context.Context) {},
		conninfo: func(int) string { return "host=s2 dbname=repmgr" }}
	d := api.Decision{Epoch: 3, Primary: "s2", PrimaryID: 2}
	a := &attempt{}
	fails := errors.New("start PostgreSQL: exit code 1")
	try := func(err error) error {
		return r.try(context.Background(), a, d, api.ActionRejoin, func(context.Context) error { return err })
	}

	if err := try(fails); !errors.Is(err, fails) {
		t.Fatalf("first attempt: %v", err)
	}
	s, attempts, failures := board.rejoinView(3)
	if s == nil || s.Attempt != 1 || s.LastError == "" || s.NextAt == nil || !s.NextAt.Equal(now.Add(5*time.Second)) || attempts != 1 || failures != 1 {
		t.Fatalf("after a failure: %+v, %d attempts, %d failures", s, attempts, failures)
	}
	state, why := NodeState(NodeView{Enabled: true, Self: "p", Primary: "s2", Rejoin: rejoinText(s, now)})
	if state != api.FailoverRejoining || !strings.Contains(why, "attempt 1, last error: start PostgreSQL") || !strings.Contains(why, "next attempt in 5s") {
		t.Errorf("state %s: %s", state, why)
	}
	now = now.Add(4 * time.Second)
	if err := try(nil); !errors.Is(err, errNotTried) {
		t.Fatalf("within the backoff: %v, want not tried", err)
	}
	now = now.Add(time.Second)
	if err := try(fails); !errors.Is(err, fails) {
		t.Fatalf("second attempt: %v", err)
	}
	now = now.Add(9 * time.Second)
	if err := try(nil); !errors.Is(err, errNotTried) {
		t.Fatalf("within the doubled backoff: %v", err)
	}
	// Retrying cannot fix it: the operator is told what to do, and
	// attempts go on at the longest backoff.
	now = now.Add(time.Second)
	hints := fmt.Errorf("pg_rewind: %w", &repmgr.CommandError{ExitCode: 1,
		Output: `pg_rewind: error: target server needs to use either data checksums or "wal_log_hints = on"`})
	if err := try(hints); err == nil {
		t.Fatal("third attempt succeeded")
	}
	s, _, failures = board.rejoinView(3)
	if !s.Permanent || !strings.Contains(s.ManualStep, "repmgr -f /etc/repmgr.conf standby clone --force -d 'host=s2 dbname=repmgr'") || failures != 3 {
		t.Errorf("after a failure retrying cannot fix: %+v", s)
	}
	now = now.Add(rejoinBackoffMax)
	if err := try(nil); err != nil {
		t.Fatalf("attempt after the longest backoff: %v", err)
	}
	if s, attempts, failures := board.rejoinView(3); s != nil || attempts != 4 || failures != 3 {
		t.Errorf("after the success: %+v, %d attempts, %d failures", s, attempts, failures)
	}
	if err := try(nil); !errors.Is(err, errNotTried) {
		t.Errorf("after the success: %v, want not tried", err)
	}
}

// TestRejoinRunning: with auto_rejoin, a former primary whose database
// runs is the rejoin's too: as the deposed primary (stopped, then
// rewound), or as a standby while its rejoin has not succeeded or repmgr
// still records it as a primary (checked and registered).
func TestRejoinRunning(t *testing.T) {
	all := []repmgr.Node{actP, actS2, actS3}
	asP := Options{Self: "p", Mode: api.ModePgquorum, AutoRejoin: true}
	asPbare := Options{Self: "p", Mode: api.ModePgquorum}
	asPrimary := func(f actorFacts) actorFacts { f.Facts.InRecovery = false; return f }
	tried := func(n int, ok bool) actorMemory {
		return actorMemory{Attempts: map[actKey]*attempt{{2, api.ActionRejoin}: {n: n, ok: ok}}}
	}
	s2standby := actS2
	s2standby.Type = repmgr.TypeStandby
	pStandby := actP
	pStandby.Type = repmgr.TypeStandby
	tests := []struct {
		name  string
		opts  Options
		facts actorFacts
		state Replicated
		mem   actorMemory
		a     answers
		want  []string
	}{
		{name: "the deposed primary started by hand is rejoined: stopped, then rewound", opts: asP,
			facts: asPrimary(standbyFacts("", all...)), state: chose(actS2, true), want: []string{"probe s2", "rejoin 2 s2"}},
		{name: "even after a rejoin of the decision succeeded (a new episode)", opts: asP,
			facts: asPrimary(standbyFacts("", all...)), state: chose(actS2, true), mem: tried(1, true), want: []string{"probe s2", "rejoin 2 s2"}},
		{name: "never while the committed primary does not answer as one", opts: asP,
			facts: asPrimary(standbyFacts("", all...)), state: chose(actS2, true), a: answers{primaryErr: errors.New("timeout")},
			want: []string{"probe s2", "nothing: the committed primary does not answer as a primary"}},
		{name: "not before the committed primary's promotion", opts: asP,
			facts: asPrimary(standbyFacts("", all...)), state: chose(actS2, false), want: []string{"nothing: runs as primary"}},
		{name: "without auto_rejoin, the deposed primary is left to fencing", opts: asPbare,
			facts: asPrimary(standbyFacts("", all...)), state: chose(actS2, true), want: []string{"nothing: runs as primary"}},
		{name: "a standby still registered as a primary is checked and registered", opts: asP,
			facts: standbyFacts("s2", all...), state: chose(actS2, true), want: []string{"probe s2", "rejoin 2 s2"}},
		{name: "a standby whose rejoin failed is tried again", opts: asP,
			facts: standbyFacts("s2", s2standby, pStandby, actS3), state: chose(actS2, true), mem: tried(2, false),
			want: []string{"probe s2", "rejoin 2 s2"}},
		{name: "a standby whose rejoin succeeded follows as any standby", opts: asP,
			facts: standbyFacts("s2", s2standby, pStandby, actS3), state: chose(actS2, true), mem: tried(1, true),
			want: []string{"probe s2", "timelines s2", "follow 2 s2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := decideAll(tt.opts, tt.facts, tt.state, tt.mem, tt.a)
			if !matches(got, tt.want) {
				t.Fatalf("step:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(tt.want, "\n  "))
			}
		})
	}
}

// TestRewindChangedNothing: the guard is lifted after a failed pg_rewind
// only when its output proves it stopped before it changed a file.
func TestRewindChangedNothing(t *testing.T) {
	exited := &repmgr.CommandError{Command: "pg_rewind", ExitCode: 1}
	for _, c := range []struct {
		name string
		out  string
		err  error
		want bool
	}{
		{"refused, PostgreSQL 15", "pg_rewind: error: target server must be shut down cleanly\n", exited, true},
		{"refused, PostgreSQL 13", "pg_rewind: fatal: could not connect to server\n", exited, true},
		{"began rewinding", "pg_rewind: rewinding from last common checkpoint at 0/2000060 on timeline 1\npg_rewind: error: could not read file\n", exited, false},
		{"translated", "pg_rewind: Rückspulen ab letztem gemeinsamen Checkpoint bei 0/2000060\npg_rewind: Fehler: konnte Datei nicht lesen\n", exited, false},
		{"no output", "", exited, false},
		{"killed at the bound", "pg_rewind: error: something\n", context.DeadlineExceeded, false},
	} {
		if got := rewindChangedNothing(c.out, c.err); got != c.want {
			t.Errorf("%s: rewindChangedNothing = %v, want %v", c.name, got, c.want)
		}
	}
}
