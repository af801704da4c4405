package failover

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/repmgr"
)

// Candidate is a standby that may replace the lost primary.
type Candidate struct {
	Name     string
	ID       int
	Location string
	Priority int
	Timeline int
	Received int64
}

// ErrNoCandidate is returned when no standby may be promoted.
var ErrNoCandidate = errors.New("no standby may be promoted")

// Election is what Elect chose and why.
type Election struct {
	Winner  Candidate
	Ranking []Candidate // every candidate, best first
	Reason  string
}

// Elect chooses the standby to promote in place of lost: among the
// reachable standbys with repmgr priority > 0, of lost's location or of one
// of locations, not excluded, on the newest timeline any reachable standby
// is on, the one that received the most WAL, then the highest priority,
// then the lowest node_id. Ranking every reachable candidate at once means a
// candidate behind a reachable better one is never chosen.
func Elect(lost repmgr.Node, locations []string, nodes []repmgr.Node, reports map[string]*api.Report, exclude map[string]string) (Election, error) {
	allowed := append([]string{lost.Location}, locations...)
	newest := 0
	for _, rep := range reports {
		if standbyUp(rep) && rep.Timeline > newest {
			newest = rep.Timeline
		}
	}
	var cands []Candidate
	var why []string
	for _, n := range nodes {
		rep := reports[n.Name]
		switch {
		case n.ID == lost.ID || n.Type == repmgr.TypeWitness:
			continue
		case rep == nil:
			why = append(why, n.Name+": no report")
		case !standbyUp(rep):
			why = append(why, n.Name+": not a standby that is up")
		case rep.NodeID != n.ID:
			why = append(why, fmt.Sprintf("%s: reports node_id %d, registered %d", n.Name, rep.NodeID, n.ID))
		case n.Priority <= 0:
			why = append(why, n.Name+": priority 0")
		case !slices.Contains(allowed, n.Location):
			why = append(why, fmt.Sprintf("%s: location %q is not among %q", n.Name, n.Location, allowed))
		case exclude[n.Name] != "":
			why = append(why, n.Name+": "+exclude[n.Name])
		case rep.Timeline != newest:
			why = append(why, fmt.Sprintf("%s: on timeline %d, not the newest (%d)", n.Name, rep.Timeline, newest))
		default:
			cands = append(cands, Candidate{Name: n.Name, ID: n.ID, Location: n.Location, Priority: n.Priority,
				Timeline: rep.Timeline, Received: rep.ReceivedLSN})
		}
	}
	if len(cands) == 0 {
		sort.Strings(why)
		return Election{}, fmt.Errorf("%w in place of %s: %s", ErrNoCandidate, lost.Name, strings.Join(why, "; "))
	}
	sort.Slice(cands, func(i, j int) bool { return better(cands[i], cands[j]) })
	w := cands[0]
	return Election{Winner: w, Ranking: cands,
		Reason: fmt.Sprintf("%s: received WAL up to %d on timeline %d, priority %d, best of %d candidates",
			w.Name, w.Received, w.Timeline, w.Priority, len(cands))}, nil
}

// better ranks a before b: more WAL received, then higher priority, then
// lower node_id.
func better(a, b Candidate) bool {
	if a.Received != b.Received {
		return a.Received > b.Received
	}
	if a.Priority != b.Priority {
		return a.Priority > b.Priority
	}
	return a.ID < b.ID
}

func standbyUp(r *api.Report) bool { return r != nil && r.DBUp && r.InRecovery }
