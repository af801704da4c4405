package failover

import (
	"strings"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/api"
)

// t0 is the time of the first round in every detection test.
var t0 = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

// up is a report of a node whose database is up, answering /state with s.
func up(name string, s api.State) *api.Report {
	return &api.Report{Protocol: api.ReportProtocol, Node: name, State: s, DBUp: true, InRecovery: s == api.StateStandby}
}

// down is the committed primary's own report that its database fails, since
// downFor by its own clock.
func down(name string, downFor time.Duration) *api.Report {
	return &api.Report{Protocol: api.ReportProtocol, Node: name, State: api.StateDown, DBError: "connection refused",
		DownForMS: downFor.Milliseconds()}
}

// probed is a standby's report carrying a direct probe of node.
func probed(name, node string, ok bool) *api.Report {
	r := up(name, api.StateStandby)
	r.Probe = &api.Probe{Node: node, OK: ok}
	if !ok {
		r.Probe.Error = "timeout"
	}
	return r
}

// reports indexes reports by node name.
func reports(rs ...*api.Report) map[string]*api.Report {
	m := map[string]*api.Report{}
	for _, r := range rs {
		m[r.Node] = r
	}
	return m
}

func TestExamine(t *testing.T) {
	tests := []struct {
		name    string
		members int
		reports map[string]*api.Report
		lost    bool
		confirm bool // the evidence is confirmed by the direct probes of a majority
		downFor time.Duration
		reason  string // a part of the reason
	}{
		{name: "a standby answering 200 means not lost, though the primary reports its database down", members: 3,
			reports: reports(down("p", 10*time.Second), up("s1", api.StatePrimary), up("s2", api.StateStandby)),
			reason:  "s1 answers 200"},
		{name: "the primary answering 200 means not lost", members: 3,
			reports: reports(up("p", api.StatePrimary), up("s1", api.StateStandby)),
			reason:  "p answers 200"},
		{name: "a node answering 200 means not lost, though the silent primary fails every probe", members: 3,
			reports: reports(probed("s1", "p", false), func() *api.Report { r := probed("s2", "p", false); r.State = api.StatePrimary; return r }()),
			reason:  "s2 answers 200"},
		{name: "every node answering 200 is named, sorted", members: 3,
			reports: reports(up("s2", api.StatePrimary), up("p", api.StatePrimary), up("s1", api.StatePrimary)),
			reason:  "p, s1, s2 answers 200"},
		{name: "the primary reporting its database up is not lost, unconfirmed as it is", members: 3,
			reports: reports(up("p", api.StateUnknown), probed("s1", "p", false), probed("s2", "p", false)),
			reason:  "p reports its database up"},
		{name: "the primary reporting its database down is lost, for as long as it says, unconfirmed with no probe", members: 3,
			reports: reports(down("p", 1500*time.Millisecond), up("s1", api.StateStandby)),
			lost:    true, downFor: 1500 * time.Millisecond, reason: "p reports its database down: connection refused; 1 of 2 direct probes"},
		{name: "the primary reporting its database down, for less than a millisecond, is lost with no duration", members: 3,
			reports: reports(down("p", 0)),
			lost:    true, reason: "p reports its database down"},
		{name: "the primary reporting its database down, confirmed by one failed probe of 3: its own account counts as one", members: 3,
			reports: reports(down("p", time.Second), probed("s1", "p", false), up("s2", api.StateStandby)),
			lost:    true, confirm: true, downFor: time.Second, reason: "its database fails the direct probes of p, s1 (2 of 2 needed)"},
		{name: "the primary reporting its database down and failing its own probe counts once", members: 3,
			reports: reports(edited(down("p", time.Second), func(r *api.Report) { r.Probe = &api.Probe{Node: "p", Error: "refused"} }), up("s1", api.StateStandby)),
			lost:    true, downFor: time.Second, reason: "1 of 2 direct probes"},
		{name: "the primary reporting its database down, with 2 failed probes of 5, is unconfirmed", members: 5,
			reports: reports(down("p", time.Second), probed("s1", "p", false), up("s2", api.StateStandby)),
			lost:    true, downFor: time.Second, reason: "2 of 3 direct probes"},
		{name: "the primary reporting its database down is not lost while a direct probe reaches its database: a stall over, or a local fault", members: 3,
			reports: reports(down("p", time.Second), probed("s1", "p", true), probed("s2", "p", false)),
			reason:  "p reports its database down: connection refused; but it answers the direct probes of s1"},
		{name: "a silent primary whose database fails the probes of a majority of 3 is lost", members: 3,
			reports: reports(probed("s1", "p", false), probed("s2", "p", false)),
			lost:    true, confirm: true, reason: "fails the direct probes of s1, s2 (2 of 2 needed)"},
		{name: "a silent primary whose database fails the probes of a majority of 5 is lost", members: 5,
			reports: reports(probed("s1", "p", false), probed("s2", "p", false), probed("s3", "p", false), up("s4", api.StateStandby)),
			lost:    true, confirm: true, reason: "(3 of 3 needed)"},
		{name: "a silent primary whose database fails the probes of 2 of 5 is not lost", members: 5,
			reports: reports(probed("s1", "p", false), probed("s2", "p", false), up("s3", api.StateStandby), up("s4", api.StateStandby)),
			reason:  "2 of 3 direct probes of its database failed so far"},
		{name: "a silent primary whose database fails one probe of 3 is not lost", members: 3,
			reports: reports(probed("s1", "p", false), up("s2", api.StateStandby)),
			reason:  "1 of 2 direct probes"},
		{name: "a silent primary whose database answers one probe is not lost, though a majority's fail", members: 5,
			reports: reports(probed("s1", "p", false), probed("s2", "p", false), probed("s3", "p", false), probed("s4", "p", true)),
			reason:  "its database answers s4"},
		{name: "probes of another node's database do not count against the primary", members: 3,
			reports: reports(probed("s1", "s2", false), probed("s2", "s1", false)),
			reason:  "0 of 2 direct probes"},
		{name: "a probe of another node that succeeds does not clear the primary either", members: 3,
			reports: reports(probed("s1", "p", false), probed("s2", "p", false), probed("w", "s1", true)),
			lost:    true, confirm: true},
		{name: "a silent primary with no probe asked yet is not lost", members: 3,
			reports: reports(up("s1", api.StateStandby), up("s2", api.StateStandby)),
			reason:  "p's pgquorum is silent; 0 of 2"},
		{name: "a nil report is silence: the primary's, and a prober's", members: 3,
			reports: map[string]*api.Report{"p": nil, "s1": probed("s1", "p", false), "s2": nil},
			reason:  "1 of 2 direct probes"},
		{name: "nobody answering at all is not lost: the coordinator hears nothing", members: 3,
			reports: map[string]*api.Report{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := Examine(Round{Now: t0, Primary: "p", Members: tt.members, Reports: tt.reports})
			if ev.Lost != tt.lost || ev.Confirmed != tt.confirm || ev.DownFor != tt.downFor {
				t.Errorf("Examine = lost %v, confirmed %v, down for %s (%s); want lost %v, confirmed %v, down for %s",
					ev.Lost, ev.Confirmed, ev.DownFor, ev.Reason, tt.lost, tt.confirm, tt.downFor)
			}
			if !strings.Contains(ev.Reason, tt.reason) || ev.Reason == "" {
				t.Errorf("reason %q, want it to say %q", ev.Reason, tt.reason)
			}
		})
	}
}

// round is one round of a detector test: what the coordinator saw at
// t0+at, and the detection it must make of it.
type round struct {
	at      time.Duration
	reports map[string]*api.Report
	suspect bool
	lost    bool
	since   time.Duration // from t0; checked when suspect or lost
	reset   bool          // call Reset before this round
}

// Evidence for a 3-member group, for detector rounds.
var (
	primaryUp   = reports(up("p", api.StatePrimary), up("s1", api.StateStandby), up("s2", api.StateStandby))
	primaryDown = func(d time.Duration) map[string]*api.Report { return reports(down("p", d), probed("s1", "p", false)) }
	// primaryDownUnprobed is the primary's own account, which no direct
	// probe confirms yet.
	primaryDownUnprobed = func(d time.Duration) map[string]*api.Report { return reports(down("p", d), up("s1", api.StateStandby)) }
	// stallOver is the primary's own account, lagging, of a stall that is
	// over: its database answers the direct probes again.
	stallOver = func(d time.Duration) map[string]*api.Report {
		return reports(down("p", d), probed("s1", "p", true), probed("s2", "p", true))
	}
	primarySilent = reports(probed("s1", "p", false), probed("s2", "p", false))
	probeAnswers  = reports(probed("s1", "p", false), probed("s2", "p", true))
)

func TestDetector(t *testing.T) {
	tests := []struct {
		name   string
		grace  time.Duration
		lag    time.Duration
		rounds []round
	}{
		{name: "suspect within the grace, lost once it has held for the whole grace", grace: 3 * time.Second, rounds: []round{
			{at: 0, reports: primarySilent, suspect: true, since: 0},
			{at: time.Second, reports: primarySilent, suspect: true, since: 0},
			{at: 2 * time.Second, reports: primarySilent, suspect: true, since: 0},
			{at: 3 * time.Second, reports: primarySilent, lost: true, since: 0},
			{at: 4 * time.Second, reports: primarySilent, lost: true, since: 0},
		}},
		{name: "the boundary: a nanosecond short of the grace is suspect, the grace itself is lost", grace: 2 * time.Second, rounds: []round{
			{at: 0, reports: primarySilent, suspect: true, since: 0},
			{at: 2*time.Second - time.Nanosecond, reports: primarySilent, suspect: true, since: 0},
			{at: 2 * time.Second, reports: primarySilent, lost: true, since: 0},
		}},
		{name: "the boundary by the primary's own account: down for exactly the grace is lost at once", grace: 2 * time.Second, rounds: []round{
			{at: 0, reports: primaryDown(2*time.Second - time.Millisecond), suspect: true, since: -2*time.Second + time.Millisecond},
			{at: 0, reports: primaryDown(2 * time.Second), lost: true, since: -2 * time.Second},
		}},
		{name: "a zero grace declares the primary lost at the first round of evidence", grace: 0, rounds: []round{
			{at: 0, reports: primaryUp},
			{at: time.Second, reports: primarySilent, lost: true, since: time.Second},
		}},
		{name: "a silent primary's suspicion counts from the first round of evidence, not from the later ones", grace: 5 * time.Second, rounds: []round{
			{at: 0, reports: primaryUp},
			{at: time.Second, reports: primarySilent, suspect: true, since: time.Second},
			{at: 2 * time.Second, reports: primarySilent, suspect: true, since: time.Second},
			{at: 6 * time.Second, reports: primarySilent, lost: true, since: time.Second},
		}},
		{name: "contrary evidence resets the suspicion: the grace must hold without a break", grace: 3 * time.Second, rounds: []round{
			{at: 0, reports: primarySilent, suspect: true, since: 0},
			{at: 2 * time.Second, reports: primarySilent, suspect: true, since: 0},
			{at: 2500 * time.Millisecond, reports: primaryUp},
			{at: 3 * time.Second, reports: primarySilent, suspect: true, since: 3 * time.Second},
			{at: 5 * time.Second, reports: primarySilent, suspect: true, since: 3 * time.Second},
			{at: 6 * time.Second, reports: primarySilent, lost: true, since: 3 * time.Second},
		}},
		{name: "one probe that reaches the database resets the suspicion", grace: 3 * time.Second, rounds: []round{
			{at: 0, reports: primarySilent, suspect: true, since: 0},
			{at: 2 * time.Second, reports: probeAnswers},
			{at: 4 * time.Second, reports: primarySilent, suspect: true, since: 4 * time.Second},
		}},
		{name: "a node answering 200 resets the suspicion", grace: 3 * time.Second, rounds: []round{
			{at: 0, reports: primaryDown(0), suspect: true, since: 0},
			{at: time.Second, reports: reports(down("p", time.Second), up("s1", api.StatePrimary))},
			{at: 2 * time.Second, reports: primaryDown(0), suspect: true, since: 2 * time.Second},
		}},
		{name: "the primary's own account starts the suspicion before the first round", grace: 5 * time.Second, rounds: []round{
			{at: 10 * time.Second, reports: primaryDown(4 * time.Second), suspect: true, since: 6 * time.Second},
			{at: 11 * time.Second, reports: primaryDown(5 * time.Second), lost: true, since: 6 * time.Second},
		}},
		{name: "the primary's own account overrides a longer earlier suspicion: it came back in between", grace: 5 * time.Second, rounds: []round{
			{at: 0, reports: primarySilent, suspect: true, since: 0},
			{at: 3 * time.Second, reports: primaryDown(time.Second), suspect: true, since: 2 * time.Second},
			{at: 6 * time.Second, reports: primaryDown(4 * time.Second), suspect: true, since: 2 * time.Second},
			{at: 7 * time.Second, reports: primaryDown(5 * time.Second), lost: true, since: 2 * time.Second},
		}},
		{name: "the primary's own account of a failure shorter than the last one moves the start later", grace: 5 * time.Second, rounds: []round{
			{at: 0, reports: primaryDown(4 * time.Second), suspect: true, since: -4 * time.Second},
			{at: 2 * time.Second, reports: primaryDown(500 * time.Millisecond), suspect: true, since: 1500 * time.Millisecond},
		}},
		{name: "a primary that reported its failure and then falls silent keeps the start it gave", grace: 5 * time.Second, rounds: []round{
			{at: 0, reports: primaryDown(3 * time.Second), suspect: true, since: -3 * time.Second},
			{at: time.Second, reports: primarySilent, suspect: true, since: -3 * time.Second},
			{at: 2 * time.Second, reports: primarySilent, lost: true, since: -3 * time.Second},
		}},
		{name: "the primary's own account past the grace is suspect until the direct probes confirm it", grace: time.Second, rounds: []round{
			{at: 0, reports: primaryDownUnprobed(2 * time.Second), suspect: true, since: -2 * time.Second},
			{at: 100 * time.Millisecond, reports: primaryDown(2100 * time.Millisecond), lost: true, since: -2 * time.Second},
		}},
		{name: "a 1s stall with the fast profile: down for 1.088s by the primary's lagging account, less the 400ms lag, is within the grace", grace: time.Second, lag: 400 * time.Millisecond, rounds: []round{
			{at: 0, reports: primaryDown(1088 * time.Millisecond), suspect: true, since: -688 * time.Millisecond},
			{at: 100 * time.Millisecond, reports: stallOver(1188 * time.Millisecond)},
			{at: 200 * time.Millisecond, reports: primaryUp},
		}},
		{name: "a loss: the primary's account, less the lag, held for the grace and confirmed is lost", grace: time.Second, lag: 400 * time.Millisecond, rounds: []round{
			{at: 0, reports: primaryDown(100 * time.Millisecond), suspect: true, since: 0},
			{at: time.Second, reports: primaryDown(1100 * time.Millisecond), suspect: true, since: 300 * time.Millisecond},
			{at: 1400 * time.Millisecond, reports: primaryDown(1500 * time.Millisecond), lost: true, since: 300 * time.Millisecond},
		}},
		{name: "Reset forgets the suspicion: a new primary starts clean", grace: 3 * time.Second, rounds: []round{
			{at: 0, reports: primarySilent, suspect: true, since: 0},
			{at: 2 * time.Second, reports: primarySilent, suspect: true, since: 2 * time.Second, reset: true},
			{at: 4 * time.Second, reports: primarySilent, suspect: true, since: 2 * time.Second},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &Detector{Grace: tt.grace, Lag: tt.lag}
			for i, r := range tt.rounds {
				if r.reset {
					d.Reset()
				}
				got := d.Observe(Round{Now: t0.Add(r.at), Primary: "p", Members: 3, Reports: r.reports})
				want := Detection{Suspect: r.suspect, Lost: r.lost}
				if r.suspect || r.lost {
					want.Since = t0.Add(r.since)
				}
				if got.Suspect != want.Suspect || got.Lost != want.Lost || !got.Since.Equal(want.Since) {
					t.Fatalf("round %d at t0+%s: suspect %v, lost %v, since %s (%s); want suspect %v, lost %v, since %s",
						i, r.at, got.Suspect, got.Lost, got.Since, got.Reason, want.Suspect, want.Lost, want.Since)
				}
				if got.Reason == "" {
					t.Errorf("round %d: no reason", i)
				}
			}
		})
	}
}
