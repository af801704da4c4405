package failover

import (
	"fmt"
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
	Lost   bool
	Reason string
	// DownFor is how long the evidence already holds by the primary's own
	// account: its pgquorum reports how long its database has been failing.
	DownFor time.Duration
}

// Examine is the detection rule for one round. The primary looks lost when
// its PostgreSQL is down as its own pgquorum reports it, or when its
// pgquorum is silent and a direct probe of its database fails from a
// majority of the registered nodes; and in either case, no node answers
// /state 200.
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
	if p := r.Reports[r.Primary]; p != nil {
		if p.DBUp {
			return Evidence{Reason: r.Primary + " reports its database up"}
		}
		return Evidence{Lost: true, DownFor: time.Duration(p.DownForMS) * time.Millisecond,
			Reason: fmt.Sprintf("%s reports its database down: %s", r.Primary, p.DBError)}
	}
	var failed, answered []string
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
	need := consensus.Majority(r.Members)
	switch {
	case len(answered) > 0:
		return Evidence{Reason: fmt.Sprintf("%s's pgquorum is silent, but its database answers %s", r.Primary, strings.Join(answered, ", "))}
	case len(failed) >= need:
		return Evidence{Lost: true, Reason: fmt.Sprintf("%s's pgquorum is silent and its database fails the direct probes of %s (%d of %d needed)",
			r.Primary, strings.Join(failed, ", "), len(failed), need)}
	}
	return Evidence{Reason: fmt.Sprintf("%s's pgquorum is silent; %d of %d direct probes of its database failed so far", r.Primary, len(failed), need)}
}

// Detector tells when the evidence has held continuously for the grace.
type Detector struct {
	Grace time.Duration
	since time.Time // when the evidence started; zero while there is none
}

// Detection is the outcome of a round.
type Detection struct {
	Suspect bool      // evidence, within the grace
	Lost    bool      // evidence for the whole grace
	Since   time.Time // when the evidence started
	Reason  string
}

// Observe folds one round into the detector.
func (d *Detector) Observe(r Round) Detection {
	ev := Examine(r)
	if !ev.Lost {
		d.since = time.Time{}
		return Detection{Reason: ev.Reason}
	}
	switch {
	case ev.DownFor > 0:
		// The primary's pgquorum knows best since when its database has been
		// failing without a break, between the coordinator's rounds too.
		d.since = r.Now.Add(-ev.DownFor)
	case d.since.IsZero():
		d.since = r.Now
	}
	held := r.Now.Sub(d.since)
	if held < d.Grace {
		return Detection{Suspect: true, Since: d.since,
			Reason: fmt.Sprintf("%s for %s of the %s grace", ev.Reason, held.Round(time.Millisecond), d.Grace)}
	}
	return Detection{Lost: true, Since: d.since, Reason: fmt.Sprintf("%s, for %s", ev.Reason, held.Round(time.Millisecond))}
}

// Reset forgets any evidence: after a decision, the new primary starts clean.
func (d *Detector) Reset() { d.since = time.Time{} }
