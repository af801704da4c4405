package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/api"
)

// TestStatusShowsTheRejoin: pgquorum status prints the answering node's
// rejoin under way, its attempt and last error, and the operator's step
// when retrying cannot fix it.
func TestStatusShowsTheRejoin(t *testing.T) {
	next := time.Date(2026, 12, 2, 12, 0, 5, 0, time.UTC)
	tests := []struct {
		name   string
		rejoin *api.RejoinStatus
		want   []string
		not    []string
	}{
		{"none", nil, nil, []string{"rejoining node2 (epoch", "REJOIN"}},
		{"a failed attempt, the next due",
			&api.RejoinStatus{Epoch: 2, Primary: "node2", Attempt: 1, LastError: "start PostgreSQL: exit code 1", NextAt: &next},
			[]string{"node1: rejoining node2 (epoch 2), attempt 1, next at 2026-12-02T12:00:05Z, last error: start PostgreSQL: exit code 1"},
			[]string{"REJOIN NEEDS THE OPERATOR"}},
		{"an attempt running", &api.RejoinStatus{Epoch: 2, Primary: "node2", Attempt: 2, Running: true},
			[]string{"node1: rejoining node2 (epoch 2), attempt 2 running"}, nil},
		{"a forked standby rewound", &api.RejoinStatus{Epoch: 2, Primary: "node2", Attempt: 1, Running: true,
			Reason: "rewinding: forked off node2's timeline 4 at 0/70BC648"},
			[]string{"node1: rejoining node2 (epoch 2), attempt 1 running (rewinding: forked off node2's timeline 4 at 0/70BC648)"}, nil},
		{"retrying cannot fix it",
			&api.RejoinStatus{Epoch: 2, Primary: "node2", Attempt: 3, LastError: "pg_rewind: exit code 1", NextAt: &next,
				Permanent: true, ManualStep: "rebuild it: repmgr -f /etc/repmgr.conf standby clone --force"},
			[]string{"REJOIN NEEDS THE OPERATOR: rebuild it: repmgr -f /etc/repmgr.conf standby clone --force"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var w bytes.Buffer
			printFailover(&w, api.ClusterBody{Node: "node1", Failover: &api.FailoverStatus{Mode: api.ModePgquorum,
				State: api.FailoverRejoining, Epoch: 2, Primary: "node2", Reason: "rejoining node2 as a standby", Rejoin: tt.rejoin}})
			for _, s := range tt.want {
				if !strings.Contains(w.String(), s) {
					t.Errorf("status lacks %q:\n%s", s, w.String())
				}
			}
			for _, s := range tt.not {
				if strings.Contains(w.String(), s) {
					t.Errorf("status has %q:\n%s", s, w.String())
				}
			}
		})
	}
}
