package consensus

import (
	"fmt"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/repmgr"
)

// Vouch decides whether this node, as its facts show it, vouches for the
// candidate of req: whether it holds the candidate to be the primary it
// follows. me is this node's own row of repmgr.nodes. It says why either way.
// Vouch is the rule of one voter; the ballot's lease (Ballot) and the count
// (Decide) are applied apart.
//
// A node vouches for itself only when its own metadata names it the one
// active primary. A standby never vouches for a node on an older timeline
// than its own; when its WAL receiver streams from a registered node, that
// node is the only primary it vouches for, or, when it is a standby (a
// cascade), the primary its metadata names on the very same timeline. A
// witness, which replicates nothing, vouches for the primary its metadata
// names.
func Vouch(me repmgr.Node, f repmgr.Facts, req api.VoteRequest) (bool, string) {
	cand, ok := repmgr.ByID(f.Nodes, req.CandidateID)
	if !ok || cand.Name != req.Candidate {
		return false, fmt.Sprintf("%q (node_id %d) is not registered in my repmgr.nodes", req.Candidate, req.CandidateID)
	}
	named, hasPrimary := repmgr.NamedPrimary(f.Nodes)
	namesCand := hasPrimary && named.ID == cand.ID
	switch {
	case me.Type == repmgr.TypeWitness:
		return metadataVerdict(namesCand, named, hasPrimary)
	case req.SystemID == "" || req.SystemID != f.Server.SystemID:
		return false, fmt.Sprintf("system identifier %q is not mine (%s): another cluster", req.SystemID, f.Server.SystemID)
	case !f.InRecovery && cand.ID == me.ID:
		return metadataVerdict(namesCand, named, hasPrimary)
	case !f.InRecovery:
		return false, "I run as primary myself"
	case cand.ID == me.ID:
		return false, "I am in recovery"
	case req.Timeline < f.Server.Timeline:
		return false, fmt.Sprintf("it is on timeline %d, older than mine (%d)", req.Timeline, f.Server.Timeline)
	}
	up, streams := Upstream(f)
	switch {
	case !streams:
		return metadataVerdict(namesCand, named, hasPrimary)
	case up.ID == cand.ID:
		return true, fmt.Sprintf("I stream from it on timeline %d", f.Server.Timeline)
	case hasPrimary && named.ID == up.ID:
		return false, fmt.Sprintf("I stream from %s, the primary my metadata names", up.Name)
	case !namesCand:
		return metadataVerdict(namesCand, named, hasPrimary)
	case req.Timeline != f.Server.Timeline:
		return false, fmt.Sprintf("I stream from %s on timeline %d, and it is on timeline %d", up.Name, f.Server.Timeline, req.Timeline)
	}
	return true, fmt.Sprintf("my metadata names it, and I cascade from %s on its timeline %d", up.Name, f.Server.Timeline)
}

func metadataVerdict(namesCand bool, named repmgr.Node, hasPrimary bool) (bool, string) {
	switch {
	case namesCand:
		return true, "my metadata names it the active primary"
	case hasPrimary:
		return false, fmt.Sprintf("my metadata names %s the active primary", named.Name)
	}
	return false, "my metadata names no single active primary"
}

// Upstream is the registered node a standby's WAL receiver is connected to,
// matched on the host and port of its conninfo. streams is false when there
// is no receiver, or when its sender matches no registered node (a VIP or
// proxy in between): the metadata alone decides then.
func Upstream(f repmgr.Facts) (up repmgr.Node, streams bool) {
	if f.WAL.SenderHost == "" {
		return repmgr.Node{}, false
	}
	for _, n := range f.Nodes {
		host, port, err := n.Endpoint()
		if err == nil && host == f.WAL.SenderHost && port == f.WAL.SenderPort {
			return n, true
		}
	}
	return repmgr.Node{}, false
}
