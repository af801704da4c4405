package failover

import (
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/consensus"
	"github.com/pgquorum/pgquorum/repmgr"
)

// The coordinator's functional core: decide turns what one round saw
// (the registered nodes and their reports), the committed state and the
// time into what the round is for (commit an entry, or nothing, and why).
// It does no I/O; it keeps the coordinator's memory between rounds: the
// detector, the standbys excluded after a failed promotion, and the
// switchover driver's.

// roundFacts are what the coordinator gathered in one round.
type roundFacts struct {
	Nodes   []repmgr.Node
	Reports map[string]*api.Report // by node name; a node that did not answer has none
	// Released holds the voters' answers about the deposition of the
	// current epoch (pendingDeposition), by node name; nil when none is.
	Released map[string]*api.DepositionAnswer
}

// roundIntent is what a round asks the shell to do, in this order: record
// the notes (best effort: a failure is only logged), have every node
// release the votes leased to Release, commit Commit. Phase and Reason are
// the cluster's phase when there is no Commit, or it succeeds.
type roundIntent struct {
	Phase   api.FailoverState
	Reason  string
	Notes   []commitIntent
	Release *repmgr.Node
	Commit  *commitIntent
}

// commitIntent is an entry to commit and what follows from the outcome.
type commitIntent struct {
	Entry Entry
	// While is shown as the phase while the commit runs ("" leaves the
	// phase as it was).
	While       api.FailoverState
	WhileReason string
	// FailPhase and FailReason are the phase when the commit fails; the
	// error follows FailReason.
	FailPhase  api.FailoverState
	FailReason string
	Reset      bool    // forget the detector's evidence once committed: a new primary starts clean
	OK         logLine // logged once committed
	Failed     logLine // logged, with the error, when not
}

// exclusion keeps a standby whose promotion failed out of the elections
// for one cooldown.
type exclusion struct {
	why   string
	until time.Time
}

// rounds is the coordinator's memory between rounds, and its decisions.
type rounds struct {
	opts     Options
	det      Detector
	excluded map[string]exclusion // standbys whose promotion failed
	sw       switchoverDriver
	syncMem  *syncMemory // failover.synchronous (sync.go)
}

func newRounds(opts Options) *rounds {
	return &rounds{opts: opts, det: Detector{Grace: opts.Grace, Lag: opts.DBTimeout}, excluded: map[string]exclusion{}, sw: newSwitchoverDriver(opts), syncMem: newSyncMemory()}
}

// forget is what a node that stops coordinating does: the next time it
// leads, it starts from its own rounds.
func (r *rounds) forget() { r.det.Reset(); r.syncMem = newSyncMemory() }

// decide is one round of the coordinator.
func (r *rounds) decide(f roundFacts, st Replicated, now time.Time) roundIntent {
	var notes []commitIntent
	if sw, ok := st.Switchover(); ok {
		in, handled := r.sw.step(f, st, sw, now)
		if handled {
			return in
		}
		notes = in.Notes
	}
	in := r.decideFailover(f, st, now)
	in.Notes = append(notes, in.Notes...)
	if in.Commit == nil && in.Phase != api.FailoverSuspect {
		if s := r.syncStep(f, st, now); s != nil {
			in.Notes = append(in.Notes, *s)
		}
	}
	return in
}

// decideFailover adopts a primary, records a promotion, or detects the
// loss of the primary and elects its successor.
func (r *rounds) decideFailover(f roundFacts, st Replicated, now time.Time) roundIntent {
	if st.Epoch == 0 || adoptable(st, f.Reports) != "" {
		return r.adopt(f, st, now)
	}
	lost, ok := repmgr.ByName(f.Nodes, st.Primary)
	if !ok {
		return roundIntent{Phase: api.FailoverBlocked, Reason: fmt.Sprintf("the committed primary %s is not registered in repmgr.nodes", st.Primary)}
	}
	if dep, ok := pendingDeposition(st); ok && dep.Node == st.Primary {
		if p := f.Reports[st.Primary]; p != nil && p.DBUp && !p.InRecovery {
			return restoreIntent(st, dep, st.Primary+" reports its database up, running as primary", now)
		}
	}
	var notes []commitIntent
	latest, _ := st.Latest()
	if p := f.Reports[st.Primary]; latest.PromotedAt == nil && p != nil && p.DBUp && !p.InRecovery {
		notes = append(notes, promotedNote(latest, now))
	}
	in := r.detect(f, st, lost, now)
	in.Notes = append(notes, in.Notes...)
	return in
}

func (r *rounds) detect(f roundFacts, st Replicated, lost repmgr.Node, now time.Time) roundIntent {
	if st.Paused() {
		r.det.Reset()
		return roundIntent{Phase: api.FailoverPaused, Reason: fmt.Sprintf("automatic failover paused on %s at %s: %s", st.Pause.By, st.Pause.At.Format(time.RFC3339), st.Pause.Reason)}
	}
	if why := promotionFailed(r.opts, st, f.Reports, now); why != "" {
		return r.elect(f, st, lost, why, now)
	}
	if p := f.Reports[st.Primary]; p != nil && p.DBUp && p.InRecovery {
		return roundIntent{} // the committed primary is being promoted
	}
	det := r.det.Observe(Round{Now: now, Primary: st.Primary, Members: len(f.Nodes), Reports: f.Reports})
	switch {
	case det.Lost:
		return r.elect(f, st, lost, det.Reason, now)
	case det.Suspect:
		return roundIntent{Phase: api.FailoverSuspect, Reason: det.Reason}
	}
	return roundIntent{}
}

// watched is the node whose database the coordinator has every node probe
// directly, "" when none: the committed primary (at the first epoch, the one
// the metadata of a majority names) while its pgquorum is silent or reports
// its database down. The probes confirm or refute its loss (Examine).
func watched(f roundFacts, st Replicated) string {
	name := st.Primary
	if st.Epoch == 0 {
		name, _ = namedByMajority(f.Nodes, f.Reports)
	}
	if p := f.Reports[name]; name == "" || (p != nil && p.DBUp) {
		return ""
	}
	return name
}

// promotedNote records that the committed primary of d runs as one.
func promotedNote(d api.Decision, now time.Time) commitIntent {
	p := Promoted{Epoch: d.Epoch, At: now.UTC()}
	n := commitIntent{Entry: promotedEntry(p), Failed: logLine{slog.LevelWarn, "record the promotion", []any{"epoch", d.Epoch}}}
	if d.OldPrimary != "" {
		n.OK = logLine{slog.LevelInfo, "promotion recorded", []any{"epoch", d.Epoch, "primary", d.Primary, "after", p.At.Sub(d.At).Round(time.Millisecond)}}
	}
	return n
}

// claimants are the nodes answering 200.
func claimants(reports map[string]*api.Report) []string {
	var out []string
	for name, r := range reports {
		if r.State == api.StatePrimary {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// adoptable names the node to adopt as the primary of a new epoch: the one
// node answering 200 while the committed primary does not run as one, or is
// down: someone else (repmgrd, an operator) promoted it. A 200 is a majority
// behind it, so recording it is safe, and it keeps the standbys from being
// pointed back at a dead primary.
func adoptable(st Replicated, reports map[string]*api.Report) string {
	cl := claimants(reports)
	if len(cl) != 1 || cl[0] == st.Primary {
		return ""
	}
	if p := reports[st.Primary]; p != nil && p.DBUp && !p.InRecovery {
		return "" // the committed primary runs: this is for the split-brain watch, not for us
	}
	return cl[0]
}

// adopt commits as the primary of the next epoch the node that answers 200
// now: at the first epoch, before which pgquorum acts on nothing, or after a
// promotion made outside pgquorum. At the first epoch with no node
// answering 200 (pgquorum starting while the primary is down, or in its
// quiet period), it adopts the active primary that the metadata of a
// majority of the registered nodes names, if it runs as primary; if it is
// lost, it elects its successor as in a failover (firstFailover).
func (r *rounds) adopt(f roundFacts, st Replicated, now time.Time) roundIntent {
	cl := claimants(f.Reports)
	var d api.Decision
	switch {
	case len(cl) == 1:
		p := f.Reports[cl[0]]
		d = api.Decision{Primary: p.Node, PrimaryID: p.NodeID, Reason: "adopted: the primary confirmed by its majority"}
	case len(cl) == 0 && st.Epoch == 0:
		name, who := namedByMajority(f.Nodes, f.Reports)
		n, ok := repmgr.ByName(f.Nodes, name)
		if !ok {
			return roundIntent{Phase: api.FailoverJoining, Reason: "waiting for a node answering 200, or a majority naming the same primary, to adopt"}
		}
		named := "the active primary the metadata of " + strings.Join(who, ", ") + " names"
		if p := f.Reports[n.Name]; p == nil || !p.DBUp || p.InRecovery {
			return r.firstFailover(f, st, n, named, now)
		}
		d = api.Decision{Primary: n.Name, PrimaryID: n.ID, Reason: "adopted: " + named + ", running as primary"}
	default:
		return roundIntent{Phase: api.FailoverJoining, Reason: fmt.Sprintf("waiting for exactly one node answering 200 to adopt as the primary (now: %v)", cl)}
	}
	d.Epoch, d.At, d.OldPrimary = st.Epoch+1, now.UTC(), st.Primary
	if st.Epoch > 0 {
		d.Reason = fmt.Sprintf("adopted: %s answers 200, promoted outside pgquorum in place of %s", d.Primary, st.Primary)
		at := d.At
		d.PromotedAt = &at
	}
	return roundIntent{Commit: &commitIntent{Entry: decisionEntry(d), FailPhase: api.FailoverJoining, FailReason: "adopting " + d.Primary + ": ", Reset: true,
		OK: logLine{slog.LevelInfo, "failover decision committed", decisionArgs(d)}}}
}

// firstFailover is the first epoch's round when the primary the metadata
// names (n) does not run as one: a standby named by stale metadata is never
// adopted (its actor would promote it, unranked); a primary lost for the
// grace, as detection tells it, has its successor elected as in a failover.
func (r *rounds) firstFailover(f roundFacts, st Replicated, n repmgr.Node, named string, now time.Time) roundIntent {
	if p := f.Reports[n.Name]; p != nil && p.DBUp {
		r.det.Reset()
		return roundIntent{Phase: api.FailoverJoining, Reason: fmt.Sprintf("not adopting %s, %s: it runs as a standby", n.Name, named)}
	}
	if st.Paused() {
		r.det.Reset()
		return roundIntent{Phase: api.FailoverPaused, Reason: fmt.Sprintf("automatic failover paused on %s at %s: %s", st.Pause.By, st.Pause.At.Format(time.RFC3339), st.Pause.Reason)}
	}
	det := r.det.Observe(Round{Now: now, Primary: n.Name, Members: len(f.Nodes), Reports: f.Reports})
	why := fmt.Sprintf("nothing adopted yet: %s, %s: %s", n.Name, named, det.Reason)
	switch {
	case det.Lost:
		return r.elect(f, st, n, why, now)
	case det.Suspect:
		return roundIntent{Phase: api.FailoverSuspect, Reason: why}
	}
	return roundIntent{Phase: api.FailoverJoining, Reason: why}
}

func decisionArgs(d api.Decision) []any {
	return []any{"epoch", d.Epoch, "primary", d.Primary, "old_primary", d.OldPrimary, "reason", d.Reason}
}

// promotionFailed says why the committed primary's promotion is given up:
// it reported its promote command failed, or it is still in recovery a
// command timeout plus a grace after the decision.
func promotionFailed(opts Options, st Replicated, reports map[string]*api.Report, now time.Time) string {
	d, ok := st.Latest()
	p := reports[st.Primary]
	if !ok || d.PromotedAt != nil || p == nil || !p.DBUp || !p.InRecovery {
		return ""
	}
	if a := p.Action; a != nil && a.Epoch == d.Epoch && a.Kind == api.ActionPromote && a.Failed {
		return fmt.Sprintf("the promotion of %s failed: %s", d.Primary, a.Error)
	}
	if now.Sub(d.At) > opts.CommandTimeout+opts.Grace {
		return fmt.Sprintf("%s is still in recovery %s after it was chosen", d.Primary, now.Sub(d.At).Round(time.Second))
	}
	return ""
}

// elect chooses the successor of lost, unless something forbids acting
// now: repmgrd, the cooldown, or no candidate.
func (r *rounds) elect(f roundFacts, st Replicated, lost repmgr.Node, why string, now time.Time) roundIntent {
	if blocked := repmgrdActive(f.Reports); blocked != "" && r.opts.Mode != api.ModeRepmgrd {
		return roundIntent{Phase: api.FailoverBlocked, Reason: why + "; but " + blocked}
	}
	latest, _ := st.Latest()
	if last := st.LastPromotion(); !last.IsZero() && now.Sub(last) < r.opts.Cooldown {
		return roundIntent{Phase: api.FailoverBlocked, Reason: fmt.Sprintf("%s; but the last promotion was %s ago, within failover.cooldown %s",
			why, now.Sub(last).Round(time.Second), r.opts.Cooldown)}
	}
	if latest.PromotedAt == nil && latest.OldPrimary != "" {
		r.excluded[st.Primary] = exclusion{why: why, until: now.Add(r.opts.Cooldown)}
	}
	exclude := map[string]string{}
	for k, x := range r.excluded {
		if now.Before(x.until) {
			exclude[k] = x.why
		} else {
			delete(r.excluded, k)
		}
	}
	e, err := Elect(lost, r.opts.Locations, f.Nodes, f.Reports, exclude)
	if err != nil {
		return roundIntent{Phase: api.FailoverBlocked, Reason: why + "; but " + err.Error()}
	}
	if sync := syncElection(st.Sync, st.Epoch, f.Reports, e.Winner); sync != "" { // failover.synchronous (syncset.go)
		return roundIntent{Phase: api.FailoverBlocked, Reason: why + "; but " + sync}
	}
	d := api.Decision{Epoch: st.Epoch + 1, At: now.UTC(), Primary: e.Winner.Name, PrimaryID: e.Winner.ID,
		OldPrimary: lost.Name, Reason: why + "; chose " + e.Reason}
	dep, ok := st.Deposition(lost.Name, lost.ID)
	if !ok || dep.Epoch != st.Epoch {
		return depositionIntent(st, lost, d, now)
	}
	switch rel := Released(r.opts.Scope, dep, f.Nodes, f.Released); {
	case rel.Blocked:
		return roundIntent{Phase: api.FailoverBlocked, Reason: fmt.Sprintf("%s; but no majority of voters can release %s: %s", why, lost.Name, rel.Reason)}
	case !rel.Done:
		return roundIntent{Phase: api.FailoverElecting, Reason: fmt.Sprintf("%s; %s is deposed, waiting for its voters to release it: %s", why, lost.Name, rel.Reason)}
	default:
		d.Reason += "; " + rel.Reason
	}
	return roundIntent{Commit: &commitIntent{Entry: decisionEntry(d), While: api.FailoverElecting, WhileReason: d.Reason,
		FailPhase: api.FailoverElecting, FailReason: "committing " + e.Winner.Name + ": ", Reset: true,
		OK: logLine{slog.LevelWarn, "failover decision committed", append(decisionArgs(d), "ranking", rankingNames(e.Ranking))}}}
}

// namedByMajority is the active primary that the metadata of a majority of
// the registered nodes names, and who names it.
func namedByMajority(nodes []repmgr.Node, reports map[string]*api.Report) (string, []string) {
	by := map[string][]string{}
	for name, r := range reports {
		if r.Named != "" {
			by[r.Named] = append(by[r.Named], name)
		}
	}
	for primary, who := range by {
		if len(who) >= consensus.Majority(len(nodes)) {
			sort.Strings(who)
			return primary, who
		}
	}
	return "", nil
}

// repmgrdActive names the nodes whose repmgrd runs with failover unpaused:
// two controllers must never race to promote.
func repmgrdActive(reports map[string]*api.Report) string {
	var active []string
	for name, r := range reports {
		if r.RepmgrdRunning && !r.RepmgrdPaused {
			active = append(active, name)
		}
	}
	if len(active) == 0 {
		return ""
	}
	sort.Strings(active)
	return fmt.Sprintf("repmgrd runs with automatic failover unpaused on %s: pause it (repmgr service pause) or stop it, or set failover.mode off",
		strings.Join(active, ", "))
}

func rankingNames(r []Candidate) []string {
	out := make([]string, len(r))
	for i, c := range r {
		out[i] = fmt.Sprintf("%s(lsn %d, prio %d)", c.Name, c.Received, c.Priority)
	}
	return out
}
