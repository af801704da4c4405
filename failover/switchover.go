package failover

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/repmgr"
)

// A switchover goes through the Raft log in three entries, each applied
// by every node alike:
//
//  1. start (phase demoting): the checks passed. The old primary's actor
//     steps down (503 at once, so HAProxy drains it), checkpoints and stops
//     its database cleanly, and reports the shutdown checkpoint's LSN.
//  2. the decision of the next epoch, naming the target (phase promoting),
//     committed by the coordinator once the target has received that LSN
//     and the votes leased to the stopped primary are released. From
//     there, the target promotes and the others follow as in a failover.
//  3. done, once the old primary has rejoined as a standby of the target
//     (or aborted, before step 2: the old primary starts again as it was).
//
// Any coordinator can drive it from the log and the reports alone, so a
// change of coordinator in the middle does not lose it. The old primary's
// part is the actor's (switchoverAction in act.go; demote and restart in
// actor.go); the coordinator's is the switchoverDriver's, below.

// CheckSwitchover says whether a switchover from the committed primary to
// `to` may start, from the committed state and the reports of this round,
// and how far behind the target is.
func CheckSwitchover(st Replicated, to string, nodes []repmgr.Node, reports map[string]*api.Report, maxLag int64) (int64, error) {
	latest, ok := st.Latest()
	switch {
	case !ok:
		return 0, errors.New("no primary is committed yet")
	case latest.PromotedAt == nil && latest.OldPrimary != "":
		// (An adopted primary needs no promotion: its 200 is checked below.)
		return 0, fmt.Errorf("a failover is in progress: %s, the primary of epoch %d, is not promoted yet", latest.Primary, latest.Epoch)
	}
	if sw, running := st.Switchover(); running {
		return 0, fmt.Errorf("a switchover from %s to %s is in progress", sw.From, sw.To)
	}
	if to == st.Primary {
		return 0, fmt.Errorf("%s is the primary already", to)
	}
	n, ok := repmgr.ByName(nodes, to)
	switch {
	case !ok:
		return 0, fmt.Errorf("%q is not registered in repmgr.nodes", to)
	case n.Type != repmgr.TypeStandby:
		return 0, fmt.Errorf("%s is registered as a %s, not a standby", to, n.Type)
	}
	if blocked := repmgrdActive(reports); blocked != "" {
		return 0, errors.New(blocked)
	}
	p := reports[st.Primary]
	switch {
	case p == nil:
		return 0, fmt.Errorf("the primary %s did not answer", st.Primary)
	case !p.DBUp || p.InRecovery || p.State != api.StatePrimary:
		return 0, fmt.Errorf("the primary %s is not confirmed (its state: %s)", st.Primary, p.State)
	}
	t := reports[to]
	switch {
	case t == nil:
		return 0, fmt.Errorf("%s's pgquorum did not answer", to)
	case !t.DBUp:
		return 0, fmt.Errorf("%s's database is down: %s", to, t.DBError)
	case !t.InRecovery:
		return 0, fmt.Errorf("%s is not in recovery", to)
	case t.Upstream != st.Primary || t.Receiver != repmgr.StreamingState:
		return 0, fmt.Errorf("%s does not stream from %s (upstream %q, receiver %q)", to, st.Primary, t.Upstream, t.Receiver)
	case t.Timeline != p.Timeline:
		return 0, fmt.Errorf("%s is on timeline %d, the primary on %d", to, t.Timeline, p.Timeline)
	}
	lag := max(0, p.ReceivedLSN-t.ReceivedLSN)
	if lag > maxLag {
		return lag, fmt.Errorf("%s is %d bytes behind %s, more than failover.switchover_max_lag (%d)", to, lag, st.Primary, maxLag)
	}
	return lag, nil
}

// switchoverDriver is the coordinator's part of the switchover in
// progress, a pure step over the round's facts; it remembers, per
// switchover, when it saw the old primary stopped and whether it recorded
// the target's promotion.
type switchoverDriver struct {
	opts         Options
	caughtUpWait map[uint64]time.Time // per switchover: when the coordinator saw the old primary stopped
	promotedSeen map[uint64]bool      // per switchover: its target's promotion was recorded as a step
}

func newSwitchoverDriver(opts Options) switchoverDriver {
	return switchoverDriver{opts: opts, caughtUpWait: map[uint64]time.Time{}, promotedSeen: map[uint64]bool{}}
}

// catchUp bounds how long the target may take to receive the old
// primary's shutdown checkpoint, during which no node takes writes.
func (s *switchoverDriver) catchUp() time.Duration {
	return max(5*time.Second, 10*s.opts.RefreshInterval)
}

// step drives sw one round on. While the old primary steps down, it
// replaces the detection of a lost primary (whose database it stops on
// purpose): handled is true. Once the target is promoted, it only records
// the end, in Notes, and the round goes on.
func (s *switchoverDriver) step(f roundFacts, st Replicated, sw api.Switchover, now time.Time) (in roundIntent, handled bool) {
	if sw.Phase == api.PhasePromoting {
		return roundIntent{Notes: s.finish(f, st, sw, now)}, false
	}
	phase := fmt.Sprintf("switchover from %s to %s", sw.From, sw.To)
	old := f.Reports[sw.From]
	var a *api.Progress
	if old != nil && old.Action != nil && old.Action.Epoch == sw.ID && old.Action.Kind == api.ActionDemote {
		a = old.Action
	}
	switch {
	case a != nil && a.Failed:
		return roundIntent{Commit: abort(sw, fmt.Sprintf("%s could not step down: %s", sw.From, a.Error), now)}, true
	case a == nil || !a.Done || a.LSN == 0: // the LSN comes with the report after the stop
		if now.Sub(sw.Start) > s.opts.CommandTimeout+s.opts.Grace {
			return roundIntent{Commit: abort(sw, fmt.Sprintf("%s did not report its shutdown within %s", sw.From, s.opts.CommandTimeout+s.opts.Grace), now)}, true
		}
		return roundIntent{Phase: api.FailoverSwitchover, Reason: phase + ": " + sw.From + " steps down and stops"}, true
	}
	var notes []commitIntent
	since, ok := s.caughtUpWait[sw.ID]
	if !ok {
		since = now
		s.caughtUpWait[sw.ID] = now
		notes = append(notes, stepNote(sw, fmt.Sprintf("%s stepped down and stopped cleanly: shutdown checkpoint at %s", sw.From, lsnText(a.LSN)), now))
	}
	t := f.Reports[sw.To]
	if t == nil || !t.DBUp || !t.InRecovery || t.ReceivedLSN <= a.LSN {
		if now.Sub(since) > s.catchUp() {
			got := "no report"
			if t != nil {
				got = fmt.Sprintf("received up to %d", t.ReceivedLSN)
			}
			return roundIntent{Notes: notes, Commit: abort(sw, fmt.Sprintf("%s did not receive %s's shutdown checkpoint (at %s) within %s: %s", sw.To, sw.From, lsnText(a.LSN), s.catchUp(), got), now)}, true
		}
		return roundIntent{Notes: notes, Phase: api.FailoverSwitchover, Reason: fmt.Sprintf("%s: waiting for %s to receive the shutdown checkpoint at %s", phase, sw.To, lsnText(a.LSN))}, true
	}
	from, _ := repmgr.ByName(f.Nodes, sw.From)
	to, ok := repmgr.ByName(f.Nodes, sw.To)
	if !ok {
		return roundIntent{Notes: notes, Commit: abort(sw, sw.To+" is no longer registered", now)}, true
	}
	d := api.Decision{Epoch: st.Epoch + 1, At: now.UTC(), Primary: to.Name, PrimaryID: to.ID, OldPrimary: sw.From,
		Reason: fmt.Sprintf("switchover from %s to %s: %s stopped cleanly at %s, %s received up to %s", sw.From, sw.To, sw.From, lsnText(a.LSN), sw.To, lsnText(t.ReceivedLSN))}
	return roundIntent{Notes: notes, Release: &from, Commit: &commitIntent{Entry: decisionEntry(d), FailPhase: api.FailoverSwitchover,
		FailReason: phase + ": committing " + sw.To + ": ", Reset: true, OK: logLine{slog.LevelWarn, "failover decision committed", decisionArgs(d)}}}, true
}

// finish records the switchover done once its target is promoted and the
// old primary streams from it, or once the old primary's rejoin failed or
// never came.
func (s *switchoverDriver) finish(f roundFacts, st Replicated, sw api.Switchover, now time.Time) []commitIntent {
	d, ok := st.Latest()
	if !ok || d.Epoch != sw.ID+1 || d.PromotedAt == nil {
		return nil
	}
	var notes []commitIntent
	if !s.promotedSeen[sw.ID] {
		s.promotedSeen[sw.ID] = true
		notes = append(notes, stepNote(sw, fmt.Sprintf("%s runs as primary (epoch %d), %s after the switchover started", sw.To, d.Epoch, d.PromotedAt.Sub(sw.Start).Round(time.Millisecond)), now))
	}
	old := f.Reports[sw.From]
	var what, failure string
	switch {
	case old != nil && old.DBUp && old.InRecovery && old.Upstream == sw.To:
		what = fmt.Sprintf("%s is a standby of %s", sw.From, sw.To)
	case old != nil && old.Action != nil && old.Action.Epoch == d.Epoch && old.Action.Kind == api.ActionRejoin && old.Action.Failed:
		failure = fmt.Sprintf("%s could not rejoin %s: %s", sw.From, sw.To, old.Action.Error)
	case now.Sub(*d.PromotedAt) > s.opts.CommandTimeout+s.opts.Grace:
		failure = fmt.Sprintf("%s has not rejoined %s within %s", sw.From, sw.To, s.opts.CommandTimeout+s.opts.Grace)
	default:
		return notes
	}
	if failure != "" {
		what = "done without the old primary: " + failure
	}
	return append(notes, commitIntent{Entry: switchoverStepEntry(sw, api.PhaseDone, what, failure, now),
		OK:     logLine{slog.LevelInfo, "switchover done", []any{"from", sw.From, "to", sw.To, "error", failure}},
		Failed: logLine{slog.LevelWarn, "record the end of the switchover", nil}})
}

// switchoverStepEntry records a step of the switchover of sw's ID,
// moving it to phase (with failure, when it failed).
func switchoverStepEntry(sw api.Switchover, phase api.SwitchoverPhase, what, failure string, now time.Time) Entry {
	return switchoverEntry(api.Switchover{ID: sw.ID, Phase: phase, Error: failure, Steps: []api.Step{{At: now.UTC(), What: what}}})
}

// stepNote records a step of a switchover, for "pgquorum switchover" to
// print as it happens.
func stepNote(sw api.Switchover, what string, now time.Time) commitIntent {
	return commitIntent{Entry: switchoverStepEntry(sw, sw.Phase, what, "", now), Failed: logLine{slog.LevelDebug, "record a switchover step", nil}}
}

// abort gives a switchover up before the promotion: the old primary
// starts again as it was.
func abort(sw api.Switchover, why string, now time.Time) *commitIntent {
	return &commitIntent{Entry: switchoverStepEntry(sw, api.PhaseAborted, "aborted: "+why, why, now),
		OK:     logLine{slog.LevelError, "switchover aborted", []any{"from", sw.From, "to", sw.To, "reason", why}},
		Failed: logLine{slog.LevelWarn, "abort the switchover", nil}}
}

// lsnText writes a WAL location as PostgreSQL does.
func lsnText(lsn int64) string { return fmt.Sprintf("%X/%X", uint64(lsn)>>32, uint32(lsn)) }
