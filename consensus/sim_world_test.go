package consensus

import (
	"github.com/pgquorum/pgquorum/repmgr"
)

// The simulated world: the databases' facts, and how promotions, demotions
// and standbys following another node change them.

// factsOf probes n's database now.
func (s *sim) factsOf(n *simNode) repmgr.Facts {
	if !n.factsOK {
		nodes := make([]repmgr.Node, len(s.nodes))
		for j, m := range s.nodes {
			nodes[j] = m.row
			if m.row.Type != repmgr.TypeWitness && j == n.named {
				nodes[j].Type = repmgr.TypePrimary
			}
		}
		f := repmgr.Facts{Nodes: nodes, Server: repmgr.Server{SystemID: simSystemID, Timeline: n.timeline}}
		switch {
		case n.row.Type == repmgr.TypeWitness:
			f.Server = repmgr.Server{SystemID: simWitnessSystemID, Timeline: 1}
		case !n.primary:
			f.InRecovery = true
			if n.upstream >= 0 {
				f.WAL.SenderHost, f.WAL.SenderPort = s.nodes[n.upstream].row.Name, simPGPort
				f.WAL.ReceiverStatus = repmgr.StreamingState
			}
		}
		n.facts, n.factsOK = f, true
	}
	return n.facts
}

func (n *simNode) changed() { n.factsOK = false }

// world changes the databases: a standby promoted, a primary demoted, a
// voter following another node (streaming from it, or replaying metadata
// that names it, or cascading, or confused), a primary's metadata changed.
func (s *sim) world() {
	var primaries, others []*simNode
	for _, n := range s.nodes {
		switch {
		case n.row.Type == repmgr.TypeWitness:
			others = append(others, n)
		case n.primary:
			primaries = append(primaries, n)
		default:
			others = append(others, n)
		}
	}
	switch r := s.rng.IntN(10); {
	case r < 3 && len(primaries) < 2:
		var standbys []*simNode
		for _, n := range others {
			if n.row.Type != repmgr.TypeWitness {
				standbys = append(standbys, n)
			}
		}
		if len(standbys) == 0 {
			return
		}
		n := standbys[s.rng.IntN(len(standbys))]
		s.maxTL++
		n.primary, n.named, n.upstream, n.timeline = true, n.i, -1, s.maxTL
		n.changed()
		s.latest = n.i
		s.stats.promotions++
		s.tracef("%s promoted, timeline %d", n.row.Name, n.timeline)
		// Most of the others follow it, each in its own time; an old
		// primary is rejoined as a standby, or keeps running as primary.
		for _, m := range s.nodes {
			switch {
			case m == n || s.rng.IntN(10) == 0:
			case m.primary && m.row.Type != repmgr.TypeWitness:
				if s.rng.IntN(2) == 0 {
					s.push(simEvent{at: s.now + s.expo(3*s.p.ttl), kind: evFollow, node: m.i, peer: n.i})
				}
			default:
				s.push(simEvent{at: s.now + s.expo(s.p.ttl/2), kind: evFollow, node: m.i, peer: n.i})
			}
		}
	case r < 4 && len(primaries) > 1:
		n := primaries[s.rng.IntN(len(primaries))]
		if n.i == s.latest {
			return
		}
		n.primary = false
		s.follow(n, s.latest)
		s.tracef("%s demoted, follows %s", n.row.Name, s.name(s.latest))
	case r < 5 && len(primaries) > 0:
		n := primaries[s.rng.IntN(len(primaries))]
		n.named = n.i
		if s.rng.IntN(3) == 0 {
			n.named = s.rng.IntN(len(s.nodes)+1) - 1
		}
		n.changed()
		s.tracef("%s (primary) metadata names %s", n.row.Name, s.name(n.named))
	default:
		if len(others) == 0 {
			return
		}
		// A voter that goes astray for a while: it streams from another
		// node, or its metadata names another node, or nobody.
		n := others[s.rng.IntN(len(others))]
		target := s.rng.IntN(len(s.nodes))
		if s.rng.IntN(4) == 0 {
			target = -1
		}
		s.follow(n, target)
		s.push(simEvent{at: s.now + s.expo(s.p.ttl), kind: evFollow, node: n.i, peer: s.latest})
	}
}

// follow makes n prefer target, in one of the ways its facts can show it.
func (s *sim) follow(n *simNode, target int) {
	defer n.changed()
	if n.row.Type == repmgr.TypeWitness {
		n.named = target
		s.tracef("%s (witness) metadata names %s", n.row.Name, s.name(target))
		return
	}
	if target < 0 || target == n.i || s.nodes[target].row.Type == repmgr.TypeWitness {
		n.named, n.upstream = -1, -1
		s.tracef("%s confused: no receiver, metadata names nobody", n.row.Name)
		return
	}
	t := s.nodes[target]
	switch r := s.rng.IntN(10); {
	case r < 5:
		n.upstream, n.timeline = target, t.timeline
		if s.rng.IntN(2) == 0 {
			n.named = target
		}
		s.tracef("%s streams from %s on timeline %d, metadata names %s", n.row.Name, t.row.Name, n.timeline, s.name(n.named))
	case r < 7:
		n.upstream, n.named = -1, target
		s.tracef("%s no receiver, metadata names %s", n.row.Name, t.row.Name)
	default:
		up := s.rng.IntN(len(s.nodes))
		if up == n.i || s.nodes[up].row.Type == repmgr.TypeWitness {
			up = target
		}
		n.upstream, n.named, n.timeline = up, target, t.timeline
		s.tracef("%s cascades from %s, metadata names %s, timeline %d", n.row.Name, s.name(up), t.row.Name, n.timeline)
	}
}
