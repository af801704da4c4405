package consensus

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/repmgr"
)

// Input is everything a verdict depends on.
type Input struct {
	Self     string       // this node's repmgr node_name
	Facts    repmgr.Facts // one probe of the local node
	ProbeErr error        // non-nil when the probe failed: the node is Down
	// Votes maps each polled peer of the site to the node its /primary named;
	// "" when it named none, failed or timed out.
	Votes map[string]string
}

// Verdict is what a node says about itself on /state.
type Verdict struct {
	State     api.State
	Node      string
	Location  string
	Votes     int      // this node plus the site peers that name it primary
	Needed    int      // majority of the nodes registered in the site
	Voters    []string // who voted, this node first
	Reason    string
	CheckedAt time.Time // when the facts were gathered
}

// Majority is the smallest number of votes that wins a site of n nodes.
func Majority(n int) int { return n/2 + 1 }

// Site returns this node's row and the other nodes registered in its
// location, whatever their type or active flag: a site's size does not shrink
// because some of its nodes are down, or a partition could vote itself a
// majority.
func Site(self string, nodes []repmgr.Node) (me repmgr.Node, peers []repmgr.Node, ok bool) {
	me, ok = repmgr.ByName(nodes, self)
	if !ok {
		return me, nil, false
	}
	for _, n := range nodes {
		if n.Location == me.Location && n.Name != self {
			peers = append(peers, n)
		}
	}
	return me, peers, true
}

// Decide judges the local node. It fails closed: an unreachable database is
// Down, and a node running as primary is Primary only with a majority of its
// site behind it; inconsistent inputs (not registered, a witness out of
// recovery) answer Unknown, never Primary.
func Decide(in Input) Verdict {
	v := Verdict{Node: in.Self, CheckedAt: in.Facts.ProbedAt}
	if in.ProbeErr != nil {
		// pgx errors span lines (one per address tried): keep the reason one line.
		v.State, v.Reason = api.StateDown, "local database unreachable: "+strings.Join(strings.Fields(in.ProbeErr.Error()), " ")
		return v
	}
	me, peers, registered := Site(in.Self, in.Facts.Nodes)
	v.Location = me.Location
	if registered {
		v.Needed = Majority(len(peers) + 1)
	}
	switch {
	case in.Facts.InRecovery:
		v.State, v.Reason = api.StateStandby, "in recovery"
		return v
	case !registered:
		v.State, v.Reason = api.StateUnknown, fmt.Sprintf("running as primary but %q is not registered in repmgr.nodes", in.Self)
		return v
	case me.Type == repmgr.TypeWitness:
		v.State, v.Reason = api.StateUnknown, "witness node: never a primary"
		return v
	}
	v.Voters = []string{in.Self}
	for _, p := range peers {
		if in.Votes[p.Name] == in.Self {
			v.Voters = append(v.Voters, p.Name)
		}
	}
	sort.Strings(v.Voters[1:])
	v.Votes = len(v.Voters)
	if v.Votes >= v.Needed {
		v.State = api.StatePrimary
		v.Reason = fmt.Sprintf("%d of %d nodes in location %q name it primary", v.Votes, len(peers)+1, v.Location)
		return v
	}
	v.State = api.StateUnknown
	v.Reason = fmt.Sprintf("running as primary without a majority: %d of %d votes needed in location %q", v.Votes, v.Needed, v.Location)
	return v
}

// NamedPrimary is what /primary answers: the single node that this node's
// metadata records as the active primary. It names none when the metadata
// records zero or several, so a confused node never casts a vote.
func NamedPrimary(nodes []repmgr.Node) (string, bool) {
	ps := repmgr.ActivePrimaries(nodes)
	if len(ps) != 1 {
		return "", false
	}
	return ps[0].Name, true
}

// StateAnswer is one node's answer to /state, as seen by /realPrimary.
type StateAnswer struct {
	Node   string
	Status int            // HTTP status; meaningful only when Err is nil
	Body   *api.StateBody // nil when the body did not decode, or for this node itself
	Self   bool           // the answer is this node's own verdict
	Err    error          // unreachable, timed out, or not HTTP
}

// RealPrimary names the one node that answers 200 on /state. Status alone
// counts, as it does for HAProxy: a node answering 200 would receive writes,
// whatever its body says. Zero or several claimants name nobody.
func RealPrimary(answers []StateAnswer) (primary string, claimants, unreachable []string) {
	for _, a := range answers {
		switch {
		case a.Err != nil:
			unreachable = append(unreachable, a.Node)
		case a.Status == 200:
			claimants = append(claimants, a.Node)
		}
	}
	sort.Strings(claimants)
	sort.Strings(unreachable)
	if len(claimants) == 1 {
		primary = claimants[0]
	}
	return primary, claimants, unreachable
}
