package failover

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pgquorum/pgquorum/repmgr"
)

// The rejoin's functional core: what to do with the data directory as it
// is found (a postmaster started by someone else, starting, running as a
// primary or as a standby; or nobody's), how long to wait before the next
// attempt, and which failures retrying cannot fix. The shell is
// rejoin_run.go; docs/failover.md ("Rejoin") gives the argument.

// Bounds of the rejoin's backoff: 5 s after the first failure, doubling,
// at most 2 min; a failure retrying cannot fix waits the longest.
const (
	rejoinBackoffFirst = 5 * time.Second
	rejoinBackoffMax   = 2 * time.Minute
)

// rejoinBackoff is how long after its n-th failed attempt (n ≥ 1) a rejoin
// waits before the next.
func rejoinBackoff(n int, permanent bool) time.Duration {
	if permanent {
		return rejoinBackoffMax
	}
	d := rejoinBackoffFirst
	for i := 1; i < n && d < rejoinBackoffMax; i++ {
		d *= 2
	}
	return min(d, rejoinBackoffMax)
}

// dirStep is what the rejoin does next with the data directory.
type dirStep int

const (
	dirTake  dirStep = iota // nobody holds it: take it
	dirWait                 // a postmaster starts, stops or does not answer yet: wait
	dirProbe                // a postmaster accepts connections: ask its role
	dirStop                 // stop the postmaster: it runs as a primary the decision deposed, or as a standby that does not stream from the committed primary
	dirLeave                // a standby streaming from the committed primary: leave it alone
)

func (s dirStep) String() string {
	return [...]string{"take", "wait", "probe", "stop", "leave"}[s]
}

// localRole is what the running local postmaster answered.
type localRole struct {
	Err        error
	InRecovery bool
	Streams    bool // its WAL receiver streams the committed primary's timeline from it
	// CatchingUp: its WAL receiver streams from the committed primary an
	// older timeline of the primary's history, and its WAL does not go
	// past where that history left the timeline. PostgreSQL moves it to
	// the primary's timeline once it gets there (a rewound standby starts
	// from the last common checkpoint, a standby behind the fork was never
	// past it): it is on its way, not failed. Where says where it is.
	CatchingUp bool
	Where      string
}

// roleOf sorts what the local postmaster answered (f, or err) against
// the committed primary and its timelines t. A standby that forked off t
// streams its old timeline from the primary too, up to the fork, over and
// over: its WAL goes past the fork, so it is not catching up. Without t's
// history (the primary's role may not read its history file) no standby
// on an older timeline is told catching up.
func roleOf(f repmgr.Facts, err error, primary repmgr.Node, t repmgr.Timelines) *localRole {
	if err != nil {
		return &localRole{Err: err}
	}
	r := &localRole{InRecovery: f.InRecovery}
	w := f.WAL
	host, port, herr := primary.Endpoint()
	// A receiver that got an older timeline to its end waits there
	// ("waiting") until replay catches up: still on its way.
	waiting := w.ReceiverStatus == repmgr.WaitingState
	if herr != nil || !f.InRecovery || !w.Streaming() && !waiting || w.SenderHost != host || w.SenderPort != port || w.ReceivedTimeline == nil {
		return r
	}
	tli := int(*w.ReceivedTimeline)
	if tli == t.Current && !waiting {
		r.Streams = true
		return r
	}
	at, inHistory := t.SwitchOf(tli)
	end, known := walEnd(w)
	// Waiting with replay already at the switch is no catch-up: nothing
	// is left to replay (replay paused, a pinned recovery target).
	lagging := !waiting || w.Replayed != nil && *w.Replayed < at
	if inHistory && known && end <= at && lagging {
		r.CatchingUp = true
		r.Where = fmt.Sprintf("on timeline %d at %s, not past %s's switch to timeline %d at %s",
			tli, lsnText(end), primary.Name, t.Current, lsnText(at))
	}
	return r
}

// walEnd is the furthest location a standby received or replayed.
func walEnd(w repmgr.WAL) (int64, bool) {
	switch {
	case w.Position != nil && w.Replayed != nil:
		return max(*w.Position, *w.Replayed), true
	case w.Position != nil:
		return *w.Position, true
	case w.Replayed != nil:
		return *w.Replayed, true
	}
	return 0, false
}

// streamWait is what the wait for the standby the rejoin started makes of
// its latest answer r: done once it streams; errNotStreaming once it went
// stalled (since the wait began or it was last seen catching up) for
// patience without streaming or catching up, or when the attempt's time
// is over (ended); errCatchingUp when that time is over while it catches
// up (seen within patience). A catch-up is waited for as long as the
// attempt may last, failover.command_timeout; what is left of it is the
// next attempt's, which finds it streaming, or waits again (nextDirStep).
func streamWait(r *localRole, seenCatchingUp bool, stalled, patience time.Duration, ended bool) (done bool, err error) {
	switch {
	case r.Err == nil && r.InRecovery && r.Streams:
		return true, nil
	case r.CatchingUp && !ended:
		return false, nil
	case ended && (r.CatchingUp || seenCatchingUp && stalled < patience):
		return false, errCatchingUp
	case ended || stalled >= patience:
		return false, errNotStreaming
	}
	return false, nil
}

// startFailure is the failure of a start after which the standby does
// not stream. Nothing to rewind by the timelines' numbers (rewound
// false), yet it does not stream: a history forked on the same timeline
// number, which no retry fixes. A standby still catching up is not that.
func startFailure(err error, rewound bool) error {
	if !rewound && errors.Is(err, errNotStreaming) {
		return fmt.Errorf("%w: %w", errForkedSameTimeline, err)
	}
	return err
}

// dirView is what the rejoin sees of the data directory.
type dirView struct {
	PM     repmgr.Postmaster
	Exists bool       // postmaster.pid exists
	Role   *localRole // nil until probed
	// Waited is how long this postmaster has been a standby that does not
	// stream from the committed primary, nor catch up; StandbyPatience
	// bounds it.
	Waited, StandbyPatience time.Duration
}

// nextDirStep decides, from postmaster.pid and the postmaster's own
// answer, who owns the data directory and what the rejoin does about it:
// it never races a postmaster it did not start.
func nextDirStep(v dirView) dirStep {
	switch {
	case !v.Exists || !v.PM.Alive:
		return dirTake
	case v.PM.Status != repmgr.PMReady && v.PM.Status != repmgr.PMStandby:
		// Starting (crash recovery), stopping, or a file without a state:
		// a holder that is not a postmaster, or one writing its file.
		return dirWait
	case v.Role == nil:
		return dirProbe
	case v.Role.Err != nil:
		return dirWait
	case !v.Role.InRecovery:
		// Fenced by the committed decision: it is the deposed primary.
		return dirStop
	case v.Role.Streams:
		return dirLeave
	case v.Role.CatchingUp, v.Waited < v.StandbyPatience:
		// A standby catching up is waited for, for as long as the attempt
		// lasts: stopped, it would start again where it is.
		return dirWait
	}
	return dirStop
}

// rejoinFailure sorts a failed attempt: permanent is set when retrying
// cannot fix it, with why in words.
func rejoinFailure(err error) (why string, permanent bool) {
	switch {
	case errors.Is(err, errStartedDuringRewind):
		return "a postmaster ran in the data directory during pg_rewind", true
	case errors.Is(err, errForkedSameTimeline):
		return "its history forked from the primary's on the same timeline number: pg_rewind cannot see it", true
	}
	text := err.Error()
	var ce *repmgr.CommandError
	if errors.As(err, &ce) {
		text += "\n" + ce.Output
	}
	for _, p := range permanentRewindErrors {
		if containsAll(text, p.text...) {
			return p.why, true
		}
	}
	return "", false
}

// permanentRewindErrors are pg_rewind's messages (PostgreSQL 12 to 17)
// that no retry changes.
var permanentRewindErrors = []struct {
	text []string // all in the output
	why  string
}{
	{[]string{"pg_rewind", `use either data checksums or "wal_log_hints = on"`},
		"the data directory has neither data checksums nor wal_log_hints = on: pg_rewind cannot rewind it"},
	{[]string{"pg_rewind", "could not find common ancestor"}, "no common timeline with the primary: pg_rewind cannot rewind it"},
	{[]string{"pg_rewind", "clusters are from different systems"}, "the primary is another database system"},
	{[]string{"pg_rewind", "could not find previous WAL record"}, "WAL the rewind needs is missing from pg_wal"},
	{[]string{"pg_rewind", "could not open file", "pg_wal/"}, "WAL the rewind needs is missing from pg_wal"},
	{[]string{"pg_rewind", "could not read WAL record"}, "WAL the rewind needs is missing or damaged"},
}

func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// manualRejoinStep is what the operator runs when retrying cannot help:
// rebuild the standby from the committed primary.
func manualRejoinStep(repmgrConf, primaryConninfo string) string {
	conf := repmgrConf
	if conf == "" {
		conf = "<repmgr.conf>"
	}
	return fmt.Sprintf("with PostgreSQL stopped on this node, rebuild it from the primary: "+
		"repmgr -f %s standby clone --force -d '%s', start PostgreSQL, then repmgr -f %s standby register --force",
		conf, primaryConninfo, conf)
}
