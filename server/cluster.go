package server

import (
	"context"
	"net/http"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/consensus"
	"github.com/pgquorum/pgquorum/repmgr"
)

// handleCluster answers every registered node with its own /state answer:
// like "repmgr cluster show", but with each node's quorum view. It is made of
// the same cached survey as /realPrimary.
func (s *Server) handleCluster(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.clusterBody(r.Context()))
}

// clusterBody is the answer of /cluster, which /ui shows as a page.
func (s *Server) clusterBody(ctx context.Context) api.ClusterBody {
	sv := s.verdicts.Survey(ctx)
	self := s.verdicts.Snapshot(ctx)
	body := api.ClusterBody{
		Node:       self.Verdict.Node,
		Claimants:  sv.RealPrimary.Claimants,
		SplitBrain: sv.SplitBrain,
		CheckedAt:  sv.RealPrimary.CheckedAt.UTC(),
		Nodes:      make([]api.ClusterNode, 0, len(sv.Nodes)),
	}
	if sv.RealPrimary.Primary != "" {
		body.RealPrimary = &sv.RealPrimary.Primary
	}
	fs := s.failoverStatus(ctx)
	body.Failover = &fs
	if s.failover != nil {
		h := s.failover.History()
		body.Decisions = h.Decisions[:min(len(h.Decisions), clusterDecisions)]
		body.Fences = h.Fences[:min(len(h.Fences), clusterDecisions)]
		body.Switchovers = h.Switchovers[:min(len(h.Switchovers), 1)]
	}
	names := map[int]string{}
	for _, n := range sv.Nodes {
		names[n.ID] = n.Name
	}
	for _, n := range sv.Nodes {
		cn := clusterNode(n, names, sv.Answers[n.Name], self)
		if sv.Answers[n.Name].Self {
			cn.Failover = fs.State
		}
		body.Nodes = append(body.Nodes, cn)
	}
	return body
}

// clusterDecisions is how many of the latest decisions (and fences)
// /cluster shows; of the switchovers, only the latest.
const clusterDecisions = 5

func clusterNode(n repmgr.Node, names map[int]string, a consensus.StateAnswer, self *consensus.Snapshot) api.ClusterNode {
	cn := api.ClusterNode{ID: n.ID, Name: n.Name, Location: n.Location, Type: n.Type, Priority: n.Priority, Active: n.Active}
	if n.UpstreamID != nil {
		cn.Upstream = names[*n.UpstreamID]
	}
	if a.Err != nil {
		cn.Error = a.Err.Error()
		return cn
	}
	cn.Reachable, cn.Status = true, a.Status
	b := a.Body
	if a.Self {
		sb := stateBody(self)
		b = &sb
	}
	if b == nil {
		cn.Error = "answer did not decode"
		return cn
	}
	cn.State, cn.Votes, cn.Needed = b.State, b.Votes, b.Needed
	cn.ClusterVotes, cn.ClusterNeeded, cn.Timeline = b.ClusterVotes, b.ClusterNeeded, b.Timeline
	if b.Failover != nil {
		cn.Failover = b.Failover.State
	}
	cn.Streaming, cn.LagBytes, cn.LagSeconds = b.Streaming, b.LagBytes, b.LagSeconds
	cn.Reason = b.Reason
	return cn
}
