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

// Deposition before election (issue 13, item 1). A primary the coordinator
// finds lost may still be confirmed by voters the coordinator does not see
// it through: cut off one way, it still polls them, and their WAL receivers
// still name it. So a successor is committed only in two steps: first a
// "depose" entry, which every voter that applies it obeys (it vouches for
// the deposed node no more); then the decision, once voters forming a
// majority, counted as a verdict counts votes, have applied it and every
// lease they granted to the deposed node has run out, the router's hold
// included. Any majority the deposed node could gather meets one of them,
// so by then it answers 509 and its router has let it go.

// pendingDeposition is the deposition of the current epoch, if one is in
// force: the coordinator asks the voters about it before it commits the
// successor.
func pendingDeposition(st Replicated) (api.Deposition, bool) {
	for i := len(st.Deposed) - 1; i >= 0; i-- {
		if d := st.Deposed[i]; d.Epoch == st.Epoch {
			return d, true
		}
	}
	return api.Deposition{}, false
}

// depositionIntent commits the deposition of lost at the current epoch,
// the first step of replacing it by d.
func depositionIntent(st Replicated, lost repmgr.Node, d api.Decision, now time.Time) roundIntent {
	dep := api.Deposition{Epoch: st.Epoch, Node: lost.Name, NodeID: lost.ID, At: now.UTC(), Reason: d.Reason}
	why := fmt.Sprintf("deposing %s before committing %s: %s", lost.Name, d.Primary, d.Reason)
	return roundIntent{Phase: api.FailoverElecting, Reason: why, Commit: &commitIntent{Entry: deposeEntry(dep), While: api.FailoverElecting, WhileReason: why,
		FailPhase: api.FailoverElecting, FailReason: "deposing " + lost.Name + ": ",
		OK:     logLine{slog.LevelWarn, "deposition committed", []any{"epoch", dep.Epoch, "deposed", dep.Node, "successor", d.Primary, "reason", d.Reason}},
		Failed: logLine{slog.LevelWarn, "commit the deposition", []any{"epoch", dep.Epoch, "deposed", dep.Node}}}}
}

// Release is what the voters said about a deposition, counted.
type Release struct {
	Done    bool   // a majority released it: the successor may be committed
	Blocked bool   // not even the voters still waiting could make a majority
	Reason  string // who released it, who is waited for, who is missing
}

// Released counts the voters that have released the deposed node dep:
// registered nodes whose answer comes from them (name and node_id), says
// they applied dep, and that their ballot binds them to it no more. They
// must form a majority as consensus.HasMajority counts under scope, in the
// location of the deposed node. A node that does not answer, that answers
// for another, or an older version without the endpoint, never counts as
// having released it.
func Released(scope consensus.Scope, dep api.Deposition, nodes []repmgr.Node, answers map[string]*api.DepositionAnswer) Release {
	location := ""
	if n, ok := repmgr.ByName(nodes, dep.Node); ok {
		location = n.Location
	}
	released, possible := map[int]bool{}, map[int]bool{}
	var done, waiting, missing []string
	for _, n := range nodes {
		a := answers[n.Name]
		switch {
		case a == nil:
			missing = append(missing, n.Name+" (no answer)")
		case a.Voter != n.Name || a.VoterID != n.ID:
			missing = append(missing, fmt.Sprintf("%s (answered as %s, node_id %d)", n.Name, a.Voter, a.VoterID))
		case a.Applied && a.BindsMS <= 0:
			released[n.ID], possible[n.ID] = true, true
			done = append(done, n.Name)
		case a.Applied:
			possible[n.ID] = true
			waiting = append(waiting, fmt.Sprintf("%s (bound %s more)", n.Name, time.Duration(a.BindsMS)*time.Millisecond))
		default:
			possible[n.ID] = true // applies it at its next step, or says why not
			waiting = append(waiting, fmt.Sprintf("%s (%s)", n.Name, a.Reason))
		}
	}
	ok, tally := consensus.HasMajority(scope, location, nodes, released)
	if ok {
		return Release{Done: true, Reason: fmt.Sprintf("%s released by %s: %s", dep.Node, strings.Join(done, ", "), tally)}
	}
	could, _ := consensus.HasMajority(scope, location, nodes, possible)
	sort.Strings(missing)
	r := Release{Blocked: !could, Reason: fmt.Sprintf("%s released by %s only (%s); waiting for %s; missing %s",
		dep.Node, noneIfEmpty(done), tally, noneIfEmpty(waiting), noneIfEmpty(missing))}
	return r
}

func noneIfEmpty(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// restoreIntent commits the deposed primary of the current epoch again when,
// before a successor was committed, it reports its database up as primary
// (why). The failover is abandoned, and only a decision naming it makes it
// vouchable again. Only its own report restores it: a round whose direct
// probes are late is no evidence of life, and a database that answers a
// probe may no longer run as primary.
func restoreIntent(st Replicated, dep api.Deposition, why string, now time.Time) roundIntent {
	at := now.UTC()
	d := api.Decision{Epoch: st.Epoch + 1, At: at, Primary: dep.Node, PrimaryID: dep.NodeID, PromotedAt: &at,
		Reason: fmt.Sprintf("restored: %s, deposed at epoch %d, no longer looks lost before a successor was committed: %s", dep.Node, dep.Epoch, why)}
	return roundIntent{Commit: &commitIntent{Entry: decisionEntry(d), FailPhase: api.FailoverElecting, FailReason: "restoring " + dep.Node + ": ", Reset: true,
		OK: logLine{slog.LevelWarn, "failover abandoned: deposed primary restored", decisionArgs(d)}}}
}
