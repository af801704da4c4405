package chaos

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/internal/lab"
)

var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

func TestScheduleReplaysItsSeed(t *testing.T) {
	p := Profile{PairShare: 0.3, Grace: time.Second}
	a, b, c := NewSchedule(42, p), NewSchedule(42, p), NewSchedule(43, p)
	same := true
	for range 200 {
		x, y, z := a.Next(), b.Next(), c.Next()
		if !reflect.DeepEqual(x, y) {
			t.Fatalf("seed 42 drew %v, then %v", x, y)
		}
		same = same && reflect.DeepEqual(x, z)
	}
	if same {
		t.Fatal("seeds 42 and 43 drew the same 200 events")
	}
}

func TestScheduleRules(t *testing.T) {
	for _, tc := range []struct {
		name  string
		p     Profile
		check func(Event) string
	}{
		{"short stalls stay under the grace, long ones over it", Profile{Grace: time.Second, PairShare: 0.5}, func(e Event) string {
			for _, f := range e.Faults {
				if f.Class == StallShort && (f.Duration < 300*time.Millisecond || f.Duration >= 700*time.Millisecond) {
					return "short stall " + f.Duration.String()
				}
				if f.Class == StallLong && (f.Duration < 1500*time.Millisecond || f.Duration >= 5*time.Second) {
					return "long stall " + f.Duration.String()
				}
			}
			return ""
		}},
		{"pairs are compatible", Profile{PairShare: 1}, func(e Event) string {
			if len(e.Faults) != 2 {
				return "not a pair" // PairShare 1 and most pairs compatible: 20 draws always find one here
			}
			a, b := e.Faults[0], e.Faults[1]
			if !compatible(a, b) {
				return "incompatible pair"
			}
			if a.Role == Standby && b.Role == Standby && a.Pick%2 == b.Pick%2 {
				return "both on one standby of two"
			}
			if e.Offset < 0 || e.Offset >= time.Second {
				return "offset " + e.Offset.String()
			}
			return ""
		}},
		{"only the chosen classes", Profile{Classes: []Class{HAProxyRestart, CPUHog}, PairShare: 0.5}, func(e Event) string {
			for _, f := range e.Faults {
				if f.Role != Machine || f.Class != HAProxyRestart && f.Class != CPUHog {
					return f.String()
				}
			}
			return ""
		}},
		{"singles only", Profile{PairShare: 0}, func(e Event) string {
			if len(e.Faults) != 1 {
				return "a pair"
			}
			return ""
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := NewSchedule(7, tc.p)
			for range 500 {
				e := s.Next()
				if msg := tc.check(e); msg != "" {
					t.Fatalf("%v: %s", e, msg)
				}
			}
		})
	}
}

func TestCompatible(t *testing.T) {
	for _, tc := range []struct {
		a, b Fault
		want bool
	}{
		{Fault{Class: PartitionFull, Role: Primary}, Fault{Class: PartitionFrom, Role: Standby}, false},
		{Fault{Class: PartitionFull, Role: Primary}, Fault{Class: KillPostmaster, Role: Standby}, true},
		{Fault{Class: StallLong, Role: Primary}, Fault{Class: RestartQuorum, Role: Primary}, false},
		{Fault{Class: StallLong, Role: Primary}, Fault{Class: RestartQuorum, Role: Standby}, true},
		{Fault{Class: KillPostmaster, Role: Primary}, Fault{Class: StopQuorum, Role: Primary}, true},
		{Fault{Class: CPUHog, Role: Machine}, Fault{Class: CPUHog, Role: Machine}, false},
		{Fault{Class: Switchover, Role: Standby}, Fault{Class: Switchover, Role: Standby}, false},
		{Fault{Class: Switchover, Role: Standby}, Fault{Class: HAProxyRestart, Role: Machine}, true},
	} {
		if got := compatible(tc.a, tc.b); got != tc.want {
			t.Errorf("compatible(%v, %v) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestMayDecide(t *testing.T) {
	for _, tc := range []struct {
		faults []Fault
		want   bool
	}{
		{[]Fault{{Class: KillPostmaster, Role: Primary}}, true},
		{[]Fault{{Class: KillPostmaster, Role: Standby}}, false},
		{[]Fault{{Class: StallShort, Role: Primary}}, false},
		{[]Fault{{Class: StallLong, Role: Primary}}, true},
		{[]Fault{{Class: RestartQuorum, Role: Primary}}, false},
		{[]Fault{{Class: PartitionFrom, Role: Primary}}, false}, // the peers still reach it
		{[]Fault{{Class: PartitionToward, Role: Primary}}, true},
		{[]Fault{{Class: HAProxyRestart, Role: Machine}}, false},
		{[]Fault{{Class: Switchover, Role: Standby}}, true},
		{[]Fault{{Class: CPUHog, Role: Machine}, {Class: PartitionFull, Role: Primary}}, true},
		{[]Fault{{Class: CPUHog, Role: Machine}, {Class: PartitionFull, Role: Standby}}, false},
	} {
		if got := (Event{Faults: tc.faults}).MayDecide(); got != tc.want {
			t.Errorf("MayDecide(%v) = %v, want %v", tc.faults, got, tc.want)
		}
	}
}

func TestParseClasses(t *testing.T) {
	if got, err := ParseClasses(""); err != nil || len(got) != len(Classes) {
		t.Errorf(`ParseClasses("") = %v, %v`, got, err)
	}
	if got, err := ParseClasses("cpu-starvation, switchover"); err != nil || !reflect.DeepEqual(got, []Class{CPUHog, Switchover}) {
		t.Errorf("ParseClasses = %v, %v", got, err)
	}
	if _, err := ParseClasses("cpu,nope"); err == nil {
		t.Error("unknown classes accepted")
	}
}

func TestTwoPrimaries(t *testing.T) {
	for _, tc := range []struct {
		name string
		runs []lab.Run
		want int
	}{
		{"one node", []lab.Run{{Node: "a", First: at(0), Last: at(100)}, {Node: "a", First: at(50), Last: at(200)}}, 0},
		{"hand-over with a gap", []lab.Run{{Node: "a", First: at(0), Last: at(100)}, {Node: "b", First: at(150), Last: at(300)}}, 0},
		{"touching is no overlap", []lab.Run{{Node: "a", First: at(0), Last: at(100)}, {Node: "b", First: at(100), Last: at(300)}}, 0},
		{"overlap", []lab.Run{{Node: "a", First: at(0), Last: at(100)}, {Node: "b", First: at(90), Last: at(300)}}, 1},
		{"inside a long run, after another", []lab.Run{{Node: "a", First: at(0), Last: at(1000)}, {Node: "c", First: at(10), Last: at(20)}, {Node: "b", First: at(500), Last: at(600)}}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := TwoPrimaries(tc.runs); len(got) != tc.want {
				t.Errorf("got %v, want %d overlaps", got, tc.want)
			}
		})
	}
}

func TestTwoWriters(t *testing.T) {
	s := func(ms int, up ...string) RouterSample { return RouterSample{At: at(ms), Up: up} }
	got := TwoWriters([]RouterSample{s(0, "n1"), s(50, "n1", "n2"), s(100, "n1", "n2"), s(150, "n2"), s(200), s(250, "n2", "n3")})
	if len(got) != 2 || !got[0].From.Equal(at(50)) || !got[0].To.Equal(at(100)) || !got[1].From.Equal(at(250)) {
		t.Errorf("got %v, want 50–100 and 250–250", got)
	}
	if got := TwoWriters([]RouterSample{s(0, "n1"), s(50), s(100, "n2")}); len(got) != 0 {
		t.Errorf("a clean hand-over: %v", got)
	}
}

func TestDoubleAcks(t *testing.T) {
	w := func(seq int64, sent, done, port int) lab.Write {
		return lab.Write{Seq: seq, Sent: at(sent), Done: at(done), Port: port, Timeline: port - 5431}
	}
	for _, tc := range []struct {
		name   string
		writes []lab.Write
		want   int
	}{
		{"one server", []lab.Write{w(1, 0, 100, 5432), w(2, 50, 150, 5432)}, 0},
		{"clean move", []lab.Write{w(1, 0, 100, 5432), w(2, 50, 80, 5432), w(3, 120, 200, 5433)}, 0},
		{"failed writes do not count", []lab.Write{w(1, 0, 900, 0), w(2, 50, 80, 5433), w(3, 10, 1000, 5432)}, 1},
		{"old primary acknowledges after the new one took a write", []lab.Write{w(1, 0, 500, 5432), w(2, 100, 200, 5433)}, 1},
		{"sent after the old one's last ack", []lab.Write{w(1, 0, 100, 5432), w(2, 101, 200, 5433), w(3, 150, 250, 5433)}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := DoubleAcks(tc.writes); len(got) != tc.want {
				t.Errorf("got %v, want %d", got, tc.want)
			}
		})
	}
}

func TestFalseFailoversAndSummary(t *testing.T) {
	kill := Event{N: 1, Faults: []Fault{{Class: KillPostmaster, Role: Primary}}}
	restart := Event{N: 2, Faults: []Fault{{Class: RestartQuorum, Role: Primary}}}
	pair := Event{N: 3, Faults: []Fault{{Class: CPUHog, Role: Machine}, {Class: RestartQuorum, Role: Standby}}}
	ws := []Window{
		{Event: kill, Start: at(1000), Healed: at(1500), Converged: at(9000), Settled: at(9100)},
		{Event: restart, Start: at(10000), Healed: at(12000), Converged: at(13000), Settled: at(13100)},
		{Event: pair, Start: at(20000), Healed: at(25000)}, // never converged
	}
	decisions := []api.Decision{
		{Epoch: 1, At: at(-5000), Primary: "node1"},                      // the adoption, before the run
		{Epoch: 2, At: at(3000), Primary: "node2", OldPrimary: "node1"},  // the kill's: expected
		{Epoch: 3, At: at(11000), Primary: "node3", OldPrimary: "node2"}, // during a pgquorum restart: false
		{Epoch: 4, At: at(15000), Primary: "node1", OldPrimary: "node3"}, // between faults: false
	}
	falses := FalseFailovers(decisions, ws, at(0))
	if len(falses) != 2 || falses[0].Window != 1 || falses[1].Window != -1 {
		t.Fatalf("false failovers %+v, want epoch 3 in window 1 and epoch 4 in none", falses)
	}
	rows := Summarize(ws, Findings{
		Lost:         []time.Time{at(900), at(2000), at(9500)}, // lost to the kill (twice) and to the restart
		TwoPrimaries: []Span{{From: at(21000)}},
		False:        falses,
	})
	byClass := map[string]Row{}
	for _, r := range rows {
		byClass[r.Class] = r
	}
	for _, tc := range []struct {
		class                                        string
		alone, pairs, lost, two, false, notConverged int
	}{
		{string(KillPostmaster), 1, 0, 2, 0, 0, 0},
		{string(RestartQuorum), 1, 1, 1, 1, 1, 1},
		{string(CPUHog), 0, 1, 0, 1, 0, 1},
		{NoFault, 0, 0, 0, 0, 1, 0},
		{"total", 2, 1, 3, 1, 2, 1},
	} {
		r := byClass[tc.class]
		got := [6]int{r.Alone, r.InPairs, r.Lost, r.TwoPrimaries, r.False, r.NotConverged}
		if want := [6]int{tc.alone, tc.pairs, tc.lost, tc.two, tc.false, tc.notConverged}; got != want {
			t.Errorf("%s: alone, pairs, lost, two 200s, false, not converged = %v, want %v", tc.class, got, want)
		}
	}
	if r := byClass["total"]; r.Violations() != 4 || Max(r.Converge) != 7500*time.Millisecond || Median(r.Converge) != 7500*time.Millisecond {
		t.Errorf("total %+v: want 4 violations, converge max and median 7.5 s", r)
	}
	if got := LostByEvent(ws, []time.Time{at(900), at(2000), at(9500), at(99000)}); got[0] != 2 || got[1] != 1 || got[-1] != 1 {
		t.Errorf("lost by event %v, want 2 in window 0, 1 in window 1, 1 after every window", got)
	}
	table := Table(rows)
	if !strings.Contains(table, "| kill-9-postmaster | 1 (1 + 0) | 2 | 0 | 0 | 0 | 0 | 0 | 7.5 s | 7.5 s |") {
		t.Errorf("table:\n%s", table)
	}
}
