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
}

// dirView is what the rejoin sees of the data directory.
type dirView struct {
	PM     repmgr.Postmaster
	Exists bool       // postmaster.pid exists
	Role   *localRole // nil until probed
	// Waited is how long this postmaster has been a standby that does not
	// stream from the committed primary; StandbyPatience bounds it.
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
	case v.Waited < v.StandbyPatience:
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
