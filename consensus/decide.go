package consensus

import (
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/repmgr"
)

// Scope is how far the majority behind a primary must reach: api.Scope,
// named here too because every rule of this package counts by it.
type Scope = api.Scope

// The scopes, as api names them.
const (
	ScopeCluster = api.ScopeCluster
	ScopeSite    = api.ScopeSite
)

// PeerVote is one answer to "do you vouch for me?": this node's own, or a
// peer's.
type PeerVote struct {
	Answer *api.VoteAnswer // nil when the peer did not answer
	Err    error           // why it did not
}

// Input is everything a verdict depends on.
type Input struct {
	Identity    Identity
	Scope       Scope
	Facts       repmgr.Facts // one probe of the local node
	ProbeErr    error        // non-nil when the probe failed: the node is Down
	IdentityErr error        // non-nil when the database reached is not this node's
	// SelfVote is this node's own vote for itself, through its own Vouch
	// and Ballot like any other voter's.
	SelfVote PeerVote
	// Votes holds the answer of every other registered node, by node_id.
	Votes map[int]PeerVote
	// MinLease is the shortest lease a peer's granted vote may carry:
	// LeaseFor of this node's cache TTL. A voter whose lease is shorter
	// (another consensus.cache_ttl) is free again before this node's
	// verdict expires. 0: not checked.
	MinLease time.Duration
}

// Verdict is what a node says about itself on /state.
type Verdict struct {
	State         api.State
	Node          string
	Location      string
	Scope         Scope
	Votes         int // valid votes from the node's own location, its own included
	Needed        int // majority of the nodes registered in that location
	ClusterVotes  int // valid votes from every location
	ClusterNeeded int // majority of every registered node
	Voters        []string
	Refusals      map[string]string // node name → why it cast no valid vote
	Timeline      int
	Reason        string
	CheckedAt     time.Time // when the facts were gathered
}

// Majority is the smallest number of votes that wins among n nodes.
func Majority(n int) int { return n/2 + 1 }

// Site returns the nodes registered in location, whatever their type or
// active flag: a site's size does not shrink because some of its nodes are
// down, or a partition could vote itself a majority.
func Site(location string, nodes []repmgr.Node) []repmgr.Node {
	var out []repmgr.Node
	for _, n := range nodes {
		if n.Location == location {
			out = append(out, n)
		}
	}
	return out
}

// Decide judges the local node. It fails closed: an unreachable database, or
// one that is not this node's, is Down; a node running as primary is Primary
// only with the majorities its scope requires, counted from valid votes;
// inconsistent inputs answer Unknown, never Primary.
func Decide(in Input) Verdict {
	v := Verdict{Node: in.Identity.Name, Scope: in.Scope, CheckedAt: in.Facts.ProbedAt, Timeline: in.Facts.Server.Timeline}
	switch {
	case in.ProbeErr != nil:
		v.State, v.Reason = api.StateDown, "local database unreachable: "+api.ErrorText(in.ProbeErr)
		return v
	case in.IdentityErr != nil:
		v.State, v.Reason = api.StateDown, "not this node's database: "+api.ErrorText(in.IdentityErr)
		return v
	}
	me, registered, err := in.Identity.Self(in.Facts.Nodes)
	if registered {
		v.Location = me.Location
		v.Needed = Majority(len(Site(me.Location, in.Facts.Nodes)))
		v.ClusterNeeded = Majority(len(in.Facts.Nodes))
	}
	switch {
	case in.Facts.InRecovery:
		v.State, v.Reason = api.StateStandby, "in recovery"
		return v
	case err != nil:
		v.State, v.Reason = api.StateUnknown, "running as primary, but "+err.Error()
		return v
	case !registered:
		v.State, v.Reason = api.StateUnknown, fmt.Sprintf("running as primary but %q is not registered in repmgr.nodes", in.Identity.Name)
		return v
	case me.Type == repmgr.TypeWitness:
		v.State, v.Reason = api.StateUnknown, "witness node: never a primary"
		return v
	}
	v.count(me, in)
	if v.majority(in.Scope) {
		v.State, v.Reason = api.StatePrimary, v.tally(me.Location, len(in.Facts.Nodes))
		return v
	}
	v.State = api.StateUnknown
	v.Reason = "running as primary without a majority: " + v.tally(me.Location, len(in.Facts.Nodes))
	return v
}

// majority is the counting rule: a majority of the nodes registered in the
// location, and with scope cluster of every registered node.
func (v *Verdict) majority(scope Scope) bool {
	return v.Votes >= v.Needed && (scope == ScopeSite || v.ClusterVotes >= v.ClusterNeeded)
}

// HasMajority tells whether voters (by node_id) would make a majority
// behind a candidate of location, counted as Decide counts votes under
// scope: every registered row sizes the location and the cluster, each
// node_id counts once. The coordinator uses it to know that voters which
// released a deposed primary leave it no majority: any majority it could
// gather meets them. It says who is counted, for logs.
func HasMajority(scope Scope, location string, nodes []repmgr.Node, voters map[int]bool) (bool, string) {
	v := Verdict{Scope: scope, Needed: Majority(len(Site(location, nodes))), ClusterNeeded: Majority(len(nodes))}
	counted := map[int]bool{}
	for _, n := range nodes {
		if !voters[n.ID] || counted[n.ID] {
			continue
		}
		counted[n.ID] = true
		v.ClusterVotes++
		if n.Location == location {
			v.Votes++
		}
	}
	return v.majority(scope), v.tally(location, len(nodes))
}

// count tallies the valid votes: this node's own, and each other registered
// node's that passes validVote, each voter once however many rows or
// addresses lead to it.
func (v *Verdict) count(me repmgr.Node, in Input) {
	v.Refusals = map[string]string{}
	counted := map[int]bool{}
	add := func(n repmgr.Node) {
		counted[n.ID] = true
		v.Voters = append(v.Voters, n.Name)
		v.ClusterVotes++
		if n.Location == me.Location {
			v.Votes++
		}
	}
	if a := in.SelfVote.Answer; a != nil && a.Granted && in.SelfVote.Err == nil {
		add(me)
	} else {
		v.Refusals[me.Name] = "own vote: " + refusal(in.SelfVote)
	}
	for _, n := range in.Facts.Nodes {
		if n.ID == me.ID {
			continue
		}
		pv := in.Votes[n.ID]
		switch err := validVote(me, n, in.Facts.Server.SystemID, in.MinLease, pv); {
		case err != nil:
			v.Refusals[rowName(n, in.Facts.Nodes)] = err.Error()
		case counted[n.ID]:
			v.Refusals[rowName(n, in.Facts.Nodes)] = fmt.Sprintf("node_id %d already counted", n.ID)
		default:
			add(n)
		}
	}
	sort.Strings(v.Voters)
}

// validVote checks that the answer polled from registered node n is a vote
// for me: from n itself (its name and node_id), not from me, in the same
// protocol, for me, granted, and from the same cluster (the same system
// identifier; a witness, with a system identifier of its own, must be
// registered as one).
func validVote(me, n repmgr.Node, systemID string, minLease time.Duration, pv PeerVote) error {
	a := pv.Answer
	switch {
	case a == nil:
		return errors.New(refusal(pv))
	case a.Protocol != api.VoteProtocol:
		return fmt.Errorf("answered in vote protocol %d, not %d", a.Protocol, api.VoteProtocol)
	case a.Voter == me.Name || a.VoterID == me.ID:
		return fmt.Errorf("the answer came from this node itself (%s, node_id %d): its address leads back here", a.Voter, a.VoterID)
	case a.Voter != n.Name || a.VoterID != n.ID:
		return fmt.Errorf("answered as %q (node_id %d), not as %q (node_id %d)", a.Voter, a.VoterID, n.Name, n.ID)
	case a.Candidate != me.Name:
		return fmt.Errorf("answered about %q", a.Candidate)
	case n.Type == repmgr.TypeWitness && a.VoterType != repmgr.TypeWitness:
		return fmt.Errorf("registered as a witness but answered as a %s", a.VoterType)
	case n.Type != repmgr.TypeWitness && (a.SystemID == "" || a.SystemID != systemID):
		return fmt.Errorf("system identifier %q is not ours (%s)", a.SystemID, systemID)
	case !a.Granted:
		return errors.New(refusal(pv))
	case a.LeaseMillis < minLease.Milliseconds():
		return fmt.Errorf("its lease of %dms is shorter than %s: consensus.cache_ttl must be the same on every node",
			a.LeaseMillis, minLease)
	}
	return nil
}

// rowName names a row of repmgr.nodes: its node_name, with its node_id when
// another row has that name too.
func rowName(n repmgr.Node, nodes []repmgr.Node) string {
	for _, o := range nodes {
		if o.Name == n.Name && o.ID != n.ID {
			return fmt.Sprintf("%s (node_id %d)", n.Name, n.ID)
		}
	}
	return n.Name
}

func refusal(pv PeerVote) string {
	switch {
	case pv.Err != nil:
		return "no answer: " + api.ErrorText(pv.Err)
	case pv.Answer == nil:
		return "not asked"
	case pv.Answer.Granted:
		return "granted"
	}
	return "refused: " + pv.Answer.Reason
}

func (v *Verdict) tally(location string, clusterSize int) string {
	site := fmt.Sprintf("%d votes (%d needed) in location %q", v.Votes, v.Needed, location)
	if v.Scope == ScopeSite {
		return site + " (scope site)"
	}
	return fmt.Sprintf("%s, %d (%d needed) in the cluster of %d nodes", site, v.ClusterVotes, v.ClusterNeeded, clusterSize)
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
