package failover

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/repmgr"
)

// The rejoin's shell: one attempt to make this former primary a standby
// streaming from the committed primary. It owns the data directory before
// it acts: a postmaster someone else started is waited for, stopped when
// it runs as the deposed primary, left alone when it streams from the
// committed primary; otherwise pgquorum holds postmaster.pid
// (repmgr.DataDirLock) through crash recovery and pg_rewind, so that a
// pg_ctl start meanwhile is refused by PostgreSQL itself. The standby's
// configuration is written before the lock is released: whoever starts
// PostgreSQL after that starts the standby.

const (
	// dirPoll is how often a starting or stopping postmaster is looked at.
	dirPoll = 200 * time.Millisecond
	// standbyPatience is how long a standby started by someone else may
	// take to stream from the committed primary before the rejoin stops
	// and rewinds it; streamPatience, the same for the standby the rejoin
	// started itself, before the attempt fails.
	standbyPatience = 10 * time.Second
	streamPatience  = 30 * time.Second
	// maxDirRaces bounds how often in one attempt a postmaster may start
	// between two of the rejoin's steps.
	maxDirRaces = 5
	// rewindBound bounds pg_rewind instead of failover.command_timeout:
	// a pg_rewind killed half way leaves a directory that a second
	// pg_rewind may no longer rewind (seen on a loaded machine: "could not
	// read WAL record"), so it is never cut short by the attempt's bound
	// nor by a newer decision.
	rewindBound = 30 * time.Minute
)

// Failures of an attempt that retrying cannot fix (rejoinFailure).
var (
	errStartedDuringRewind = errors.New("a postmaster worked in the data directory during pg_rewind: it may be damaged")
	errNotStreaming        = errors.New("started, but not streaming")
	// errCatchingUp is no failure of the standby's: its WAL receiver
	// streams an older timeline of the primary's history, not past the
	// switch (roleOf); the attempt's time ran out first.
	errCatchingUp         = errors.New("still catching up on an older timeline of the primary's history")
	errForkedSameTimeline = errors.New("pg_rewind found nothing to rewind, yet the standby does not stream: its history forked on the timeline number of the primary's")
)

// errNoRoom: too little free space to run crash recovery or pg_rewind
// safely. Retrying fixes it once space is freed (a full WAL disk that an
// operator, or the fault's end, clears); running out part way would not.
var errNoRoom = errors.New("too little free space to rewind")

// enoughRoom says whether the free space Room measured lets the rejoin run
// crash recovery and pg_rewind (repmgr.RewindRoom).
func enoughRoom(free uint64, where string, err error) error {
	switch {
	case err != nil:
		return err
	case free < repmgr.RewindRoom:
		return fmt.Errorf("%w: %d MB free on the filesystem of %s, want %d MB: waiting for space before touching the data directory",
			errNoRoom, free>>20, where, repmgr.RewindRoom>>20)
	}
	return nil
}

// rejoinLog collects what one attempt did, for its log line.
type rejoinLog struct{ b strings.Builder }

func (l *rejoinLog) add(format string, args ...any) {
	fmt.Fprintf(&l.b, format, args...)
	l.b.WriteString("\n")
}

func (l *rejoinLog) String() string { return strings.TrimSpace(l.b.String()) }

// Rejoiner makes this former primary a standby streaming from the
// committed primary, one attempt per call. It holds what the rejoin needs
// and nothing of the other actions (RepmgrActions).
type Rejoiner struct {
	CLI     repmgr.CLI     // repmgr standby register; its runner runs Command
	Local   *repmgr.Local  // asks the local postmaster whether it streams
	Service repmgr.Service // the data directory: stop, start, pg_rewind, crash recovery, standby configuration
	Self    string
	Command string // failover.rejoin_command; "": pgquorum rewinds and starts the standby itself
}

// Rejoin is one attempt of the rejoin of primary; the operator's
// failover.rejoin_command replaces the rewind, configuration and start.
func (x Rejoiner) Rejoin(ctx context.Context, d api.Decision, primary repmgr.Node) (string, error) {
	var out rejoinLog
	if err := repmgr.CheckpointAt(ctx, primary.Conninfo); err != nil {
		return "", fmt.Errorf("checkpoint on %s before the rejoin (so that pg_rewind sees its timeline): %w", primary.Name, err)
	}
	// A standby streams from the primary only once it receives the
	// primary's timeline: one that forked off it streams the old timeline
	// from it up to the fork, over and over, and never goes further. The
	// history tells one on an older timeline that catches up, not past the
	// switch, from one that forked (roleOf).
	tl, err := x.timelines(ctx, primary, &out)
	if err != nil {
		return "", err
	}
	for race := 0; ; race++ {
		if race == maxDirRaces {
			return out.String(), fmt.Errorf("a postmaster started %d times between the rejoin's steps", race)
		}
		lock, left, err := x.ownDataDir(ctx, primary, tl, &out)
		switch {
		case err != nil:
			return out.String(), err
		case left:
			return out.String(), x.register(ctx, primary, &out)
		}
		rewound, err := x.rewindHeld(ctx, primary, lock, &out)
		if rerr := lock.Release(); err == nil {
			err = rerr
		}
		if errors.Is(err, repmgr.ErrDataDirBusy) && !errors.Is(err, errStartedDuringRewind) {
			out.add("a postmaster took the data directory between two steps (%v): looking again", err)
			continue
		}
		if err != nil {
			return out.String(), err
		}
		if err := x.startStandby(ctx, d, primary, tl, &out); err != nil {
			return out.String(), startFailure(err, rewound)
		}
		return out.String(), x.register(ctx, primary, &out)
	}
}

// timelines reads the primary's timeline and its history. The history
// needs pg_read_file, which repmgr's superuser may call; without it the
// rejoin goes on with the timeline alone, which any role may read, and
// tells no standby catching up.
func (x Rejoiner) timelines(ctx context.Context, primary repmgr.Node, out *rejoinLog) (repmgr.Timelines, error) {
	tl, err := repmgr.PrimaryTimelines(ctx, primary.Conninfo)
	if err == nil {
		out.add("%s is on timeline %d", primary.Name, tl.Current)
		return tl, nil
	}
	cur, cerr := repmgr.CurrentTimeline(ctx, primary.Conninfo)
	if cerr != nil {
		return repmgr.Timelines{}, fmt.Errorf("the timeline of %s before the rejoin: %w", primary.Name, cerr)
	}
	out.add("%s is on timeline %d (its history: %v; a standby on an older timeline is not told catching up)", primary.Name, cur, err)
	return repmgr.Timelines{Current: cur}, nil
}

// ownDataDir makes the data directory the rejoin's: it takes it when no
// postmaster runs, waits while one starts or stops, stops one running as
// the deposed primary (or as a standby neither streaming from primary nor
// catching up), and leaves a standby streaming from primary alone (left).
func (x Rejoiner) ownDataDir(ctx context.Context, primary repmgr.Node, tl repmgr.Timelines, out *rejoinLog) (lock *repmgr.DataDirLock, left bool, err error) {
	dir := x.Service.Conf.DataDirectory
	var standbySince time.Time
	var lastStep dirStep = -1
	for {
		v := dirView{StandbyPatience: standbyPatience}
		v.PM, v.Exists, err = repmgr.ReadPostmaster(dir)
		if err != nil {
			return nil, false, err
		}
		step := nextDirStep(v)
		if step == dirProbe {
			v.Role = x.localRole(ctx, primary, tl)
			if !v.Role.InRecovery || v.Role.Streams || v.Role.CatchingUp || v.Role.Err != nil {
				standbySince = time.Time{}
			} else if standbySince.IsZero() {
				standbySince = time.Now()
			}
			if !standbySince.IsZero() {
				v.Waited = time.Since(standbySince)
			}
			step = nextDirStep(v)
		}
		if step != lastStep {
			out.add("data directory: postmaster.pid %s: %s%s", pmText(v), step, catchUpText(v.Role))
			lastStep = step
		}
		switch step {
		case dirTake:
			l, pm, err := repmgr.TakeDataDir(dir, holdFor(ctx))
			if errors.Is(err, repmgr.ErrDataDirBusy) {
				out.add("postmaster %d took the data directory first", pm.PID)
				continue
			}
			if err == nil {
				out.add("holding the data directory: postmaster.pid names placeholder %d", l.PID())
			}
			return l, false, err
		case dirLeave:
			out.add("a standby someone else started streams from %s: left alone", primary.Name)
			return nil, true, nil
		case dirStop:
			o, err := x.Service.Stop(ctx)
			out.add("stopped postmaster %d (%s): %s", v.PM.PID, roleText(v.Role), strings.TrimSpace(o))
			if err != nil {
				return nil, false, err
			}
			standbySince = time.Time{}
			continue
		}
		select {
		case <-ctx.Done():
			if v.Role != nil && v.Role.CatchingUp {
				return nil, false, fmt.Errorf("%w: a standby someone else started, %s: %w", errCatchingUp, v.Role.Where, context.Cause(ctx))
			}
			return nil, false, fmt.Errorf("wait for postmaster %d (%s): %w", v.PM.PID, v.PM.Status, context.Cause(ctx))
		case <-time.After(dirPoll):
		}
	}
}

// catchUpText is what the log says of a standby catching up.
func catchUpText(r *localRole) string {
	if r == nil || !r.CatchingUp {
		return ""
	}
	return " (a standby catching up, " + r.Where + ")"
}

func pmText(v dirView) string {
	switch {
	case !v.Exists:
		return "absent"
	case !v.PM.Alive:
		return fmt.Sprintf("stale (PID %d)", v.PM.PID)
	}
	return fmt.Sprintf("PID %d, %q", v.PM.PID, v.PM.Status)
}

func roleText(r *localRole) string {
	switch {
	case r == nil:
		return "not asked"
	case !r.InRecovery:
		return "the deposed primary"
	}
	return "a standby not streaming from the committed primary"
}

// holdFor is how long the placeholder may hold the data directory: the
// attempt's time left, and pg_rewind's, and a little more.
func holdFor(ctx context.Context) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		return time.Until(dl) + rewindBound + time.Minute
	}
	return rewindBound + 10*time.Minute
}

// localRole asks the local postmaster whether it is in recovery, and
// whether it streams from primary on primary's current timeline, or
// catches up on an older one (roleOf).
func (x Rejoiner) localRole(ctx context.Context, primary repmgr.Node, tl repmgr.Timelines) *localRole {
	f, err := x.Local.Probe(ctx)
	return roleOf(f, err, primary, tl)
}

// rewindHeld brings the held data directory to a rewound standby's:
// crash recovery when it was not shut down cleanly, pg_rewind, the
// standby's configuration. repmgr.ErrDataDirBusy: a postmaster took the
// directory between two steps, and the lock is gone.
func (x Rejoiner) rewindHeld(ctx context.Context, primary repmgr.Node, lock *repmgr.DataDirLock, out *rejoinLog) (rewound bool, err error) {
	if x.Command != "" {
		// The operator's command rewinds and starts, as repmgr node rejoin
		// would: it needs the directory free.
		return true, nil
	}
	ctl, err := x.Service.Controldata(ctx)
	if err != nil {
		return false, err
	}
	out.add("control file: %q, timeline %d", ctl.State, ctl.Timeline)
	if err := enoughRoom(repmgr.Room(x.Service.Conf.DataDirectory)); err != nil {
		return false, err
	}
	if ctl.State == repmgr.StateInProduction || ctl.State == repmgr.StateInCrashRecovery {
		if err := x.crashRecover(ctx, lock, out); err != nil {
			return false, err
		}
		if ctl, err = x.Service.Controldata(ctx); err != nil {
			return false, err
		}
	}
	conninfo, err := repmgr.ReplicationConninfo(primary, x.Self)
	if err != nil {
		return false, err
	}
	slot := ""
	if x.Service.Conf.UseReplicationSlots && x.Service.Conf.NodeID > 0 {
		slot = repmgr.SlotName(x.Service.Conf.NodeID)
		if err := repmgr.EnsureSlotAt(ctx, primary.Conninfo, slot); err != nil {
			return false, err
		}
	}
	writeConfig := func() error {
		if err := x.Service.WriteStandbyConfig(conninfo, slot); err != nil {
			return err
		}
		out.add("standby.signal and primary_conninfo (slot %q) written: whoever starts PostgreSQL now starts a standby of %s", slot, primary.Name)
		return nil
	}
	switch {
	case repmgr.CleanlyShutDown(ctl.State):
		return x.rewindGuarded(ctx, primary, lock, writeConfig, out)
	case ctl.State == repmgr.StateInArchiveRecovery:
		// Rewound already (an attempt that failed to start it), or a
		// standby that crashed: it starts as a standby, and must stream.
		out.add("no rewind: the data directory is a standby's")
		return true, writeConfig()
	}
	return false, fmt.Errorf("the control file says %q: not a state the rejoin knows", ctl.State)
}

// rewindGuarded runs pg_rewind with the data directory guarded, and
// writes the standby's configuration before the guard is lifted: from
// then on, any start is the standby's. rewound is false when pg_rewind
// found nothing to rewind.
func (x Rejoiner) rewindGuarded(ctx context.Context, primary repmgr.Node, lock *repmgr.DataDirLock, writeConfig func() error, out *rejoinLog) (rewound bool, err error) {
	if err := lock.Guard(); err != nil {
		return false, err
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rewindBound)
	defer cancel()
	o, err := x.Service.Rewind(rctx, primary.Conninfo)
	out.add("pg_rewind from %s: %s", primary.Name, strings.TrimSpace(lastLines(o, 3)))
	if err != nil {
		if rewindChangedNothing(o, err) {
			// It refused before it changed anything: the directory may
			// start as it was.
			_ = lock.Unguard()
		}
		// Otherwise the guard stays: a directory pg_rewind may have left
		// half done must not start; the next attempt rewinds it again.
		return false, err
	}
	if err := writeConfig(); err != nil {
		return false, err
	}
	if err := lock.Unguard(); err != nil {
		return false, fmt.Errorf("%w: %w", errStartedDuringRewind, err)
	}
	return !strings.Contains(o, "no rewind required"), nil
}

// rewindChangedNothing tells whether a failed pg_rewind's output proves
// that it stopped before it changed the data directory: it exited on its
// own (not killed at rewindBound, whose output may be cut short), its
// output is untranslated (it carries the English prefix of its error,
// "error:" from PostgreSQL 15, "fatal:" before), and it never said it
// began rewinding, the message it prints before it changes a file.
// repmgr.Service.Rewind runs it untranslated; should a locale slip
// through all the same, the message cannot be read and the guard stays.
func rewindChangedNothing(out string, err error) bool {
	var ce *repmgr.CommandError
	english := strings.Contains(out, "pg_rewind: error: ") || strings.Contains(out, "pg_rewind: fatal: ")
	return errors.As(err, &ce) && english && !strings.Contains(out, "rewinding from last common checkpoint")
}

// crashRecover runs crash recovery on the held data directory: the
// single-user postgres takes the lock over (DataDirLock.Env) and removes
// it at its exit; the lock is taken again at once.
func (x Rejoiner) crashRecover(ctx context.Context, lock *repmgr.DataDirLock, out *rejoinLog) error {
	if err := lock.Check(); err != nil {
		return err
	}
	if err := x.Service.RemoveStandbySignal(); err != nil {
		return err
	}
	o, err := x.Service.CrashRecover(ctx, lock.Env())
	out.add("crash recovery in single-user mode: %s", strings.TrimSpace(lastLines(o, 2)))
	if err != nil {
		return err
	}
	return lock.Retake()
}

// startStandby starts PostgreSQL (or runs the operator's rejoin command),
// then waits until it streams from primary: streamPatience at most, or
// for as long as the attempt lasts while it catches up (streamWait). A
// start refused because a postmaster someone else started runs already
// is no failure: that postmaster runs the configuration just written.
func (x Rejoiner) startStandby(ctx context.Context, d api.Decision, primary repmgr.Node, tl repmgr.Timelines, out *rejoinLog) error {
	var o string
	var err error
	if x.Command != "" {
		o, err = x.CLI.Runner.Shell(ctx, x.Command, decisionEnv(d, x.Self, primary)...)
		out.add("failover.rejoin_command: %s", strings.TrimSpace(o))
	} else {
		o, err = x.Service.Start(ctx)
		out.add("start PostgreSQL: %s", strings.TrimSpace(lastLines(o, 3)))
	}
	if err != nil {
		pm, ok, rerr := repmgr.ReadPostmaster(x.Service.Conf.DataDirectory)
		if rerr != nil || !ok || !pm.Alive {
			return err
		}
		out.add("postmaster %d runs: started by someone else meanwhile", pm.PID)
	}
	began := time.Now()
	var seen time.Time // when it was last seen catching up
	for {
		r := x.localRole(ctx, primary, tl)
		if r.CatchingUp {
			if seen.IsZero() {
				out.add("catching up: %s", r.Where)
			}
			seen = time.Now()
		}
		stalled := time.Since(began)
		if !seen.IsZero() {
			stalled = time.Since(seen)
		}
		done, err := streamWait(r, !seen.IsZero(), stalled, streamPatience, ctx.Err() != nil)
		switch {
		case done:
			out.add("streams from %s", primary.Name)
			return nil
		case errors.Is(err, errCatchingUp):
			return fmt.Errorf("%w from %s when the attempt's time ran out (%s): %w", err, primary.Name, roleErr(r), context.Cause(ctx))
		case err != nil:
			return fmt.Errorf("%w from %s within %s (%s)", err, primary.Name, streamPatience, roleErr(r))
		}
		select {
		case <-ctx.Done(): // the next answer is the verdict's
		case <-time.After(dirPoll):
		}
	}
}

func roleErr(r *localRole) string {
	switch {
	case r.Err != nil:
		return api.ErrorText(r.Err)
	case !r.InRecovery:
		return "it runs as a primary"
	case r.CatchingUp:
		return "its WAL receiver streams from it " + r.Where
	}
	return "its WAL receiver does not stream its timeline from it"
}

// register records this node as a standby of primary in repmgr.nodes.
func (x Rejoiner) register(ctx context.Context, primary repmgr.Node, out *rejoinLog) error {
	o, err := x.CLI.RegisterStandby(ctx, primary.ID)
	out.add("repmgr standby register --force: %s", strings.TrimSpace(lastLines(o, 2)))
	return err
}

// lastLines is the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
