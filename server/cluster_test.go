package server

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/consensus"
	"github.com/pgquorum/pgquorum/repmgr"
)

func TestClusterView(t *testing.T) {
	one := 1
	lag, delay, streaming := int64(4096), 0.5, true
	nodes := []repmgr.Node{
		{ID: 1, Name: "node1", Location: "dc1", Type: repmgr.TypePrimary, Active: true, Priority: 100},
		{ID: 2, Name: "node2", Location: "dc1", Type: repmgr.TypeStandby, Active: true, Priority: 100, UpstreamID: &one},
		{ID: 3, Name: "node3", Location: "dc1", Type: repmgr.TypeStandby, Active: true, Priority: 0, UpstreamID: &one},
		{ID: 4, Name: "witness", Location: "dc2", Type: repmgr.TypeWitness, Active: true},
	}
	f := &fakeVerdicts{snapshot: snapshotIn(api.StatePrimary, 3, 2), nodes: nodes,
		realPrimary: consensus.RealPrimaryResult{Primary: "node1", Claimants: []string{"node1"}},
		answers: map[string]consensus.StateAnswer{
			"node1":   {Node: "node1", Status: 200, Self: true},
			"node2":   {Node: "node2", Status: 202, Body: &api.StateBody{State: api.StateStandby, Needed: 2, Streaming: &streaming, LagBytes: &lag, LagSeconds: &delay}},
			"node3":   {Node: "node3", Err: errors.New("connection refused")},
			"witness": {Node: "witness", Status: 509},
		}}
	r := do(t, "GET", startServer(t, New(Options{}, f))+api.PathCluster)
	if r.status != 200 {
		t.Fatalf("/cluster = %d %s", r.status, r.body)
	}
	var b api.ClusterBody
	if err := json.Unmarshal([]byte(r.body), &b); err != nil {
		t.Fatal(err)
	}
	if b.RealPrimary == nil || *b.RealPrimary != "node1" || len(b.Nodes) != 4 {
		t.Fatalf("/cluster = %+v, want realPrimary node1 and 4 nodes", b)
	}
	tests := []struct {
		name string
		got  api.ClusterNode
		want func(api.ClusterNode) bool
	}{
		{"self answers from its own verdict", b.Nodes[0], func(n api.ClusterNode) bool {
			return n.Reachable && n.Status == 200 && n.State == api.StatePrimary && n.Votes == 3 && n.Needed == 2
		}},
		{"standby carries its lag and upstream name", b.Nodes[1], func(n api.ClusterNode) bool {
			return n.Status == 202 && n.Upstream == "node1" && *n.LagBytes == 4096 && *n.LagSeconds == 0.5 && *n.Streaming
		}},
		{"unreachable node keeps its metadata and the error", b.Nodes[2], func(n api.ClusterNode) bool {
			return !n.Reachable && n.Status == 0 && n.Error == "connection refused" && n.Type == repmgr.TypeStandby
		}},
		{"undecodable answer keeps its status", b.Nodes[3], func(n api.ClusterNode) bool {
			return n.Reachable && n.Status == 509 && n.State == "" && n.Error != "" && n.Location == "dc2"
		}},
	}
	for _, tt := range tests {
		if !tt.want(tt.got) {
			t.Errorf("%s: got %+v", tt.name, tt.got)
		}
	}
}
