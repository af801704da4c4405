package server

import (
	"testing"

	"github.com/pgquorum/pgquorum/api"
)

func TestSynchronousMetrics(t *testing.T) {
	tests := []struct {
		name string
		sync *api.SyncStatus
		want map[string]float64
	}{
		{"off (no object)", nil, map[string]float64{"pgquorum_synchronous_standbys": 0, "pgquorum_synchronous_degraded": 0}},
		{"synchronous with two counted", &api.SyncStatus{Mode: api.SyncOn, Count: 1, Set: []string{"a", "b"}, Counted: []string{"a", "b"}, RPO: api.RPOZero},
			map[string]float64{"pgquorum_synchronous_standbys": 2, "pgquorum_synchronous_degraded": 0}},
		{"degraded, one fallback", &api.SyncStatus{Mode: api.SyncOn, Count: 1, Set: []string{"a"}, Counted: []string{}, Degraded: true, Fallbacks: 1},
			map[string]float64{"pgquorum_synchronous_standbys": 0, "pgquorum_synchronous_degraded": 1, "pgquorum_synchronous_fallbacks_total": 1}},
		{"strict, commits waiting", &api.SyncStatus{Mode: api.SyncStrict, Count: 1, Set: []string{"a"}, Counted: []string{"a"}, SyncRepWaits: 3},
			map[string]float64{"pgquorum_synchronous_standbys": 1, "pgquorum_synchronous_waiting_commits": 3}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMetrics("c")
			m.WatchFailover("n1", &fakeFailover{status: api.FailoverStatus{Mode: api.ModePgquorum, State: api.FailoverLeading, Synchronous: tc.sync}})
			for name, want := range tc.want {
				if got := gaugeValue(t, m, name); got != want {
					t.Errorf("%s = %v, want %v", name, got, want)
				}
			}
		})
	}
}
