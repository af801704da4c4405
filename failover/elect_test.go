package failover

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/repmgr"
)

// The cluster of the election tests: the lost primary p and three standbys
// in dc1, a standby in dc2, a witness in dc3.
var (
	lostP   = repmgr.Node{ID: 1, Name: "p", Type: repmgr.TypePrimary, Location: "dc1", Priority: 100}
	electS2 = repmgr.Node{ID: 2, Name: "s2", Type: repmgr.TypeStandby, Location: "dc1", Priority: 100}
	electS3 = repmgr.Node{ID: 3, Name: "s3", Type: repmgr.TypeStandby, Location: "dc1", Priority: 100}
	electS4 = repmgr.Node{ID: 4, Name: "s4", Type: repmgr.TypeStandby, Location: "dc1", Priority: 100}
	electR5 = repmgr.Node{ID: 5, Name: "r5", Type: repmgr.TypeStandby, Location: "dc2", Priority: 100}
	electW6 = repmgr.Node{ID: 6, Name: "w6", Type: repmgr.TypeWitness, Location: "dc3", Priority: 0}
)

// standby is the report of n, an up standby on timeline tl that received
// WAL up to lsn.
func standby(n repmgr.Node, tl int, lsn int64) *api.Report {
	return &api.Report{Protocol: api.ReportProtocol, Node: n.Name, NodeID: n.ID, Location: n.Location, Priority: n.Priority,
		Type: n.Type, State: api.StateStandby, DBUp: true, InRecovery: true, Timeline: tl, ReceivedLSN: lsn}
}

// edited returns r changed by edit.
func edited(r *api.Report, edit func(*api.Report)) *api.Report {
	cp := *r
	edit(&cp)
	return &cp
}

// withPriority returns n with another repmgr priority.
func withPriority(n repmgr.Node, prio int) repmgr.Node { n.Priority = prio; return n }

func TestElect(t *testing.T) {
	all := []repmgr.Node{lostP, electS2, electS3, electS4, electR5, electW6}
	tests := []struct {
		name      string
		nodes     []repmgr.Node // all when nil
		locations []string
		reports   map[string]*api.Report
		exclude   map[string]string
		winner    string
		ranking   []string // every candidate, best first; checked when set
		errParts  []string // when no candidate: ErrNoCandidate, and these reasons
	}{
		{name: "the standby that received the most WAL wins, whatever its priority and node_id",
			nodes:   []repmgr.Node{lostP, withPriority(electS2, 100), withPriority(electS3, 1)},
			reports: reports(standby(electS2, 1, 100), standby(electS3, 1, 200)),
			winner:  "s3", ranking: []string{"s3", "s2"}},
		{name: "on equal WAL, the highest priority wins",
			nodes:   []repmgr.Node{lostP, withPriority(electS2, 50), withPriority(electS3, 60), withPriority(electS4, 40)},
			reports: reports(standby(electS2, 1, 100), standby(electS3, 1, 100), standby(electS4, 1, 100)),
			winner:  "s3", ranking: []string{"s3", "s2", "s4"}},
		{name: "on equal WAL and priority, the lowest node_id wins, whatever the order of repmgr.nodes",
			nodes:   []repmgr.Node{electS4, electS3, lostP, electS2},
			reports: reports(standby(electS4, 1, 100), standby(electS3, 1, 100), standby(electS2, 1, 100)),
			winner:  "s2", ranking: []string{"s2", "s3", "s4"}},
		{name: "a standby of priority 0 is never chosen, even with the most WAL",
			nodes:   []repmgr.Node{lostP, electS2, withPriority(electS3, 0)},
			reports: reports(standby(electS2, 1, 100), standby(electS3, 1, 900)),
			winner:  "s2", ranking: []string{"s2"}},
		{name: "a witness is never chosen, even reporting as a standby with the most WAL",
			reports: reports(standby(electS2, 1, 100), standby(withPriority(electW6, 100), 1, 900)),
			nodes:   []repmgr.Node{lostP, electS2, withPriority(electW6, 100)},
			winner:  "s2", ranking: []string{"s2"}},
		{name: "a standby of another location is not chosen, even with the most WAL",
			reports: reports(standby(electS2, 1, 100), standby(electR5, 1, 900)),
			winner:  "s2", ranking: []string{"s2"}},
		{name: "a standby of another location is chosen when failover.locations names it",
			locations: []string{"dc2"},
			reports:   reports(standby(electS2, 1, 100), standby(electR5, 1, 900)),
			winner:    "r5", ranking: []string{"r5", "s2"}},
		{name: "an excluded standby is not chosen, even with the most WAL",
			reports: reports(standby(electS2, 1, 100), standby(electS3, 1, 900)),
			exclude: map[string]string{"s3": "its promotion failed"},
			winner:  "s2", ranking: []string{"s2"}},
		{name: "an empty exclusion reason excludes nobody",
			reports: reports(standby(electS2, 1, 100), standby(electS3, 1, 900)),
			exclude: map[string]string{"s3": ""},
			winner:  "s3"},
		{name: "only the newest timeline counts: more WAL on an older timeline is never chosen",
			reports: reports(standby(electS2, 1, 900), standby(electS3, 2, 100), standby(electS4, 1, 800)),
			winner:  "s3", ranking: []string{"s3"}},
		{name: "a reachable standby on a newer timeline that may not be promoted blocks the older ones",
			nodes:    []repmgr.Node{lostP, electS2, withPriority(electS3, 0)},
			reports:  reports(standby(electS2, 1, 900), standby(electS3, 2, 100)),
			errParts: []string{"s2: on timeline 1, not the newest (2)", "s3: priority 0"}},
		{name: "a standby whose report gives another node_id than its registration is not chosen",
			reports: reports(standby(electS2, 1, 100), edited(standby(electS3, 1, 900), func(r *api.Report) { r.NodeID = 9 })),
			winner:  "s2", ranking: []string{"s2"}},
		{name: "the lost primary is never chosen, even back as a standby with the most WAL",
			reports: reports(standby(lostP, 1, 900), standby(electS2, 1, 100)),
			winner:  "s2", ranking: []string{"s2"}},
		{name: "the lost primary is known by node_id, not by name",
			nodes:   []repmgr.Node{{ID: 1, Name: "renamed", Type: repmgr.TypeStandby, Location: "dc1", Priority: 100}, electS2},
			reports: reports(standby(repmgr.Node{ID: 1, Name: "renamed", Location: "dc1", Priority: 100}, 1, 900), standby(electS2, 1, 100)),
			winner:  "s2", ranking: []string{"s2"}},
		{name: "no candidate: ErrNoCandidate with the reason of every node that is not one, sorted",
			locations: nil,
			nodes: []repmgr.Node{lostP, electS2, withPriority(electS3, 0), electS4, electR5, electW6,
				{ID: 7, Name: "s7", Type: repmgr.TypeStandby, Location: "dc1", Priority: 100},
				{ID: 8, Name: "s8", Type: repmgr.TypeStandby, Location: "dc1", Priority: 100},
				{ID: 9, Name: "s9", Type: repmgr.TypeStandby, Location: "dc1", Priority: 100}},
			reports: reports(
				&api.Report{Node: "s2", NodeID: 2, DBUp: false, InRecovery: true, Timeline: 1},
				standby(electS3, 1, 100),
				standby(electR5, 1, 100),
				&api.Report{Node: "s7", NodeID: 7, DBUp: true, InRecovery: false, Timeline: 1},
				edited(standby(repmgr.Node{ID: 8, Name: "s8"}, 1, 100), func(r *api.Report) { r.NodeID = 80 }),
				standby(repmgr.Node{ID: 9, Name: "s9"}, 1, 100),
			),
			exclude: map[string]string{"s9": "its promotion failed"},
			errParts: []string{
				"in place of p: ",
				`r5: location "dc2" is not among ["dc1"]; ` +
					"s2: not a standby that is up; s3: priority 0; s4: no report; " +
					"s7: not a standby that is up; s8: reports node_id 80, registered 8; s9: its promotion failed"}},
		{name: "no report at all: ErrNoCandidate",
			reports:  map[string]*api.Report{},
			errParts: []string{"s2: no report", "s3: no report", "s4: no report", "r5: no report"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nodes := tt.nodes
			if nodes == nil {
				nodes = all
			}
			e, err := Elect(lostP, tt.locations, nodes, tt.reports, tt.exclude)
			if tt.errParts != nil {
				if !errors.Is(err, ErrNoCandidate) {
					t.Fatalf("Elect = %s (%v), want ErrNoCandidate", e.Winner.Name, err)
				}
				for _, p := range tt.errParts {
					if !strings.Contains(err.Error(), p) {
						t.Errorf("error %q does not say %q", err, p)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Elect: %v", err)
			}
			if e.Winner.Name != tt.winner {
				t.Errorf("winner %s, want %s (ranking %v; %s)", e.Winner.Name, tt.winner, rankingNames(e.Ranking), e.Reason)
			}
			if e.Winner != e.Ranking[0] {
				t.Errorf("winner %+v is not first of the ranking %+v", e.Winner, e.Ranking)
			}
			if tt.ranking != nil {
				var got []string
				for _, c := range e.Ranking {
					got = append(got, c.Name)
				}
				if !slices.Equal(got, tt.ranking) {
					t.Errorf("ranking %v, want %v", got, tt.ranking)
				}
			}
			if !strings.HasPrefix(e.Reason, tt.winner+": ") {
				t.Errorf("reason %q does not name the winner first", e.Reason)
			}
		})
	}
}

// TestElectNeverChoosesBehind draws random clusters and reports and checks,
// against a reference written out here rather than shared with Elect, that
// the winner is an eligible standby on the newest timeline and that no
// eligible standby ranks before it.
func TestElectNeverChoosesBehind(t *testing.T) {
	const seed, cases = 20261121, 5000
	rng := rand.New(rand.NewPCG(seed, 0))
	elected, contested := 0, 0 // elections with a winner; with several candidates
	for i := range cases {
		lost, nodes, reps, exclude, locations := randomElection(rng)
		e, err := Elect(lost, locations, nodes, reps, exclude)
		elig, newest := referenceEligible(lost, locations, nodes, reps, exclude)
		if len(elig) == 0 {
			if !errors.Is(err, ErrNoCandidate) {
				t.Fatalf("seed %d case %d: Elect = %+v, %v; the reference finds no candidate", seed, i, e.Winner, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("seed %d case %d: Elect: %v; the reference finds %v", seed, i, err, elig)
		}
		if len(e.Ranking) != len(elig) {
			t.Fatalf("seed %d case %d: ranking %v, the reference finds %v", seed, i, rankingNames(e.Ranking), elig)
		}
		elected++
		if len(elig) > 1 {
			contested++
		}
		w := e.Winner
		if w.Timeline != newest {
			t.Fatalf("seed %d case %d: winner %s on timeline %d, the newest reachable is %d", seed, i, w.Name, w.Timeline, newest)
		}
		for _, c := range elig {
			if ranksBefore(c, w) {
				t.Fatalf("seed %d case %d: winner %+v, but %+v ranks before it", seed, i, w, c)
			}
		}
		for j := 1; j < len(e.Ranking); j++ {
			if ranksBefore(e.Ranking[j], e.Ranking[j-1]) {
				t.Fatalf("seed %d case %d: ranking out of order at %d: %v", seed, i, j, rankingNames(e.Ranking))
			}
		}
	}
	// The draw must exercise the ranking, or the property proves nothing.
	if elected < cases/5 || contested < cases/20 {
		t.Fatalf("seed %d: only %d of %d draws elected anyone, %d among several candidates", seed, elected, cases, contested)
	}
	t.Logf("seed %d: %d draws, %d elected a standby, %d among several candidates", seed, cases, elected, contested)
}

// ranksBefore is the documented order, spelled out: more WAL received, then
// higher priority, then lower node_id.
func ranksBefore(a, b Candidate) bool {
	switch {
	case a.Received > b.Received:
		return true
	case a.Received < b.Received:
		return false
	case a.Priority > b.Priority:
		return true
	case a.Priority < b.Priority:
		return false
	}
	return a.ID < b.ID
}

// referenceEligible is the rule of Elect's comment, written independently.
func referenceEligible(lost repmgr.Node, locations []string, nodes []repmgr.Node, reps map[string]*api.Report, exclude map[string]string) ([]Candidate, int) {
	newest := 0
	for _, r := range reps {
		if r != nil && r.DBUp && r.InRecovery {
			newest = max(newest, r.Timeline)
		}
	}
	var out []Candidate
	for _, n := range nodes {
		r := reps[n.Name]
		if n.ID == lost.ID || n.Type == repmgr.TypeWitness || r == nil || !r.DBUp || !r.InRecovery || r.NodeID != n.ID ||
			n.Priority <= 0 || exclude[n.Name] != "" || r.Timeline != newest ||
			(n.Location != lost.Location && !slices.Contains(locations, n.Location)) {
			continue
		}
		out = append(out, Candidate{Name: n.Name, ID: n.ID, Location: n.Location, Priority: n.Priority, Timeline: r.Timeline, Received: r.ReceivedLSN})
	}
	return out, newest
}

// randomElection draws a cluster of 2 to 8 nodes with few distinct values,
// so that ties on WAL, priority and timeline are frequent; most nodes share
// a location and a timeline, so that most draws have candidates.
func randomElection(rng *rand.Rand) (repmgr.Node, []repmgr.Node, map[string]*api.Report, map[string]string, []string) {
	locs := []string{"dc1", "dc1", "dc1", "dc1", "dc2", "dc3"}
	var nodes []repmgr.Node
	reps := map[string]*api.Report{}
	exclude := map[string]string{}
	for i := range 2 + rng.IntN(7) {
		n := repmgr.Node{ID: 1 + rng.IntN(20), Name: fmt.Sprintf("n%d", i), Type: repmgr.TypeStandby,
			Location: locs[rng.IntN(len(locs))], Priority: []int{0, 50, 50, 100, 100, 100}[rng.IntN(6)]}
		if rng.IntN(10) == 0 {
			n.Type = repmgr.TypeWitness
		}
		if slices.ContainsFunc(nodes, func(m repmgr.Node) bool { return m.ID == n.ID }) {
			continue // node_id is unique in repmgr.nodes
		}
		nodes = append(nodes, n)
		if rng.IntN(6) == 0 {
			continue // no report
		}
		r := standby(n, 1+rng.IntN(5)/4, int64(rng.IntN(4))*100)
		switch rng.IntN(20) {
		case 0:
			r.DBUp = false
		case 1:
			r.InRecovery = false
		case 2:
			r.NodeID++
		}
		reps[n.Name] = r
		if rng.IntN(12) == 0 {
			exclude[n.Name] = "its promotion failed"
		}
	}
	lost := nodes[rng.IntN(len(nodes))]
	var locations []string
	if rng.IntN(3) == 0 {
		locations = []string{locs[rng.IntN(len(locs))]}
	}
	return lost, nodes, reps, exclude, locations
}
