package failover

import (
	"fmt"
	"strings"
	"time"

	"github.com/pgquorum/pgquorum/repmgr"
)

// standbyStatusInterval is PostgreSQL's default wal_receiver_status_interval:
// an idle standby replies to its primary at least this often. A cluster that
// raises it must raise failover.standby_status_interval (Options.StatusInterval)
// with it, or an idle, healthy stream looks dead to the fencer.
const standbyStatusInterval = 10 * time.Second

// streamMark is what this primary last saw of a standby's stream, each
// sign of life timed by this node's own clock (monotonic within a process;
// the wall clock across its restarts, from the fence state file): when its
// flush position last advanced or equalled the primary's position, and
// when its reply_time last changed. The standby's clock is never compared
// with this node's: a standby whose clock runs ahead would otherwise look
// alive long after its last reply.
type streamMark struct {
	LSN       int64     `json:"lsn"`
	FlushAt   time.Time `json:"flush_at"`
	Reply     float64   `json:"reply"` // the standby's reply_time, by its clock; compared only with itself
	ReplyAt   time.Time `json:"reply_at"`
	Streaming bool      `json:"streaming"` // its walsender's state, at the last probe that listed it
}

// live tells whether the stream showed both signs of life within window.
func (m streamMark) live(now time.Time, window time.Duration) bool {
	return m.Streaming && !m.ReplyAt.IsZero() && now.Sub(m.ReplyAt) <= window && now.Sub(m.FlushAt) <= window
}

// streamFacts is what this primary's database says of its walsenders.
type streamFacts struct {
	Standbys []string        // the registered, active standbys besides this node
	Streams  []repmgr.Stream // pg_stat_replication
	Position *int64          // this primary's pg_current_wal_lsn(); nil on a standby
	// Known is set when Streams come from this step's probe. When the
	// probe failed (a busy machine), the marks stand as they were and age:
	// a probe outage shorter than the window counts no stream dead, a
	// longer one every stream.
	Known bool
}

// liveWindow is how old a standby's last sign of life may be for its stream
// to count as live: an idle standby replies every status interval; half an
// interval more covers its WAL receiver's wake-ups and the probe's refresh.
// Never shorter than fence_after.
func liveWindow(fenceAfter, statusInterval, refresh time.Duration) time.Duration {
	return max(fenceAfter, statusInterval+max(statusInterval/2, 2*refresh))
}

// liveStreams counts the registered standbys streaming live from this
// primary: a walsender in state streaming whose reply_time changed within
// window, and whose flush position advanced (or caught up) within window,
// both by this node's clock. A status alone is no evidence: a one-way
// partition leaves a WAL receiver "streaming" for wal_receiver_timeout with
// no WAL arriving, while its replies (without progress) may still get
// through. A stream seen for the first time is given the benefit of the
// doubt for one window (the marks persist across restarts, so a restart
// gives none again). It returns the marks to keep: those of the registered
// standbys only.
func liveStreams(f streamFacts, marks map[string]streamMark, now time.Time, window time.Duration) (int, map[string]streamMark) {
	var next map[string]streamMark
	live := 0
	for _, name := range f.Standbys {
		m, seen := marks[name]
		if f.Known {
			s, ok := streamOf(f.Streams, name)
			switch {
			case !ok || s.Flush == nil:
				m.Streaming = false
			case !seen:
				m, seen = streamMark{LSN: *s.Flush, FlushAt: now, Streaming: s.State == repmgr.StreamingState}, true
				if s.Reply != nil {
					m.Reply, m.ReplyAt = *s.Reply, now
				}
			default:
				if *s.Flush > m.LSN || (f.Position != nil && *s.Flush >= *f.Position) {
					m.LSN, m.FlushAt = *s.Flush, now
				}
				if s.Reply != nil && (*s.Reply != m.Reply || m.ReplyAt.IsZero()) {
					m.Reply, m.ReplyAt = *s.Reply, now
				}
				m.Streaming = s.State == repmgr.StreamingState
			}
		}
		if !seen {
			continue
		}
		if next == nil {
			next = map[string]streamMark{}
		}
		next[name] = m
		if m.live(now, window) {
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
