package failover

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/consensus"
)

// Round is what the coordinator saw in one round of reports.
type Round struct {
	Now     time.Time
	Primary string // the committed primary
	Members int    // registered nodes: how many make a majority of direct probes
	// Reports by node name; a node that did not answer has none.
	Reports map[string]*api.Report
}

// Evidence says whether, in one round, the primary looks lost and why.
type Evidence struct {
	Lost bool // the evidence holds this round
	// Confirmed: the direct probes of a majority of the registered nodes
	// fail this round, none answers. Only confirmed evidence decides: a
	// pgquorum's account of its own database alone can be a stall that is
	// over by now, or a local fault.
	Confirmed bool
	Reason    string
	// DownFor is how long the evidence already holds by the primary's own
	// account: its pgquorum reports how long its database has been failing.
	DownFor time.Duration
}

// Examine is the detection rule for one round. The primary looks lost when
// its PostgreSQL is down as its own pgquorum reports it, or when its
// pgquorum is silent; in either case no node answers /state 200, and no
// direct probe of its database answers. The evidence is confirmed when the
// direct probes of a majority of the registered nodes fail, the primary's
// own account of its database counting as one.
func Examine(r Round) Evidence {
	var claimants []string
	for name, rep := range r.Reports {
		if rep != nil && rep.State == api.StatePrimary {
			claimants = append(claimants, name)
		}
	}
	if len(claimants) > 0 {
		sort.Strings(claimants)
		return Evidence{Reason: strings.Join(claimants, ", ") + " answers 200"}
	}
	failed, answered := probesOf(r)
	need := consensus.Majority(r.Members)
	if p := r.Reports[r.Primary]; p != nil {
		if p.DBUp {
			return Evidence{Reason: r.Primary + " reports its database up"}
		}
		why := fmt.Sprintf("%s reports its database down: %s", r.Primary, p.DBError)
		if len(answered) > 0 {
			return Evidence{Reason: fmt.Sprintf("%s; but it answers the direct probes of %s", why, strings.Join(answered, ", "))}
		}
		if !slices.Contains(failed, r.Primary) {
			failed = append(failed, r.Primary) // its own account is one failed probe
			sort.Strings(failed)
		}
		ev := Evidence{Lost: true, DownFor: time.Duration(p.DownForMS) * time.Millisecond, Confirmed: len(failed) >= need}
		if ev.Confirmed {
			ev.Reason = fmt.Sprintf("%s; its database fails the direct probes of %s (%d of %d needed)", why, strings.Join(failed, ", "), len(failed), need)
		} else {
			ev.Reason = fmt.Sprintf("%s; %d of %d direct probes of its database failed so far", why, len(failed), need)
		}
		return ev
	}
	switch {
	case len(answered) > 0:
		return Evidence{Reason: fmt.Sprintf("%s's pgquorum is silent, but its database answers %s", r.Primary, strings.Join(answered, ", "))}
	case len(failed) >= need:
		return Evidence{Lost: true, Confirmed: true, Reason: fmt.Sprintf("%s's pgquorum is silent and its database fails the direct probes of %s (%d of %d needed)",
			r.Primary, strings.Join(failed, ", "), len(failed), need)}
	}
	return Evidence{Reason: fmt.Sprintf("%s's pgquorum is silent; %d of %d direct probes of its database failed so far", r.Primary, len(failed), need)}
}

// probesOf sorts the round's direct probes of the primary's database into
// those that failed and those that answered, by the prober's name.
func probesOf(r Round) (failed, answered []string) {
	for name, rep := range r.Reports {
		if rep == nil || rep.Probe == nil || rep.Probe.Node != r.Primary {
			continue
		}
		if rep.Probe.OK {
			answered = append(answered, name)
		} else {
			failed = append(failed, name)
		}
	}
	sort.Strings(failed)
	sort.Strings(answered)
	return failed, answered
}

// Detector tells when the evidence has held continuously for the grace.
type Detector struct {
	Grace time.Duration
	// Lag is how long the primary's own account of its database may run
	// behind a recovery: a probe it started just before its database came
	// back still fails up to one database.timeout later. Its down-time counts
	// less Lag, so that a stall as long as the grace is not taken for a loss.
	Lag   time.Duration
	since time.Time // when the evidence started; zero while there is none
}

// Detection is the outcome of a round.
type Detection struct {
	Suspect bool      // evidence, within the grace or not confirmed
	Lost    bool      // evidence for the whole grace, confirmed this round
	Since   time.Time // when the evidence started
	Reason  string
}

// Observe folds one round into the detector. The primary is lost when the
// evidence has held without a break for the grace and the direct probes of
// this round confirm it. A silent primary's evidence holds only while a
// majority's probes fail, round after round: one probe that answers starts
// the grace again.
func (d *Detector) Observe(r Round) Detection {
	ev := Examine(r)
	if !ev.Lost {
		d.since = time.Time{}
		return Detection{Reason: ev.Reason}
	}
	switch {
	case ev.DownFor > 0:
		// The primary's pgquorum knows best since when its database has been
		// failing without a break, between the coordinator's rounds too,
		// less what its account may lag behind.
		d.since = r.Now.Add(-max(ev.DownFor-d.Lag, 0))
	case d.since.IsZero():
		d.since = r.Now
	}
	held := r.Now.Sub(d.since)
	switch {
	case held < d.Grace:
		return Detection{Suspect: true, Since: d.since,
			Reason: fmt.Sprintf("%s for %s of the %s grace", ev.Reason, held.Round(time.Millisecond), d.Grace)}
	case !ev.Confirmed:
		return Detection{Suspect: true, Since: d.since,
			Reason: fmt.Sprintf("%s for %s, past the %s grace; waiting for the direct probes to confirm", ev.Reason, held.Round(time.Millisecond), d.Grace)}
	}
	return Detection{Lost: true, Since: d.since, Reason: fmt.Sprintf("%s, for %s", ev.Reason, held.Round(time.Millisecond))}
}

// Reset forgets any evidence: after a decision, the new primary starts clean.
func (d *Detector) Reset() { d.since = time.Time{} }
