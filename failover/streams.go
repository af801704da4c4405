package failover

import (
	"fmt"
	"strings"
	"time"

	"github.com/pgquorum/pgquorum/repmgr"
)

// standbyStatusInterval is PostgreSQL's default wal_receiver_status_interval:
// an idle standby replies to its primary at least this often. A cluster that
// raises it must raise Options.StatusInterval with it, or an idle, healthy
// stream looks dead to the fencer.
const standbyStatusInterval = 10 * time.Second

// flushMark is when a standby's flush position was last seen to advance, or
// to equal the primary's position.
type flushMark struct {
	LSN int64
	At  time.Time
}

// streamFacts is what this primary's database says of its walsenders.
type streamFacts struct {
	Standbys []string        // the registered, active standbys besides this node
	Streams  []repmgr.Stream // pg_stat_replication
	Position *int64          // this primary's pg_current_wal_lsn(); nil on a standby
}

// liveWindow is how old a standby's last sign of life may be for its stream
// to count as live: an idle standby replies every status interval; half an
// interval more covers its WAL receiver's wake-ups and the probe's refresh.
// Never shorter than fence_after.
func liveWindow(fenceAfter, statusInterval, refresh time.Duration) time.Duration {
	return max(fenceAfter, statusInterval+max(statusInterval/2, 2*refresh))
}

// liveStreams counts the registered standbys streaming live from this
// primary: a walsender in state streaming whose standby replied within
// window, and whose flush position advanced (or caught up) within window.
// A status alone is no evidence: a one-way partition leaves a WAL receiver
// "streaming" for wal_receiver_timeout with no WAL arriving, while its
// replies (without progress) may still get through. It returns the marks to
// keep for the next step: those of the registered standbys only.
func liveStreams(f streamFacts, marks map[string]flushMark, now time.Time, window time.Duration) (int, map[string]flushMark) {
	var next map[string]flushMark
	live := 0
	for _, name := range f.Standbys {
		s, ok := streamOf(f.Streams, name)
		if !ok || s.Flush == nil {
			continue
		}
		m, seen := marks[name]
		if !seen || *s.Flush > m.LSN || (f.Position != nil && *s.Flush >= *f.Position) {
			m = flushMark{LSN: *s.Flush, At: now}
		}
		if next == nil {
			next = map[string]flushMark{}
		}
		next[name] = m
		if s.State == "streaming" && s.ReplyAge != nil && *s.ReplyAge*float64(time.Second) <= float64(window) &&
			now.Sub(m.At) <= window {
			live++
		}
	}
	return live, next
}

func streamOf(streams []repmgr.Stream, name string) (repmgr.Stream, bool) {
	for _, s := range streams {
		if s.Name == name {
			return s, true
		}
	}
	return repmgr.Stream{}, false
}

// registeredStandbys are the active standbys repmgr.nodes lists besides self:
// the nodes a replacement of this primary would be promoted from.
func registeredStandbys(nodes []repmgr.Node, self string) []string {
	var out []string
	for _, n := range nodes {
		if n.Type == repmgr.TypeStandby && n.Active && n.Name != self {
			out = append(out, n.Name)
		}
	}
	return out
}

// statusInterval is Options.StatusInterval, or PostgreSQL's default.
func (o Options) statusInterval() time.Duration {
	if o.StatusInterval > 0 {
		return o.StatusInterval
	}
	return standbyStatusInterval
}

// streamsText shows the walsenders for the log: name, state, reply age and
// how far behind this primary's position each flush is.
func streamsText(f streamFacts) string {
	parts := make([]string, 0, len(f.Streams))
	for _, s := range f.Streams {
		age, behind := "-", "-"
		if s.ReplyAge != nil {
			age = fmt.Sprintf("%.1fs", *s.ReplyAge)
		}
		if s.Flush != nil && f.Position != nil {
			behind = fmt.Sprintf("%dB", *f.Position-*s.Flush)
		}
		parts = append(parts, fmt.Sprintf("%s %s reply %s ago, flush %s behind", s.Name, s.State, age, behind))
	}
	return strings.Join(parts, "; ")
}

// streamsKey is what of the walsenders the fencer logs a change of: which
// standbys stream, and in which state.
func streamsKey(f streamFacts) string {
	parts := make([]string, 0, len(f.Streams))
	for _, s := range f.Streams {
		parts = append(parts, s.Name+" "+s.State)
	}
	return strings.Join(parts, ",")
}
