package failover

import (
	"strings"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/repmgr"
)

var syncT0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// streaming is the report of standby n streaming from upstream on
// timeline 1, received up to lsn.
func streaming(n repmgr.Node, upstream string, lsn int64) *api.Report {
	return edited(standby(n, 1, lsn), func(r *api.Report) { r.Upstream, r.Receiver = upstream, repmgr.StreamingState })
}

func primaryReport(n repmgr.Node, lsn int64, names string) *api.Report {
	return &api.Report{Protocol: api.ReportProtocol, Node: n.Name, NodeID: n.ID, State: api.StatePrimary, DBUp: true,
		Timeline: 1, ReceivedLSN: lsn, SyncStandbyNames: names}
}

func TestEligibleStandbys(t *testing.T) {
	nodes := []repmgr.Node{lostP, electS2, electS3, electS4, electR5, electW6}
	base := func() map[string]*api.Report {
		return reports(primaryReport(lostP, 1000, ""), streaming(electS2, "p", 1000), streaming(electS3, "p", 990),
			streaming(electS4, "p", 1000), streaming(electR5, "p", 1000))
	}
	tests := []struct {
		name      string
		edit      func(map[string]*api.Report)
		nodes     []repmgr.Node
		locations []string
		want      string
		whyParts  map[string]string
	}{
		{name: "every standby streaming from the primary, on its timeline, not delayed, is eligible; never the witness",
			want: "r5,s2,s3,s4"},
		{name: "locations restrict them", locations: []string{"dc2"}, want: "r5",
			whyParts: map[string]string{"s2": "failover.synchronous_locations"}},
		{name: "a standby streaming from another standby is not",
			edit: func(r map[string]*api.Report) { r["s3"].Upstream = "s2" }, want: "r5,s2,s4",
			whyParts: map[string]string{"s3": "not streaming from p"}},
		{name: "a WAL receiver that stopped is not",
			edit: func(r map[string]*api.Report) { r["s3"].Receiver = "" }, want: "r5,s2,s4",
			whyParts: map[string]string{"s3": "not streaming"}},
		{name: "a delayed standby is not",
			edit: func(r map[string]*api.Report) { r["s4"].ApplyDelayMS = 60000 }, want: "r5,s2,s3",
			whyParts: map[string]string{"s4": "recovery_min_apply_delay"}},
		{name: "a standby on another timeline is not",
			edit: func(r map[string]*api.Report) { r["s4"].Timeline = 2 }, want: "r5,s2,s3",
			whyParts: map[string]string{"s4": "timeline 2"}},
		{name: "a standby further behind than the maximum lag is not",
			edit: func(r map[string]*api.Report) { r["s3"].ReceivedLSN = 100 }, want: "r5,s2,s4",
			whyParts: map[string]string{"s3": "900 bytes behind"}},
		{name: "priority 0 is not", nodes: []repmgr.Node{lostP, withPriority(electS2, 0), electS3}, want: "s3",
			whyParts: map[string]string{"s2": "priority 0"}},
		{name: "a standby without a report, or down, is not",
			edit: func(r map[string]*api.Report) { delete(r, "s2"); r["s3"].DBUp = false }, want: "r5,s4",
			whyParts: map[string]string{"s2": "no report", "s3": "not a standby that is up"}},
		{name: "without the primary's report, none is",
			edit: func(r map[string]*api.Report) { delete(r, "p") }, want: "",
			whyParts: map[string]string{"s2": "position is unknown"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := base()
			if tc.edit != nil {
				tc.edit(r)
			}
			n := nodes
			if tc.nodes != nil {
				n = tc.nodes
			}
			got, why := eligibleStandbys(SyncPolicy{Mode: api.SyncOn, Count: 1, Locations: tc.locations, MaxLag: 500}, "p", n, r)
			if strings.Join(got, ",") != tc.want {
				t.Errorf("eligible %v, want %s (why: %v)", got, tc.want, why)
			}
			for name, part := range tc.whyParts {
				if !strings.Contains(why[name], part) {
					t.Errorf("why %s: %q, want it to say %q", name, why[name], part)
				}
			}
		})
	}
}

func TestWithGrace(t *testing.T) {
	since := map[string]time.Time{}
	grace := 10 * time.Second
	got := withGrace([]string{"a"}, []string{"a", "b"}, since, syncT0, grace)
	if strings.Join(got, ",") != "a,b" {
		t.Fatalf("a member just seen ineligible stays for the grace: %v", got)
	}
	if got := withGrace([]string{"a"}, []string{"a", "b"}, since, syncT0.Add(grace-time.Second), grace); strings.Join(got, ",") != "a,b" {
		t.Fatalf("within the grace it stays: %v", got)
	}
	if got := withGrace([]string{"a"}, []string{"a", "b"}, since, syncT0.Add(grace), grace); strings.Join(got, ",") != "a" {
		t.Fatalf("after the grace it leaves: %v", got)
	}
	if got := withGrace([]string{"a", "b"}, []string{"a", "b"}, since, syncT0.Add(2*grace), grace); strings.Join(got, ",") != "a,b" {
		t.Fatalf("once eligible again it is wanted: %v", got)
	}
	withGrace([]string{"a"}, []string{"a"}, since, syncT0.Add(3*grace), grace)
	if _, ok := since["b"]; ok {
		t.Fatalf("the memory of a former member is dropped: %v", since)
	}
}

// syncState is a committed state for p at epoch 3.
func syncState(mode api.SyncMode, k int, members, counted []string) *LogSync {
	return &LogSync{Epoch: 3, Primary: "p", Mode: mode, Count: k, Members: members, Counted: counted, Since: syncT0}
}

// raising is s with a raise of its k not yet safe: elections count elect.
func raising(s *LogSync, elect int) *LogSync {
	s.ElectCount = elect
	return s
}

func TestNextSync(t *testing.T) {
	on1 := SyncPolicy{Mode: api.SyncOn, Count: 1}
	on2 := SyncPolicy{Mode: api.SyncOn, Count: 2}
	strict1 := SyncPolicy{Mode: api.SyncStrict, Count: 1}
	now := syncT0.Add(time.Minute)
	tests := []struct {
		name    string
		policy  SyncPolicy
		cur     *LogSync
		wanted  []string
		applied string
		mark    int64
		lsn     map[string]int64
		// want is "members|counted", "" for no change; since tells
		// whether Since moves to now.
		want     string
		since    bool
		whyParts string
		elect    int // the entry's ElectCount
	}{
		{name: "nothing committed for the epoch, nobody eligible: an empty state is committed (on: asynchronous)",
			policy: on1, want: "|", since: true, whyParts: "synchronous replication on"},
		{name: "a state of an older epoch counts as none", policy: on1,
			cur:    &LogSync{Epoch: 2, Primary: "x", Mode: api.SyncOn, Count: 1, Members: []string{"a"}, Counted: []string{"a"}},
			wanted: []string{"a", "b"}, want: "a,b|a,b", since: true},
		{name: "eligible standbys join the set and the counted set in one entry", policy: on1,
			cur: syncState(api.SyncOn, 1, []string{"a"}, []string{"a"}), wanted: []string{"a", "b"}, want: "a,b|a,b", whyParts: "join"},
		{name: "on: fewer eligible than k, the primary stops waiting for all (asynchronous); the set stays for now", policy: on2,
			cur: syncState(api.SyncOn, 2, []string{"a", "b"}, []string{"a", "b"}), wanted: []string{"a"}, want: "a,b|", since: true,
			whyParts: "fewer than 2"},
		{name: "on: while asynchronous, fewer than k eligible do not join", policy: on2,
			cur: syncState(api.SyncOn, 2, []string{}, []string{}), wanted: []string{"a"}},
		// This case used to empty the set once the primary applied "":
		// the commits a and b acknowledged while synchronous lost the
		// election's protection.
		{name: "on: asynchronous, the members stay after the primary applies it: elections still count on them", policy: on2,
			cur: syncState(api.SyncOn, 2, []string{"a", "b"}, []string{}), wanted: []string{"a"}, mark: 100,
			lsn: map[string]int64{"a": 100, "b": 100}},
		{name: "on: after a fall back, new standbys join beside the old members", policy: on1,
			cur: syncState(api.SyncOn, 1, []string{"a", "b"}, []string{}), wanted: []string{"c"}, want: "a,b,c|c", since: true},
		{name: "on: the old members leave once the new counted ones caught up with a mark of the new list", policy: on1,
			cur: syncState(api.SyncOn, 1, []string{"a", "b", "c"}, []string{"c"}), wanted: []string{"c"}, applied: `ANY 1 ("c")`,
			mark: 100, lsn: map[string]int64{"c": 100}, want: "c|c", whyParts: "leave the synchronous set: a, b"},
		{name: "on: asynchronous, enough eligible again: they join", policy: on2,
			cur: syncState(api.SyncOn, 2, []string{}, []string{}), wanted: []string{"a", "b"}, want: "a,b|a,b", since: true},
		{name: "a standby no longer wanted leaves the counted set first", policy: on1,
			cur: syncState(api.SyncOn, 1, []string{"a", "b"}, []string{"a", "b"}), wanted: []string{"a"}, want: "a,b|a",
			whyParts: "stops waiting for b"},
		{name: "it leaves the set only once the primary applies the narrower list", policy: on1,
			cur: syncState(api.SyncOn, 1, []string{"a", "b"}, []string{"a"}), wanted: []string{"a"}, applied: `ANY 1 ("a", "b")`,
			mark: 100, lsn: map[string]int64{"a": 200}},
		{name: "and the remaining members received the WAL of the mark", policy: on1,
			cur: syncState(api.SyncOn, 1, []string{"a", "b"}, []string{"a"}), wanted: []string{"a"}, applied: `ANY 1 ("a")`,
			mark: 300, lsn: map[string]int64{"a": 200}},
		{name: "not before the mark is taken", policy: on1,
			cur: syncState(api.SyncOn, 1, []string{"a", "b"}, []string{"a"}), wanted: []string{"a"}, applied: `ANY 1 ("a")`,
			lsn: map[string]int64{"a": 200}},
		{name: "applied and caught up: it leaves the set", policy: on1,
			cur: syncState(api.SyncOn, 1, []string{"a", "b"}, []string{"a"}), wanted: []string{"a"}, applied: `ANY 1 ("a")`,
			mark: 200, lsn: map[string]int64{"a": 200}, want: "a|a", whyParts: "leave the synchronous set: b"},
		{name: "strict: with nobody eligible the members stay, and writes wait", policy: strict1,
			cur: syncState(api.SyncStrict, 1, []string{"a"}, []string{"a"}), wanted: nil},
		{name: "strict: a newcomer joins even alone", policy: strict1,
			cur: syncState(api.SyncStrict, 1, []string{}, []string{}), wanted: []string{"b"}, want: "b|b", since: true},
		{name: "strict: a dead member leaves once another is counted", policy: strict1,
			cur: syncState(api.SyncStrict, 1, []string{"a", "b"}, []string{"a", "b"}), wanted: []string{"b"}, want: "a,b|b"},
		{name: "strict: k=2 never drops below two counted", policy: SyncPolicy{Mode: api.SyncStrict, Count: 2},
			cur: syncState(api.SyncStrict, 2, []string{"a", "b"}, []string{"a", "b"}), wanted: []string{"b"}},
		{name: "a raise of k is committed, elections still count the old k", policy: on2,
			cur: syncState(api.SyncOn, 1, []string{"a", "b"}, []string{"a", "b"}), wanted: []string{"a", "b"}, want: "a,b|a,b",
			whyParts: "ANY 2", elect: 1},
		{name: "a raised k counts in elections only once the primary applies it", policy: on2,
			cur: raising(syncState(api.SyncOn, 2, []string{"a", "b"}, []string{"a", "b"}), 1), wanted: []string{"a", "b"},
			applied: `ANY 1 ("a", "b")`, mark: 100, lsn: map[string]int64{"a": 100, "b": 100}},
		{name: "and the counted members received the WAL of the mark", policy: on2,
			cur: raising(syncState(api.SyncOn, 2, []string{"a", "b"}, []string{"a", "b"}), 1), wanted: []string{"a", "b"},
			applied: `ANY 2 ("a", "b")`, mark: 100, lsn: map[string]int64{"a": 100, "b": 99}},
		{name: "applied and caught up: elections count the raised k", policy: on2,
			cur: raising(syncState(api.SyncOn, 2, []string{"a", "b"}, []string{"a", "b"}), 1), wanted: []string{"a", "b"},
			applied: `ANY 2 ("a", "b")`, mark: 100, lsn: map[string]int64{"a": 100, "b": 100}, want: "a,b|a,b", whyParts: "elections count ANY 2"},
		{name: "a lowered k counts at once", policy: on1,
			cur: raising(syncState(api.SyncOn, 2, []string{"a", "b"}, []string{"a", "b"}), 1), wanted: []string{"a", "b"},
			want: "a,b|a,b", whyParts: "ANY 1"},
		{name: "strict: raising k pads with a placeholder, elections count the old k", policy: SyncPolicy{Mode: api.SyncStrict, Count: 2},
			cur: syncState(api.SyncStrict, 1, []string{"a"}, []string{"a"}), wanted: []string{"a"}, want: "a|a", whyParts: "ANY 2", elect: 1},
		{name: "a stable set stands", policy: on1,
			cur: syncState(api.SyncOn, 1, []string{"a", "b"}, []string{"a", "b"}), wanted: []string{"a", "b"}, applied: `ANY 1 ("a", "b")`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			next, why := nextSync(syncInput{Policy: tc.policy, Epoch: 3, Primary: "p", Cur: tc.cur, Wanted: tc.wanted,
				Applied: tc.applied, AppliedOK: true, Mark: tc.mark, LSN: tc.lsn, Now: now})
			if tc.want == "" {
				if next != nil {
					t.Fatalf("want no change, got %v|%v (%s)", next.Members, next.Counted, why)
				}
				return
			}
			if next == nil {
				t.Fatalf("want %s, got no change", tc.want)
			}
			if got := strings.Join(next.Members, ",") + "|" + strings.Join(next.Counted, ","); got != tc.want {
				t.Errorf("got %s, want %s (%s)", got, tc.want, why)
			}
			if len(minus(next.Counted, next.Members)) > 0 {
				t.Errorf("counted %v outside the set %v", next.Counted, next.Members)
			}
			if next.Epoch != 3 || next.Primary != "p" || next.Count != tc.policy.Count || next.Mode != tc.policy.Mode {
				t.Errorf("entry for %s/%d ANY %d %s", next.Primary, next.Epoch, next.Count, next.Mode)
			}
			if next.ElectCount != tc.elect {
				t.Errorf("elections count %d, want %d", next.ElectCount, tc.elect)
			}
			if moved := next.Since.Equal(now); moved != tc.since {
				t.Errorf("since moved: %v, want %v", moved, tc.since)
			}
			if !strings.Contains(why, tc.whyParts) {
				t.Errorf("why %q, want it to say %q", why, tc.whyParts)
			}
		})
	}
}

// TestNextSyncNeverCountsOutsideTheSet walks every order of changes of
// eligibility from every start and checks the ordering both ways: a step
// that adds to Counted adds to Members in the same entry, and a member
// leaves Members only after it left Counted and the primary applied it.
func TestNextSyncNeverCountsOutsideTheSet(t *testing.T) {
	all := []string{"a", "b", "c"}
	subsets := [][]string{{}, {"a"}, {"b"}, {"a", "b"}, {"a", "c"}, {"a", "b", "c"}}
	for _, p := range []SyncPolicy{{Mode: api.SyncOn, Count: 1}, {Mode: api.SyncOn, Count: 2}, {Mode: api.SyncStrict, Count: 1}, {Mode: api.SyncStrict, Count: 2}} {
		for _, first := range subsets {
			for _, second := range subsets {
				cur := syncState(p.Mode, p.Count, []string{}, []string{})
				for i, wanted := range [][]string{first, second, first, second, all} {
					for step := 0; step < 6; step++ {
						next, _ := nextSync(syncInput{Policy: p, Epoch: 3, Primary: "p", Cur: cur, Wanted: wanted,
							Applied: cur.StandbyNames(), AppliedOK: true, Mark: 1, LSN: map[string]int64{"a": 1, "b": 1, "c": 1}, Now: syncT0})
						if next == nil {
							break
						}
						if len(minus(next.Counted, next.Members)) > 0 {
							t.Fatalf("%+v wanted %v (%d): counted %v outside the set %v", p, wanted, i, next.Counted, next.Members)
						}
						if left := minus(cur.Members, next.Members); len(left) > 0 && len(intersect(left, cur.Counted)) > 0 {
							t.Fatalf("%+v: %v left the set while the primary still counted on them (%v)", p, left, cur.Counted)
						}
						if p.Mode == api.SyncStrict && len(cur.Counted) >= p.Count && len(next.Counted) < p.Count {
							t.Fatalf("strict: counted fell from %v to %v, below %d", cur.Counted, next.Counted, p.Count)
						}
						cur = next
					}
				}
			}
		}
	}
}

func TestStandbyNames(t *testing.T) {
	tests := []struct {
		name string
		s    *LogSync
		want string
	}{
		{"on, two counted", syncState(api.SyncOn, 1, []string{"a", "b"}, []string{"a", "b"}), `ANY 1 ("a", "b")`},
		{"on, none counted: asynchronous", syncState(api.SyncOn, 1, []string{"a"}, []string{}), ``},
		{"strict, none counted: writes wait for a name no standby has", syncState(api.SyncStrict, 1, nil, nil), `ANY 1 ("pgquorum: no synchronous standby 1")`},
		{"strict, fewer than k: padded", syncState(api.SyncStrict, 2, []string{"a"}, []string{"a"}), `ANY 2 ("a", "pgquorum: no synchronous standby 1")`},
		{"a double quote in a name is doubled", syncState(api.SyncOn, 1, []string{`x"y`}, []string{`x"y`}), `ANY 1 ("x""y")`},
	}
	for _, tc := range tests {
		if got := tc.s.StandbyNames(); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestSyncElection(t *testing.T) {
	up := func(name string, lsn int64) *api.Report {
		return &api.Report{Node: name, DBUp: true, InRecovery: true, Timeline: 1, ReceivedLSN: lsn}
	}
	set3 := func(k int) *LogSync {
		return syncState(api.SyncOn, k, []string{"a", "b", "c"}, []string{"a", "b", "c"})
	}
	tests := []struct {
		name    string
		s       *LogSync
		epoch   uint64
		reports map[string]*api.Report
		winner  Candidate
		blocked []string // parts of the reason; none: may promote
	}{
		{name: "ANY 1 of 3: all three must answer (n − k + 1 = 3)", s: set3(1), epoch: 3,
			reports: map[string]*api.Report{"a": up("a", 10), "b": up("b", 20)}, winner: Candidate{Name: "b", Received: 20},
			blocked: []string{"need the received WAL of 3 members", "have 2", "missing: c (no report)"}},
		{name: "ANY 1 of 3, all answer: the most advanced may be promoted", s: set3(1), epoch: 3,
			reports: map[string]*api.Report{"a": up("a", 10), "b": up("b", 20), "c": up("c", 15)}, winner: Candidate{Name: "b", Received: 20}},
		{name: "ANY 2 of 3: two answers are enough", s: set3(2), epoch: 3,
			reports: map[string]*api.Report{"a": up("a", 10), "c": up("c", 15)}, winner: Candidate{Name: "c", Received: 15}},
		{name: "ANY 2 of 3: one answer is not", s: set3(2), epoch: 3,
			reports: map[string]*api.Report{"a": up("a", 10), "b": edited(up("b", 30), func(r *api.Report) { r.DBUp = false })},
			winner:  Candidate{Name: "a", Received: 10}, blocked: []string{"have 1", "b (not a standby that is up)", "c (no report)"}},
		{name: "a winner behind a member that answered is refused", s: set3(2), epoch: 3,
			reports: map[string]*api.Report{"a": up("a", 10), "c": up("c", 15)}, winner: Candidate{Name: "x", Received: 12},
			blocked: []string{"c received WAL up to 15", "x only 12"}},
		{name: "a non-member with as much WAL as the best member may be promoted", s: set3(2), epoch: 3,
			reports: map[string]*api.Report{"a": up("a", 10), "c": up("c", 15)}, winner: Candidate{Name: "x", Received: 15}},
		{name: "a state of another epoch constrains nothing", s: set3(1), epoch: 4,
			reports: map[string]*api.Report{}, winner: Candidate{Name: "x"}},
		{name: "no state constrains nothing", s: nil, epoch: 3, winner: Candidate{Name: "x"}},
		{name: "an empty set (asynchronous) constrains nothing", s: syncState(api.SyncOn, 1, []string{}, []string{}), epoch: 3, winner: Candidate{Name: "x"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			why := syncElection(tc.s, tc.epoch, tc.reports, tc.winner)
			if (why != "") != (len(tc.blocked) > 0) {
				t.Fatalf("blocked %q, want blocked: %v", why, tc.blocked)
			}
			for _, part := range tc.blocked {
				if !strings.Contains(why, part) {
					t.Errorf("%q does not say %q", why, part)
				}
			}
		})
	}
}

// TestSyncElectionRule checks the n − k + 1 rule against every placement
// of an acknowledged commit: for n up to 4 and every k, whenever the rule
// lets a winner be promoted, the winner has the commit.
func TestSyncElectionRule(t *testing.T) {
	names := []string{"a", "b", "c", "d"}
	for n := 1; n <= 4; n++ {
		members := names[:n]
		for k := 1; k <= n; k++ {
			s := syncState(api.SyncOn, k, members, members)
			// has: which members received the commit (at least k did);
			// answered: which members report.
			for has := 0; has < 1<<n; has++ {
				if popcount(has) < k {
					continue
				}
				for answered := 0; answered < 1<<n; answered++ {
					reps := map[string]*api.Report{}
					for i, m := range members {
						if answered&(1<<i) != 0 {
							lsn := int64(10)
							if has&(1<<i) != 0 {
								lsn = 20 // the commit is at 20
							}
							reps[m] = &api.Report{Node: m, DBUp: true, InRecovery: true, ReceivedLSN: lsn}
						}
					}
					for _, w := range []Candidate{{Name: "best", Received: maxLSN(reps)}, {Name: "behind", Received: 10}} {
						if syncElection(s, 3, reps, w) == "" && w.Received < 20 {
							t.Fatalf("n=%d k=%d has=%b answered=%b: %s promoted without the commit", n, k, has, answered, w.Name)
						}
					}
					if popcount(answered) >= n-k+1 && syncElection(s, 3, reps, Candidate{Name: "best", Received: maxLSN(reps)}) != "" {
						t.Fatalf("n=%d k=%d answered=%b: n − k + 1 members answered, yet blocked", n, k, answered)
					}
				}
			}
		}
	}
}

func popcount(x int) int {
	c := 0
	for ; x > 0; x &= x - 1 {
		c++
	}
	return c
}

func maxLSN(reps map[string]*api.Report) int64 {
	var m int64
	for _, r := range reps {
		m = max(m, r.ReceivedLSN)
	}
	return m
}

func TestSyncStatus(t *testing.T) {
	on := SyncPolicy{Mode: api.SyncOn, Count: 1}
	s := syncState(api.SyncOn, 1, []string{"a"}, []string{"a"})
	tests := []struct {
		name     string
		p        SyncPolicy
		s        *LogSync
		seen     *api.PrimarySync
		rpo      string
		degraded bool
	}{
		{"off", SyncPolicy{Mode: api.SyncOff}, nil, nil, "async (failover.synchronous off)", false},
		{"applied: RPO 0", on, s, &api.PrimarySync{StandbyNames: `ANY 1 ("a")`}, "RPO 0", false},
		{"committed but not applied yet", on, s, &api.PrimarySync{StandbyNames: ""}, "async: the primary does not apply", true},
		{"asynchronous since", on, syncState(api.SyncOn, 1, []string{}, []string{}), &api.PrimarySync{}, "async since 2026-01-02T03:04:05Z", true},
		{"asynchronous, the members kept", on, syncState(api.SyncOn, 1, []string{"a", "b"}, []string{}), &api.PrimarySync{},
			"async since 2026-01-02T03:04:05Z; commits acknowledged before are kept: a failover waits for 2 of a, b", true},
		{"k raised, not yet counted by elections", SyncPolicy{Mode: api.SyncOn, Count: 2}, raising(syncState(api.SyncOn, 2, []string{"a", "b"}, []string{"a", "b"}), 1),
			&api.PrimarySync{StandbyNames: `ANY 2 ("a", "b")`}, "RPO 0; elections count ANY 1 until the members caught up with ANY 2", false},
		{"strict without a standby: writes wait", SyncPolicy{Mode: api.SyncStrict, Count: 1}, syncState(api.SyncStrict, 1, nil, []string{}),
			&api.PrimarySync{StandbyNames: `ANY 1 ("pgquorum: no synchronous standby 1")`, SyncRepWaits: 3}, "RPO 0: writes wait", false},
		{"nothing committed for the epoch", on, nil, nil, "async: no synchronous set committed", true},
		{"synchronous_commit off on the primary: nothing waits", on, s, &api.PrimarySync{StandbyNames: `ANY 1 ("a")`, SynchronousCommit: "off"},
			"async: synchronous_commit is off", true},
	}
	for _, tc := range tests {
		got := syncStatus(tc.p, tc.s, 3, tc.seen, 2)
		if !strings.HasPrefix(got.RPO, tc.rpo) || got.Degraded != tc.degraded || got.Fallbacks != 2 {
			t.Errorf("%s: rpo %q degraded %v, want %q %v", tc.name, got.RPO, got.Degraded, tc.rpo, tc.degraded)
		}
	}
}
