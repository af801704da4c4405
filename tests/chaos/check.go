package chaos

import (
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/internal/lab"
)

// Span is a stretch of time in which something held: two nodes answering
// 200, two read-write servers UP, two servers acknowledging writes.
type Span struct {
	From, To time.Time
	What     string
}

func (s Span) String() string {
	return fmt.Sprintf("%s–%s %s", s.From.Format("15:04:05.000"), s.To.Format("15:04:05.000"), s.What)
}

// TwoPrimaries returns where runs of 200s of different nodes overlap
// (lab.StatePoller.PrimaryRuns: each run widened to the instants its
// requests left and its answers came back).
func TwoPrimaries(runs []lab.Run) []Span {
	runs = slices.Clone(runs)
	sort.Slice(runs, func(i, j int) bool { return runs[i].First.Before(runs[j].First) })
	var out []Span
	for i, a := range runs {
		for _, b := range runs[i+1:] {
			if !b.First.Before(a.Last) {
				break // sorted by First: no later run starts before a ends
			}
			if a.Node != b.Node {
				out = append(out, Span{From: b.First, To: minTime(a.Last, b.Last),
					What: fmt.Sprintf("%s (%d answers) and %s (%d answers) both 200", a.Node, a.Answers, b.Node, b.Answers)})
			}
		}
	}
	return out
}

// RouterSample is one reading of HAProxy's read-write backend: which
// servers were UP (HAProxy routes to them, "UP 1/2" included).
type RouterSample struct {
	At time.Time
	Up []string
}

// TwoWriters returns the stretches of consecutive samples in which HAProxy
// had two or more read-write servers UP, one span per stretch.
func TwoWriters(samples []RouterSample) []Span {
	var out []Span
	var open *Span
	for _, s := range samples {
		if len(s.Up) >= 2 {
			if open == nil {
				open = &Span{From: s.At, What: fmt.Sprintf("HAProxy read-write servers UP: %v", s.Up)}
			}
			open.To = s.At
			continue
		}
		if open != nil {
			out = append(out, *open)
			open = nil
		}
	}
	if open != nil {
		out = append(out, *open)
	}
	return out
}

// DoubleAcks returns the pairs of acknowledged writes, from different
// servers, whose times from sending to acknowledgement overlap: two
// servers taking writes at once, as concurrent clients saw them. Each pair
// is reported by the later-sent write, against the server whose
// acknowledgement came last.
func DoubleAcks(writes []lab.Write) []Span {
	acked := make([]lab.Write, 0, len(writes))
	for _, w := range writes {
		if w.Port != 0 {
			acked = append(acked, w)
		}
	}
	sort.Slice(acked, func(i, j int) bool { return acked[i].Sent.Before(acked[j].Sent) })
	// latest[port] is the write acknowledged last by port among those sent
	// so far: one sent earlier overlaps w exactly when it was acknowledged
	// after w was sent.
	latest := map[int]lab.Write{}
	var out []Span
	for _, w := range acked {
		for port, x := range latest {
			if port != w.Port && x.Done.After(w.Sent) {
				out = append(out, Span{From: w.Sent, To: minTime(x.Done, w.Done),
					What: fmt.Sprintf("write %d acknowledged by port %d (timeline %d) overlaps write %d acknowledged by port %d (timeline %d)",
						w.Seq, w.Port, w.Timeline, x.Seq, x.Port, x.Timeline)})
			}
		}
		if x, ok := latest[w.Port]; !ok || w.Done.After(x.Done) {
			latest[w.Port] = w
		}
	}
	return out
}

// Window is when one event of the schedule ran: from its first fault to
// the end of the hold that proved its convergence after the last one
// healed. What happens until then (a late fence, a decision that follows
// another) is the event's.
type Window struct {
	Event     Event
	Start     time.Time
	Healed    time.Time
	Converged time.Time // from then on converged, through Settled; zero: not within the bound
	// Settled ends the window: the end of the hold that proved the
	// convergence, or, when it did not converge, of the one after the
	// repair (zero if that failed too).
	Settled time.Time
	Note    string // what was done beyond the schedule (a repair)
}

// ConvergeBound is how long after the heal a cluster must have converged.
const ConvergeBound = 60 * time.Second

// End is when the window closes: the end of its convergence's hold (after
// a repair, if it needed one), or the bound.
func (w Window) End() time.Time {
	if !w.Settled.IsZero() {
		return w.Settled
	}
	return w.Healed.Add(ConvergeBound)
}

// During returns the index of the window that holds t, -1 for none.
func During(ws []Window, t time.Time) int {
	for i, w := range ws {
		if !t.Before(w.Start) && !t.After(w.End()) {
			return i
		}
	}
	return -1
}

// before returns the index of the first window that ends at or after t:
// the event a write acknowledged at t was lost to. -1 for none.
func before(ws []Window, t time.Time) int {
	for i, w := range ws {
		if !w.End().Before(t) {
			return i
		}
	}
	return -1
}

// LostByEvent counts the lost writes (their acknowledgement times) per
// window they are charged to, as Summarize charges them; -1 holds those
// after the last window.
func LostByEvent(ws []Window, lost []time.Time) map[int]int {
	out := map[int]int{}
	for _, t := range lost {
		out[before(ws, t)]++
	}
	return out
}

// FalseFailovers returns the decisions committed after start that no
// event explains: outside every window, or in one whose faults cannot lose
// the primary (Event.MayDecide), with the window's index (-1: none).
func FalseFailovers(decisions []api.Decision, ws []Window, start time.Time) []Finding {
	var out []Finding
	for _, d := range decisions {
		if d.At.Before(start) {
			continue
		}
		i := During(ws, d.At)
		if i >= 0 && ws[i].Event.MayDecide() {
			continue
		}
		out = append(out, Finding{Window: i, At: d.At,
			What: fmt.Sprintf("epoch %d: %s replaces %s: %s", d.Epoch, d.Primary, d.OldPrimary, d.Reason)})
	}
	return out
}

// Finding is one invariant violation or lost write, with the window it
// falls in (-1: none).
type Finding struct {
	Window int
	At     time.Time
	What   string
}

// Findings are what the checks found over a run.
type Findings struct {
	Lost []time.Time // acknowledgement times of writes the final primary lacks
	// LostProtected are those of Lost that failover.synchronous promised
	// to keep (Protected): each is a violation.
	LostProtected []time.Time
	DoubleAcks    []Span
	TwoPrimaries  []Span
	TwoWriters    []Span
	False         []Finding
	// Other are what a fault's own check found: a pgquorum that started
	// on a wiped raft_dir, or refused without naming the recovery.
	Other []Finding
}

// Row is one line of the table: a fault class, or "total".
type Row struct {
	Class                                             string
	Alone, InPairs                                    int
	Lost, DoubleAcks, TwoPrimaries, TwoWriters, False int
	LostProtected                                     int // of Lost, the writes synchronous replication promised to keep
	NotConverged                                      int
	Other                                             int             // Findings.Other
	Converge                                          []time.Duration // heal to convergence
}

// Violations counts what fails a run: all but the lost writes that no
// synchronous replication promised to keep.
func (r Row) Violations() int {
	return r.LostProtected + r.DoubleAcks + r.TwoPrimaries + r.TwoWriters + r.False + r.NotConverged + r.Other
}

// NoFault names the row of findings outside every window.
const NoFault = "(between faults)"

// Summarize attributes the findings to the windows' classes: a pair counts
// in the rows of both its classes, once in the total.
func Summarize(ws []Window, f Findings) []Row {
	rows := map[string]*Row{}
	row := func(c string) *Row {
		if rows[c] == nil {
			rows[c] = &Row{Class: c}
		}
		return rows[c]
	}
	total := &Row{Class: "total"}
	classesOf := func(i int) []string {
		if i < 0 {
			return []string{NoFault}
		}
		var cs []string
		for _, fl := range ws[i].Event.Faults {
			if !slices.Contains(cs, string(fl.Class)) {
				cs = append(cs, string(fl.Class))
			}
		}
		return cs
	}
	add := func(i int, field func(*Row) *int) {
		for _, c := range classesOf(i) {
			*field(row(c))++
		}
		*field(total)++
	}
	for i, w := range ws {
		pair := len(w.Event.Faults) > 1
		for _, c := range classesOf(i) {
			r := row(c)
			if pair {
				r.InPairs++
			} else {
				r.Alone++
			}
			if w.Converged.IsZero() {
				r.NotConverged++
			} else {
				r.Converge = append(r.Converge, w.Converged.Sub(w.Healed))
			}
		}
		if pair {
			total.InPairs++
		} else {
			total.Alone++
		}
		if w.Converged.IsZero() {
			total.NotConverged++
		} else {
			total.Converge = append(total.Converge, w.Converged.Sub(w.Healed))
		}
	}
	for _, t := range f.Lost {
		add(before(ws, t), func(r *Row) *int { return &r.Lost })
	}
	for _, t := range f.LostProtected {
		add(before(ws, t), func(r *Row) *int { return &r.LostProtected })
	}
	for _, s := range f.DoubleAcks {
		add(During(ws, s.From), func(r *Row) *int { return &r.DoubleAcks })
	}
	for _, s := range f.TwoPrimaries {
		add(During(ws, s.From), func(r *Row) *int { return &r.TwoPrimaries })
	}
	for _, s := range f.TwoWriters {
		add(During(ws, s.From), func(r *Row) *int { return &r.TwoWriters })
	}
	for _, x := range f.False {
		add(x.Window, func(r *Row) *int { return &r.False })
	}
	for _, x := range f.Other {
		add(x.Window, func(r *Row) *int { return &r.Other })
	}
	var out []Row
	for _, c := range Classes {
		if r := rows[string(c)]; r != nil {
			out = append(out, *r)
		}
	}
	if r := rows[NoFault]; r != nil {
		out = append(out, *r)
	}
	return append(out, *total)
}

// Median and Max of ds; zero for none.
func Median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// Max is the largest of ds; zero for none.
func Max(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	return slices.Max(ds)
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
