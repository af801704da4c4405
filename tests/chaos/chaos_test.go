package chaos

import (
	"fmt"
	"reflect"
	"slices"
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
				if alone[e.Faults[0].Class] {
					return ""
				}
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
		{"wipe-raft-dir alone, on a standby", Profile{Classes: []Class{WipeRaft, CPUHog}, PairShare: 1}, func(e Event) string {
			for _, f := range e.Faults {
				if f.Class == WipeRaft && (len(e.Faults) != 1 || f.Role != Standby) {
					return "wipe-raft-dir paired or off a standby"
				}
			}
			return ""
		}},
		{"partition-location hits no single node", Profile{Classes: []Class{PartitionLocation}, PairShare: 0}, func(e Event) string {
			if f := e.Faults[0]; f.Role != Machine || f.Duration < time.Second || f.Duration >= 8*time.Second {
				return f.String()
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
		{"wal-disk-full lasts 1–8 s, on the primary or a standby, one per node", Profile{Classes: []Class{WALDiskFull}, PairShare: 1}, func(e Event) string {
			for _, f := range e.Faults {
				if f.Role == Machine || f.Duration < time.Second || f.Duration >= 8*time.Second {
					return f.String()
				}
			}
			if len(e.Faults) == 2 && e.Faults[0].Role == Primary && e.Faults[1].Role == Primary {
				return "two on the primary"
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

// TestRestartAndLossDraws checks the draws of the classes that carry more
// than a duration: within their bounds, on either role, and every variant
// drawn (both profiles, both ends of LossRange) from one seed.
func TestRestartAndLossDraws(t *testing.T) {
	s := NewSchedule(11, Profile{Classes: []Class{RestartNoState, RestartProfile, PacketLoss}, PairShare: 0.5})
	seen := map[string]bool{}
	for range 2000 {
		e := s.Next()
		for _, f := range e.Faults {
			seen[string(f.Class)+" on the "+f.Role.String()] = true
			var bad bool
			switch f.Class {
			case RestartNoState:
				bad = f.Duration < 300*time.Millisecond || f.Duration >= 5*time.Second
			case RestartProfile:
				bad = f.Duration < 2*time.Second || f.Duration >= 8*time.Second ||
					f.Down < 300*time.Millisecond || f.Down >= 3*time.Second || f.Profile != ProfileDefault && f.Profile != ProfileFast
				seen["profile "+f.Profile] = true
			case PacketLoss:
				bad = f.Duration < 2*time.Second || f.Duration >= 10*time.Second || f.Loss < LossRange[0] || f.Loss > LossRange[1]
				seen[fmt.Sprintf("loss %d", f.Loss)] = true
			}
			if bad || f.Role == Machine {
				t.Fatalf("%v: out of bounds (%+v)", e, f)
			}
		}
		if len(e.Faults) == 2 && !compatible(e.Faults[0], e.Faults[1]) {
			t.Fatalf("%v: incompatible pair", e)
		}
	}
	for _, want := range []string{"restart-pgquorum-no-state on the primary", "restart-pgquorum-no-state on the standby",
		"restart-pgquorum-profile on the primary", "restart-pgquorum-profile on the standby", "packet-loss on the primary",
		"packet-loss on the standby", "profile default", "profile fast",
		fmt.Sprintf("loss %d", LossRange[0]), fmt.Sprintf("loss %d", LossRange[1])} {
		if !seen[want] {
			t.Errorf("2000 events drew no %s", want)
		}
	}
	for _, tc := range []struct {
		f    Fault
		want string
	}{
		{Fault{Class: PacketLoss, Role: Primary, Duration: 3 * time.Second, Loss: 17}, "packet-loss (17 %) on the primary 3s"},
		{Fault{Class: RestartProfile, Role: Standby, Pick: 1, Duration: 4 * time.Second, Down: 1500 * time.Millisecond, Profile: ProfileFast},
			"restart-pgquorum-profile (profile fast, down 1.5s) on the standby #1 4s"},
		{Fault{Class: RestartNoState, Role: Primary, Duration: time.Second}, "restart-pgquorum-no-state on the primary 1s"},
	} {
		if got := tc.f.String(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.f, got, tc.want)
		}
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
		{Fault{Class: WipeRaft, Role: Standby}, Fault{Class: CPUHog, Role: Machine}, false},
		{Fault{Class: KillPostmaster, Role: Primary}, Fault{Class: WipeRaft, Role: Standby}, false},
		{Fault{Class: PartitionLocation, Role: Machine}, Fault{Class: PartitionToward, Role: Standby}, false},
		{Fault{Class: PartitionLocation, Role: Machine}, Fault{Class: KillPostmaster, Role: Primary}, true},
		{Fault{Class: WALDiskFull, Role: Primary}, Fault{Class: WALDiskFull, Role: Primary}, false}, // one ballast per disk
		{Fault{Class: WALDiskFull, Role: Primary}, Fault{Class: WALDiskFull, Role: Standby}, true},
		{Fault{Class: WALDiskFull, Role: Standby}, Fault{Class: WALDiskFull, Role: Standby}, true}, // Next moves the second to the other standby
		{Fault{Class: WALDiskFull, Role: Primary}, Fault{Class: KillPostmaster, Role: Primary}, true},
		// The firewall's heal lifts every rule: one loss or cut at a time.
		{Fault{Class: PacketLoss, Role: Primary}, Fault{Class: PartitionFull, Role: Standby}, false},
		{Fault{Class: PacketLoss, Role: Primary}, Fault{Class: PacketLoss, Role: Standby}, false},
		{Fault{Class: PartitionLocation, Role: Machine}, Fault{Class: PacketLoss, Role: Standby}, false},
		{Fault{Class: PacketLoss, Role: Primary}, Fault{Class: KillPostmaster, Role: Primary}, true},
		{Fault{Class: PacketLoss, Role: Primary}, Fault{Class: RestartProfile, Role: Primary}, true},
		// Each restart class kills and starts the target's pgquorum.
		{Fault{Class: RestartNoState, Role: Primary}, Fault{Class: RestartProfile, Role: Primary}, false},
		{Fault{Class: RestartNoState, Role: Primary}, Fault{Class: StallShort, Role: Primary}, false},
		{Fault{Class: StopQuorum, Role: Primary}, Fault{Class: RestartProfile, Role: Primary}, false},
		{Fault{Class: RestartNoState, Role: Primary}, Fault{Class: RestartNoState, Role: Standby}, true},
		{Fault{Class: RestartProfile, Role: Standby}, Fault{Class: KillPostmaster, Role: Primary}, true},
		{Fault{Class: RestartProfile, Role: Standby}, Fault{Class: WipeRaft, Role: Standby}, false},
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
		{[]Fault{{Class: WipeRaft, Role: Standby}}, false},
		// A lossy network reaches the primary still, slower: no failover.
		{[]Fault{{Class: PacketLoss, Role: Primary, Loss: 30}}, false},
		{[]Fault{{Class: PacketLoss, Role: Primary}, {Class: KillPostmaster, Role: Primary}}, true},
		// A restart of pgquorum alone, its database up, loses nothing.
		{[]Fault{{Class: RestartNoState, Role: Primary}}, false},
		{[]Fault{{Class: RestartProfile, Role: Primary, Profile: ProfileDefault}}, false},
		{[]Fault{{Class: PartitionLocation, Role: Machine}}, false}, // the primary's location keeps its majority
		{[]Fault{{Class: WALDiskFull, Role: Primary}}, true},        // its database goes down
		{[]Fault{{Class: WALDiskFull, Role: Standby}}, false},       // only that standby's WAL receiver stops
		{[]Fault{{Class: WALDiskFull, Role: Standby}, {Class: StallShort, Role: Primary}}, false},
	} {
		if got := (Event{Faults: tc.faults}).MayDecide(); got != tc.want {
			t.Errorf("MayDecide(%v) = %v, want %v", tc.faults, got, tc.want)
		}
	}
}

func TestParseClasses(t *testing.T) {
	if got, err := ParseClasses("", true); err != nil || len(got) != len(Classes) {
		t.Errorf(`ParseClasses("", two locations) = %v, %v`, got, err)
	}
	got, err := ParseClasses("", false)
	if err != nil || len(got) != len(Classes)-1 || slices.Contains(got, PartitionLocation) || !slices.Contains(got, WipeRaft) {
		t.Errorf(`ParseClasses("", one location) = %v, %v: want every class but partition-location`, got, err)
	}
	if got, err := ParseClasses("cpu-starvation, switchover", false); err != nil || !reflect.DeepEqual(got, []Class{CPUHog, Switchover}) {
		t.Errorf("ParseClasses = %v, %v", got, err)
	}
	if got, err := ParseClasses("wal-disk-full,kill-9-postmaster", false); err != nil || !reflect.DeepEqual(got, []Class{WALDiskFull, KillPostmaster}) {
		t.Errorf("ParseClasses(wal-disk-full,kill-9-postmaster) = %v, %v", got, err)
	}
	if got, _ := ParseClasses("", false); !slices.Contains(got, WALDiskFull) {
		t.Errorf(`ParseClasses("", one location) = %v: want wal-disk-full among them`, got)
	}
	if got, err := ParseClasses("restart-pgquorum-no-state,restart-pgquorum-profile, packet-loss", false); err != nil ||
		!reflect.DeepEqual(got, []Class{RestartNoState, RestartProfile, PacketLoss}) {
		t.Errorf("ParseClasses(the restarts and the loss) = %v, %v", got, err)
	}
	if _, err := ParseClasses("cpu,nope", false); err == nil {
		t.Error("unknown classes accepted")
	}
	if _, err := ParseClasses("partition-location", false); err == nil || !strings.Contains(err.Error(), "two locations") {
		t.Errorf("partition-location in one location: %v", err)
	}
	if got, err := ParseClasses("partition-location", true); err != nil || !reflect.DeepEqual(got, []Class{PartitionLocation}) {
		t.Errorf("partition-location in two locations = %v, %v", got, err)
	}
}

func TestParseLoss(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want [2]int
		ok   bool
	}{
		{"", LossRange, true},
		{"5-30", [2]int{5, 30}, true},
		{" 40 - 60 ", [2]int{40, 60}, true},
		{"25", [2]int{25, 25}, true},
		{"0-10", [2]int{}, false},   // no loss is no fault
		{"50-100", [2]int{}, false}, // all lost is a partition
		{"30-5", [2]int{}, false},
		{"x", [2]int{}, false},
	} {
		got, err := ParseLoss(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseLoss(%q) = %v, %v, want %v (ok %v)", tc.in, got, err, tc.want, tc.ok)
		}
	}
	s := NewSchedule(3, Profile{Classes: []Class{PacketLoss}, Loss: [2]int{40, 41}})
	for range 100 {
		if f := s.Next().Faults[0]; f.Loss != 40 && f.Loss != 41 {
			t.Fatalf("%v: loss outside 40-41", f)
		}
	}
}

func TestParseLayout(t *testing.T) {
	for _, tc := range []struct {
		in        string
		want      Layout
		names     string
		locations string
	}{
		{"", Layout{3}, "node1 node2 node3", "dc1 dc1 dc1"},
		{"3", Layout{3}, "node1 node2 node3", "dc1 dc1 dc1"},
		{"3+2", Layout{3, 2}, "node1 node2 node3 node4 node5", "dc1 dc1 dc1 dc2 dc2"},
		{" 4 + 1 ", Layout{4, 1}, "node1 node2 node3 node4 node5", "dc1 dc1 dc1 dc1 dc2"},
		{"2+3", nil, "", ""},   // the primary's location holds no majority
		{"3+3", nil, "", ""},   // nor here
		{"2", nil, "", ""},     // too few to lose one
		{"3+2+1", nil, "", ""}, // three locations
		{"3+x", nil, "", ""},
		{"3+0", nil, "", ""},
	} {
		l, err := ParseLayout(tc.in)
		if tc.want == nil {
			if err == nil {
				t.Errorf("ParseLayout(%q) = %v, want an error", tc.in, l)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(l, tc.want) {
			t.Errorf("ParseLayout(%q) = %v, %v, want %v", tc.in, l, err, tc.want)
			continue
		}
		names, locations := l.Nodes()
		if strings.Join(names, " ") != tc.names || strings.Join(locations, " ") != tc.locations {
			t.Errorf("%v: nodes %v in %v", l, names, locations)
		}
	}
}

func TestParseSync(t *testing.T) {
	for in, want := range map[string]api.SyncMode{"": api.SyncOff, "off": api.SyncOff, "on": api.SyncOn, " strict": api.SyncStrict} {
		if got, err := ParseSync(in); err != nil || got != want {
			t.Errorf("ParseSync(%q) = %q, %v, want %q", in, got, err, want)
		}
	}
	if _, err := ParseSync("quorum"); err == nil {
		t.Error("ParseSync(quorum) accepted")
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
	// A window that did not converge lasts through its repair: a decision
	// during the repair is its event's, and it still did not converge.
	repaired := []Window{{Event: kill, Start: at(1000), Healed: at(1500), Settled: at(90000)}}
	if got := FalseFailovers([]api.Decision{{Epoch: 2, At: at(70000), Primary: "node2"}}, repaired, at(0)); len(got) != 0 {
		t.Errorf("a decision during the repair of a kill of the primary: false failovers %+v", got)
	}
	if r := Summarize(repaired, Findings{}); r[len(r)-1].NotConverged != 1 || len(r[len(r)-1].Converge) != 0 {
		t.Errorf("a repaired window: %+v, want not converged", r[len(r)-1])
	}
	if got := LostByEvent(ws, []time.Time{at(900), at(2000), at(9500), at(99000)}); got[0] != 2 || got[1] != 1 || got[-1] != 1 {
		t.Errorf("lost by event %v, want 2 in window 0, 1 in window 1, 1 after every window", got)
	}
	table := Table(rows, api.SyncOff)
	if !strings.Contains(table, "| kill-9-postmaster | 1 (1 + 0) | 2 | 0 | 0 | 0 | 0 | 0 | 0 | 7.5 s | 7.5 s |") || strings.Contains(table, "synchronous") {
		t.Errorf("table:\n%s", table)
	}

	// With synchronous replication, the lost writes it promised to keep
	// are violations, in a column of their own naming the mode.
	rows = Summarize(ws, Findings{Lost: []time.Time{at(900), at(2000), at(9500)}, LostProtected: []time.Time{at(2000)}})
	total := rows[len(rows)-1]
	if total.Lost != 3 || total.LostProtected != 1 || total.Violations() != 2 { // the lost write and the window that never converged
		t.Errorf("total %+v: want 3 lost, 1 of them promised, 2 violations", total)
	}
	rows = Summarize(ws, Findings{Other: []Finding{{Window: 1, What: "node3 started on a wiped raft_dir"}}})
	if r := rows[len(rows)-1]; r.Other != 1 || r.Violations() != 2 {
		t.Errorf("total %+v: want 1 other violation, 2 violations", r)
	}
	rows = Summarize(ws, Findings{Lost: []time.Time{at(900), at(2000), at(9500)}, LostProtected: []time.Time{at(2000)}})
	table = Table(rows, api.SyncOn)
	if !strings.Contains(table, "| acked writes lost | of them promised by synchronous on |") ||
		!strings.Contains(table, "| kill-9-postmaster | 1 (1 + 0) | 2 | 1 | 0 | 0 | 0 | 0 | 0 | 0 | 7.5 s | 7.5 s |") {
		t.Errorf("table with synchronous on:\n%s", table)
	}
}

func TestUnderRPO0(t *testing.T) {
	since := at(-60000)
	sync := func(ms int) SyncReading {
		return SyncReading{Node: "n1", Sent: at(ms), Recv: at(ms + 5), Answered: true, RPO0: true, Epoch: 2, Since: since}
	}
	async := func(ms int) SyncReading { r := sync(ms); r.RPO0 = false; return r }
	silent := func(ms int) SyncReading { return SyncReading{Node: "n1", Sent: at(ms), Recv: at(ms + 1000)} }
	other := func(ms int) SyncReading { r := sync(ms); r.Since = at(ms - 50); return r } // a fall back and a return since
	for _, tc := range []struct {
		name       string
		readings   []SyncReading
		sent, done int
		want       bool
	}{
		{"bracketed by RPO 0", []SyncReading{sync(0), sync(100), sync(200), sync(300)}, 110, 250, true},
		{"ack answered by the reading that follows", []SyncReading{sync(0), sync(100)}, 10, 100, true},
		{"no reading before the write", []SyncReading{sync(100), sync(200)}, 50, 150, false},
		{"no reading after the acknowledgement", []SyncReading{sync(0), sync(100)}, 10, 150, false},
		{"the reading before came back after the write left", []SyncReading{sync(0), sync(100)}, 102, 104, false},
		{"degraded before", []SyncReading{async(0), sync(100)}, 10, 90, false},
		{"degraded in between", []SyncReading{sync(0), async(100), sync(200)}, 10, 190, false},
		{"degraded after", []SyncReading{sync(0), async(100)}, 10, 90, false},
		{"no answer in between", []SyncReading{sync(0), silent(100), sync(1200)}, 10, 1150, false},
		{"a gap over MaxSyncGap", []SyncReading{sync(0), sync(1100)}, 10, 1000, false},
		{"another committed state after", []SyncReading{sync(0), other(100)}, 10, 90, false},
		{"a new epoch after", []SyncReading{sync(0), func() SyncReading { r := sync(100); r.Epoch = 3; return r }()}, 10, 90, false},
		{"another node's readings", []SyncReading{sync(0), func() SyncReading { r := sync(100); r.Node = "n2"; return r }()}, 10, 90, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := NewSyncHistory(tc.readings)
			if got := h.UnderRPO0("n1", at(tc.sent), at(tc.done)); got != tc.want {
				t.Errorf("UnderRPO0 = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestProtected(t *testing.T) {
	h := NewSyncHistory([]SyncReading{
		{Node: "n1", Sent: at(0), Recv: at(5), Answered: true, RPO0: true, Epoch: 2},
		{Node: "n1", Sent: at(100), Recv: at(105), Answered: true, RPO0: true, Epoch: 2},
		{Node: "n2", Sent: at(0), Recv: at(5), Answered: true, Epoch: 3},
		{Node: "n2", Sent: at(100), Recv: at(105), Answered: true, Epoch: 3},
	})
	nodeOf := func(port int) string { return map[int]string{5432: "n1", 5433: "n2"}[port] }
	byN1 := lab.Write{Seq: 1, Sent: at(10), Done: at(90), Port: 5432}
	byN2 := lab.Write{Seq: 2, Sent: at(10), Done: at(90), Port: 5433} // n2 was degraded
	failed := lab.Write{Seq: 3, Sent: at(10), Done: at(90)}
	for _, tc := range []struct {
		mode             api.SyncMode
		n1, n2, failedOK bool
	}{
		{api.SyncOff, false, false, false},
		{api.SyncOn, true, false, false},
		{api.SyncStrict, true, true, false},
	} {
		got := [3]bool{Protected(tc.mode, h, nodeOf, byN1), Protected(tc.mode, h, nodeOf, byN2), Protected(tc.mode, h, nodeOf, failed)}
		if want := [3]bool{tc.n1, tc.n2, tc.failedOK}; got != want {
			t.Errorf("%s: protected (by n1 under RPO 0, by n2 degraded, not acknowledged) = %v, want %v", tc.mode, got, want)
		}
	}
}

func TestReadingOf(t *testing.T) {
	since := at(0)
	r := ReadingOf("n1", at(1), at(2), &api.SyncStatus{Mode: api.SyncOn, Epoch: 4, Since: &since, RPO: api.RPOZero})
	if !r.Answered || !r.RPO0 || r.Epoch != 4 || !r.Since.Equal(since) {
		t.Errorf("RPO 0 reading %+v", r)
	}
	if r := ReadingOf("n1", at(1), at(2), &api.SyncStatus{Mode: api.SyncOn, Degraded: true}); !r.Answered || r.RPO0 {
		t.Errorf("degraded reading %+v", r)
	}
	if r := ReadingOf("n1", at(1), at(2), &api.SyncStatus{Mode: api.SyncOff}); r.RPO0 {
		t.Errorf("off reading %+v", r)
	}
	if r := ReadingOf("n1", at(1), at(2), nil); r.Answered || r.RPO0 {
		t.Errorf("no answer %+v", r)
	}
}
