package failover

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/repmgr"
)

// Synchronous replication's functional core (failover.synchronous): which
// standbys are eligible, how the committed set moves towards them one safe
// step at a time, what the primary's synchronous_standby_names must be, and
// the election rule. No I/O here.
//
// The committed state (LogSync) holds two sets. Set is what elections count
// on; Counted (⊆ Set) is what the primary is told to wait for. An
// acknowledged commit is then on Count members of Counted, so on Count of
// Set's n members, and any n − Count + 1 members include one that has it.
// The order that keeps this true both ways:
//   - a standby joins Set (and Counted) in one entry, which the primary
//     applies only once committed: it never waits for a standby the log
//     does not name;
//   - a standby leaves Counted first; once the primary shows it applies the
//     narrower list and every remaining member has received the WAL the
//     primary had then, the standby leaves Set;
//   - on mode's fall back empties Counted only: Set stays, so that the
//     commits acknowledged before still constrain elections, until a new
//     Counted has caught up with the primary as above;
//   - a raise of Count is committed with ElectCount, the old k, which
//     elections keep counting with until the same mark; a lower Count
//     counts at once (an election then needs more reports).

// SyncPolicy is failover.synchronous and its companion keys.
type SyncPolicy struct {
	Mode      api.SyncMode
	Count     int      // k of ANY k (…)
	Locations []string // only standbys of these locations are eligible; none: any
	MaxLag    int64    // a standby further behind the primary than this, in bytes, is not eligible
	Grace     time.Duration
}

// Enabled tells whether pgquorum manages synchronous replication.
func (p SyncPolicy) Enabled() bool { return p.Mode == api.SyncOn || p.Mode == api.SyncStrict }

// eligibleStandbys are the standbys that may be synchronous for primary,
// sorted, and why each other registered node is not: registered as a
// standby with priority > 0, of an allowed location, its database up in
// recovery, streaming from the primary on its timeline, not delayed
// (recovery_min_apply_delay 0), and within MaxLag of it.
func eligibleStandbys(p SyncPolicy, primary string, nodes []repmgr.Node, reports map[string]*api.Report) ([]string, map[string]string) {
	var out []string
	why := map[string]string{}
	prim := reports[primary]
	for _, n := range nodes {
		rep := reports[n.Name]
		switch {
		case n.Name == primary || n.Type == repmgr.TypeWitness:
			continue
		case n.Priority <= 0:
			why[n.Name] = "priority 0"
		case len(p.Locations) > 0 && !slices.Contains(p.Locations, n.Location):
			why[n.Name] = fmt.Sprintf("location %q is not among failover.synchronous_locations", n.Location)
		case rep == nil:
			why[n.Name] = "no report"
		case !standbyUp(rep):
			why[n.Name] = "not a standby that is up"
		case rep.NodeID != n.ID:
			why[n.Name] = fmt.Sprintf("reports node_id %d, registered %d", rep.NodeID, n.ID)
		case rep.Upstream != primary || rep.Receiver != repmgr.StreamingState:
			why[n.Name] = fmt.Sprintf("not streaming from %s (upstream %q, receiver %q)", primary, rep.Upstream, rep.Receiver)
		case rep.ApplyDelayMS > 0:
			why[n.Name] = fmt.Sprintf("delayed by recovery_min_apply_delay %dms", rep.ApplyDelayMS)
		case prim == nil || !prim.DBUp || prim.InRecovery:
			why[n.Name] = "the primary's position is unknown"
		case rep.Timeline != prim.Timeline:
			why[n.Name] = fmt.Sprintf("on timeline %d, the primary on %d", rep.Timeline, prim.Timeline)
		case p.MaxLag > 0 && prim.ReceivedLSN-rep.ReceivedLSN > p.MaxLag:
			why[n.Name] = fmt.Sprintf("%d bytes behind the primary", prim.ReceivedLSN-rep.ReceivedLSN)
		default:
			out = append(out, n.Name)
		}
	}
	sort.Strings(out)
	return out, why
}

// withGrace keeps in the wanted set, for grace after it stopped being
// eligible, a member of the committed set: a standby that restarts or
// lags for a moment does not flap in and out. since holds when each member
// was last eligible; it is updated here (the coordinator's memory).
func withGrace(eligible, members []string, since map[string]time.Time, now time.Time, grace time.Duration) []string {
	wanted := slices.Clone(eligible)
	for _, m := range members {
		if slices.Contains(eligible, m) {
			since[m] = now
			continue
		}
		last, ok := since[m]
		if !ok {
			since[m], last = now, now // first seen ineligible by this coordinator: the grace starts now
		}
		if now.Sub(last) < grace {
			wanted = append(wanted, m)
		}
	}
	for m := range since {
		if !slices.Contains(members, m) {
			delete(since, m)
		}
	}
	sort.Strings(wanted)
	return slices.Compact(wanted)
}

// syncInput is what one step of the set's transitions looks at.
type syncInput struct {
	Policy  SyncPolicy
	Epoch   uint64
	Primary string
	Cur     *LogSync // the committed state; one of another epoch or primary counts as none
	Wanted  []string // eligible standbys, with the grace of withGrace, sorted
	// Applied is the primary's actual synchronous_standby_names, and
	// AppliedOK whether its report showed it.
	Applied   string
	AppliedOK bool
	// Mark is the primary's WAL position when it was first seen applying
	// Cur's Counted (0: not yet); LSN is each standby's received position.
	Mark int64
	LSN  map[string]int64
	Now  time.Time
}

// nextSync is the next committed state, or nil when the current one
// stands; why says what the step does. One step per call: add the wanted
// standbys missing from the set; else drop from Counted those no longer
// wanted (in strict mode, only while Count remain; in on mode, all at once
// when fewer than Count are wanted: asynchronous); else, once the primary
// applies Counted and Counted caught up with it, shrink Set to Counted, or
// let elections count a raised Count.
func nextSync(in syncInput) (*LogSync, string) {
	p := in.Policy
	cur := in.Cur
	fresh := cur == nil || cur.Epoch != in.Epoch || cur.Primary != in.Primary
	if fresh {
		cur = &LogSync{Epoch: in.Epoch, Primary: in.Primary, Mode: p.Mode, Count: p.Count, Members: []string{}, Counted: []string{}, Since: in.Now}
	}
	next := cur.clone()
	next.Mode, next.Count, next.At = p.Mode, p.Count, in.Now
	// Lowering k is safe at once (an election then needs more reports);
	// raising it is not: the commits acknowledged before the primary
	// applies the larger k are on the smaller number of members only.
	next.ElectCount = 0
	if e := cur.electCount(); p.Count > e {
		next.ElectCount = e
	}
	enough := len(in.Wanted) >= p.Count
	settled := in.AppliedOK && in.Applied == cur.StandbyNames() && len(cur.Counted) > 0 && caughtUp(cur, in)
	var why string
	switch add := minus(in.Wanted, cur.Counted); {
	case len(add) > 0 && (p.Mode == api.SyncStrict || enough):
		next.Members = union(cur.Members, add)
		next.Counted = union(cur.Counted, add)
		why = "standbys join the synchronous set: " + strings.Join(add, ", ")
	case p.Mode == api.SyncOn && !enough && len(cur.Counted) > 0:
		// The members stay: the commits they acknowledged while
		// synchronous are on Count of them, and elections keep counting
		// on them until a new counted set has caught up.
		next.Counted = []string{}
		why = fmt.Sprintf("fewer than %d eligible standbys (%s): asynchronous until enough stream", p.Count, listOrNone(in.Wanted))
	case len(minus(cur.Counted, in.Wanted)) > 0 && len(intersect(cur.Counted, in.Wanted)) >= p.Count:
		drop := minus(cur.Counted, in.Wanted)
		next.Counted = intersect(cur.Counted, in.Wanted)
		why = "the primary stops waiting for " + strings.Join(drop, ", ")
	case len(cur.Members) > len(cur.Counted) && settled:
		next.Members = slices.Clone(cur.Counted)
		why = "standbys leave the synchronous set: " + strings.Join(minus(cur.Members, cur.Counted), ", ")
	case cur.ElectCount > 0 && next.Count == cur.Count && len(cur.Counted) >= cur.Count && settled:
		next.ElectCount = 0
		why = fmt.Sprintf("elections count ANY %d: the primary applies it and %s caught up", cur.Count, strings.Join(cur.Counted, ", "))
	case fresh || cur.Mode != p.Mode || cur.Count != p.Count:
		why = fmt.Sprintf("synchronous replication %s, ANY %d, for the primary %s of epoch %d", p.Mode, p.Count, in.Primary, in.Epoch)
	default:
		return nil, ""
	}
	if (len(next.Counted) == 0) != (len(cur.Counted) == 0) {
		next.Since = in.Now
	}
	return next, why
}

// caughtUp tells whether every member the primary still waits for has
// received the WAL the primary had when it was first seen applying them:
// every commit acknowledged before by a member now leaving, or under a
// smaller k, is then on those that stay.
func caughtUp(cur *LogSync, in syncInput) bool {
	if in.Mark <= 0 || len(cur.Counted) == 0 {
		return false
	}
	for _, m := range cur.Counted {
		if lsn, ok := in.LSN[m]; !ok || lsn < in.Mark {
			return false
		}
	}
	return true
}

// placeholderStandby is the name strict mode waits for when fewer than
// Count standbys are committed: no standby has it, so commits wait rather
// than go unconfirmed.
const placeholderStandby = "pgquorum: no synchronous standby"

// StandbyNames is the synchronous_standby_names the primary applies for
// this state: ANY k (…) of Counted; in strict mode padded with placeholders
// up to k, so that writes wait; "" (asynchronous) in on mode with none.
func (s *LogSync) StandbyNames() string {
	names := slices.Clone(s.Counted)
	if s.Mode == api.SyncStrict {
		for i := 1; len(names) < s.Count; i++ {
			names = append(names, fmt.Sprintf("%s %d", placeholderStandby, i))
		}
	}
	if len(names) == 0 {
		return ""
	}
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = `"` + strings.ReplaceAll(n, `"`, `""`) + `"`
	}
	return fmt.Sprintf("ANY %d (%s)", s.Count, strings.Join(quoted, ", "))
}

// syncElection tells whether winner may be promoted in place of the
// primary of the committed state s: with ANY k of n members, at least
// n − k + 1 members must have reported their received WAL (one of any such
// group has every acknowledged commit), and winner must have received as
// much as the most advanced of them. "" means it may; otherwise why not,
// naming the missing members. A state of another epoch, or with no
// member, constrains nothing: the primary never waited for a standby
// that the log of its epoch does not name.
func syncElection(s *LogSync, epoch uint64, reports map[string]*api.Report, winner Candidate) string {
	if s == nil || s.Epoch != epoch || len(s.Members) == 0 {
		return ""
	}
	n, k := len(s.Members), s.electCount()
	need := max(n-k+1, 1)
	var answered, missing []string
	var best int64
	bestName := ""
	for _, m := range s.Members {
		rep := reports[m]
		switch {
		case rep == nil:
			missing = append(missing, m+" (no report)")
		case !standbyUp(rep):
			missing = append(missing, m+" (not a standby that is up)")
		default:
			answered = append(answered, m)
			if rep.ReceivedLSN > best || bestName == "" {
				best, bestName = rep.ReceivedLSN, m
			}
		}
	}
	set := fmt.Sprintf("ANY %d of the synchronous set (%s)", k, strings.Join(s.Members, ", "))
	if len(answered) < need {
		return fmt.Sprintf("%s: need the received WAL of %d members to be sure of every acknowledged commit, have %d; missing: %s",
			set, need, len(answered), strings.Join(missing, ", "))
	}
	if winner.Received < best {
		return fmt.Sprintf("%s: %s received WAL up to %d, %s only %d; %s is not a candidate", set, bestName, best, winner.Name, winner.Received, bestName)
	}
	return ""
}

// syncStatus is the synchronous object of /state, from the committed state
// and what was last seen of the primary's setting.
func syncStatus(p SyncPolicy, s *LogSync, epoch uint64, seen *api.PrimarySync, fallbacks uint64) *api.SyncStatus {
	out := &api.SyncStatus{Mode: p.Mode, Count: p.Count, Set: []string{}, Counted: []string{}, Fallbacks: fallbacks}
	if p.Mode == api.SyncOff || p.Mode == "" {
		out.Mode, out.RPO = api.SyncOff, "async (failover.synchronous off)"
		return out
	}
	if seen != nil {
		out.Seen, out.StandbyNames, out.SyncRepWaits = true, seen.StandbyNames, seen.SyncRepWaits
	}
	if s == nil || s.Epoch != epoch {
		out.Degraded, out.RPO = true, "async: no synchronous set committed for this epoch yet"
		return out
	}
	out.Set, out.Counted, out.Epoch, out.Want = slices.Clone(s.Members), slices.Clone(s.Counted), s.Epoch, s.StandbyNames()
	since := s.Since
	out.Since = &since
	switch {
	case out.Want == "" && len(s.Members) > 0:
		// A fall back keeps the members: what they acknowledged before
		// is still safe, an election waits for them.
		out.Degraded, out.RPO = true, fmt.Sprintf("async since %s; commits acknowledged before are kept: a failover waits for %d of %s",
			since.UTC().Format(time.RFC3339), max(len(s.Members)-s.electCount()+1, 1), strings.Join(s.Members, ", "))
	case out.Want == "":
		out.Degraded, out.RPO = true, "async since "+since.UTC().Format(time.RFC3339)
	case !out.Seen || out.StandbyNames != out.Want:
		out.Degraded, out.RPO = true, "async: the primary does not apply the committed set yet"
	case seen.SynchronousCommit == "off" || seen.SynchronousCommit == "local":
		// Sessions that start so never wait for a standby, whatever the
		// list says.
		out.Degraded, out.RPO = true, "async: synchronous_commit is "+seen.SynchronousCommit+" on the primary, commits do not wait for standbys"
	case len(s.Counted) < s.Count:
		out.RPO = api.RPOZero + ": writes wait for a synchronous standby (strict)"
	default:
		out.RPO = api.RPOZero
	}
	if s.ElectCount > 0 {
		out.ElectCount = s.ElectCount
		out.RPO += fmt.Sprintf("; elections count ANY %d until the members caught up with ANY %d", s.ElectCount, s.Count)
	}
	if out.SyncRepWaits > 0 {
		out.RPO += fmt.Sprintf("; %d commits wait for a standby (SyncRep)", out.SyncRepWaits)
	}
	return out
}

func (s *LogSync) clone() *LogSync {
	c := *s
	c.Members, c.Counted = slices.Clone(s.Members), slices.Clone(s.Counted)
	return &c
}

// minus is a without the members of b, in a's order.
func minus(a, b []string) []string {
	out := []string{}
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

func intersect(a, b []string) []string {
	out := []string{}
	for _, x := range a {
		if slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// union is a and b, sorted, without duplicates.
func union(a, b []string) []string {
	out := append(slices.Clone(a), b...)
	sort.Strings(out)
	return slices.Compact(out)
}

func listOrNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}
