package server

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/consensus"
	"github.com/pgquorum/pgquorum/repmgr"
)

// fakeFailover is a Failover whose status and history each test sets.
type fakeFailover struct {
	status  api.FailoverStatus
	history api.HistoryBody
}

func (f *fakeFailover) Status(context.Context) api.FailoverStatus { return f.status }
func (f *fakeFailover) History() api.HistoryBody                  { return f.history }
func (f *fakeFailover) Report(context.Context, api.ReportRequest) api.Report {
	return api.Report{}
}

func standbySnapshot(lag int64, delay float64) *consensus.Snapshot {
	s := snapshotIn(api.StateStandby, 0, 2)
	primary, replayed := int64(1000)+lag, int64(1000)
	s.Facts = repmgr.Facts{InRecovery: true, ProbedAt: time.Unix(1700000000, 0),
		WAL: repmgr.WAL{PrimaryPosition: &primary, Replayed: &replayed, ReplayDelay: &delay, ReceiverStatus: repmgr.StreamingState}}
	return s
}

func TestMetricsCarryTheClusterLabel(t *testing.T) {
	m := NewMetrics("prod-eu")
	m.Refreshed(standbySnapshot(4096, 1.5), time.Millisecond, false)
	m.WatchFailover("n1", &fakeFailover{status: api.FailoverStatus{Mode: api.ModePgquorum, State: api.FailoverFollowing}})
	mfs, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, metric := range mf.GetMetric() {
			found := false
			for _, l := range metric.GetLabel() {
				found = found || (l.GetName() == ClusterLabel && l.GetValue() == "prod-eu")
			}
			if !found {
				t.Errorf("%s: no label cluster=\"prod-eu\": %v", mf.GetName(), metric.GetLabel())
			}
		}
	}
}

func TestMetricsOfAStandby(t *testing.T) {
	m := NewMetrics("c")
	m.Refreshed(standbySnapshot(4096, 1.5), time.Millisecond, false)
	for name, want := range map[string]float64{
		"pgquorum_replication_lag_bytes":                   4096,
		"pgquorum_replication_lag_seconds":                 1.5,
		"pgquorum_timeline":                                3,
		"pgquorum_last_successful_probe_timestamp_seconds": 1700000000,
	} {
		if got := gaugeValue(t, m, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	down := snapshotIn(api.StateDown, 0, 2)
	down.ProbeErr = context.DeadlineExceeded
	m.Refreshed(down, time.Millisecond, false)
	for name, want := range map[string]float64{"pgquorum_replication_lag_bytes": -1, "pgquorum_replication_lag_seconds": -1, "pgquorum_timeline": 0,
		"pgquorum_last_successful_probe_timestamp_seconds": 1700000000} {
		if got := gaugeValue(t, m, name); got != want {
			t.Errorf("down: %s = %v, want %v", name, got, want)
		}
	}
}

func TestFailoverMetrics(t *testing.T) {
	now := time.Unix(1800000000, 0)
	f := &fakeFailover{
		status: api.FailoverStatus{Mode: api.ModePgquorum, State: api.FailoverBlocked, Epoch: 3, Coordinator: "n2", Paused: true,
			Reason: "node1 lost; but the last promotion was 5s ago, within failover.cooldown 1m0s"},
		history: api.HistoryBody{
			Decisions: []api.Decision{{Epoch: 3, At: now.Add(-time.Minute), Primary: "n2", OldPrimary: "n1"}, {Epoch: 1, At: now.Add(-time.Hour), Primary: "n1"}},
			Fences:    []api.Fence{{Node: "n1", At: now.Add(-50 * time.Second)}, {Node: "n3", At: now.Add(-2 * time.Hour)}},
		},
	}
	m := NewMetrics("c")
	m.WatchFailover("n1", f)
	c := collectorOf(t, m)
	c.now = func() time.Time { return now }
	for name, want := range map[string]float64{
		"pgquorum_failover_epoch":                            3,
		"pgquorum_failover_coordinator":                      0,
		"pgquorum_failover_coordinator_present":              1,
		"pgquorum_failover_paused_since_timestamp_seconds":   float64(now.Unix()),
		"pgquorum_failover_last_promotion_timestamp_seconds": float64(now.Add(-time.Minute).Unix()),
		"pgquorum_failover_last_fence_timestamp_seconds":     float64(now.Add(-50 * time.Second).Unix()),
		"pgquorum_failover_fences_total":                     2,
	} {
		if got := gaugeValue(t, m, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	blocked := `pgquorum_failover_blocked{cluster="c",reason="cooldown"} 1`
	if out := exposition(t, m, "pgquorum_failover_blocked"); !strings.Contains(out, blocked) || strings.Count(out, "} 1") != 1 {
		t.Errorf("want one blocked reason, %s:\n%s", blocked, out)
	}

	// A new fence counts once; the end of the pause and of the block zero them.
	f.history.Fences = append([]api.Fence{{Node: "n2", At: now}}, f.history.Fences...)
	f.status = api.FailoverStatus{Mode: api.ModePgquorum, State: api.FailoverLeading, Epoch: 3}
	for name, want := range map[string]float64{"pgquorum_failover_fences_total": 3, "pgquorum_failover_paused_since_timestamp_seconds": 0,
		"pgquorum_failover_coordinator_present": 0} {
		if got := gaugeValue(t, m, name); got != want {
			t.Errorf("after: %s = %v, want %v", name, got, want)
		}
	}
	if out := exposition(t, m, "pgquorum_failover_blocked"); strings.Contains(out, "} 1") {
		t.Errorf("not blocked, yet:\n%s", out)
	}
}

func TestBlockedKind(t *testing.T) {
	for reason, want := range map[string]string{
		"node1 lost; but repmgrd runs with automatic failover unpaused on node2: pause it": BlockedRepmgrd,
		"x; but the last promotion was 5s ago, within failover.cooldown 1m0s":              BlockedCooldown,
		"x; but no standby may be promoted in place of node1: node2 lags":                  BlockedNoCandidate,
		"the committed primary node9 is not registered in repmgr.nodes":                    BlockedUnregistered,
		"something new": BlockedOther,
	} {
		if got := blockedKind(reason); got != want {
			t.Errorf("blockedKind(%q) = %s, want %s", reason, got, want)
		}
	}
}

func collectorOf(t *testing.T, m *Metrics) *failoverCollector {
	t.Helper()
	if m.failover == nil {
		t.Fatal("WatchFailover was not called")
	}
	return m.failover
}

// gaugeValue is the value of the one series of name.
func gaugeValue(t *testing.T, m *Metrics, name string) float64 {
	t.Helper()
	mfs, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		if len(mf.GetMetric()) != 1 {
			t.Fatalf("%s: %d series, want 1", name, len(mf.GetMetric()))
		}
		x := mf.GetMetric()[0]
		switch {
		case x.GetGauge() != nil:
			return x.GetGauge().GetValue()
		case x.GetCounter() != nil:
			return x.GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// exposition is every series of name, one a line: {labels} value.
func exposition(t *testing.T, m *Metrics, name string) string {
	t.Helper()
	mfs, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, x := range mf.GetMetric() {
			var labels []string
			for _, l := range x.GetLabel() {
				labels = append(labels, l.GetName()+"=\""+l.GetValue()+"\"")
			}
			fmt.Fprintf(&b, "%s{%s} %v\n", name, strings.Join(labels, ","), x.GetGauge().GetValue())
		}
	}
	return b.String()
}
