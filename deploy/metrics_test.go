package deploy

import (
	"context"
	"encoding/json"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/spf13/viper"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/consensus"
	"github.com/pgquorum/pgquorum/repmgr"
	"github.com/pgquorum/pgquorum/server"
)

const (
	rulesFile     = "prometheus/pgquorum.rules.yml"
	dashboardFile = "grafana/pgquorum.json"
)

// metricName is an identifier of pgquorum's in a PromQL expression.
var metricName = regexp.MustCompile(`\bpgquorum_[a-zA-Z0-9_]+`)

// TestQueriedMetricsAreExported: every pgquorum_* name that an alert rule
// or a dashboard query uses is one server.Metrics exports, and every label
// value it matches exactly (state="Primary") is one of that metric's, so
// that a rename, of a metric or of a state in api, cannot leave an alert
// that never fires or a panel that stays empty.
func TestQueriedMetricsAreExported(t *testing.T) {
	exported, labels := exportedNames(t)
	queries := map[string][]string{rulesFile: ruleExprs(t), dashboardFile: dashboardExprs(t)}
	for file, exprs := range queries {
		if len(exprs) == 0 {
			t.Fatalf("%s: no expression found", file)
		}
		for _, expr := range exprs {
			for _, name := range metricName.FindAllString(expr, -1) {
				if !exported[name] {
					t.Errorf("%s queries %s, which pgquorum does not export (expr: %s)", file, name, expr)
				}
			}
			for _, m := range selector.FindAllStringSubmatch(expr, -1) {
				for _, eq := range labelEquals.FindAllStringSubmatch(m[2], -1) {
					values, own := labels[m[1]][eq[1]]
					// Labels pgquorum does not set (cluster, instance) are
					// Prometheus's; a value holding a variable is Grafana's.
					if own && !strings.Contains(eq[2], "$") && !values[eq[2]] {
						t.Errorf("%s matches %s{%s=%q}, a value pgquorum never exports (expr: %s)", file, m[1], eq[1], eq[2], expr)
					}
				}
			}
		}
	}
}

// selector is a metric's name and its label matchers; labelEquals is one
// exact matcher among them (not !=, =~ or !~).
var (
	selector    = regexp.MustCompile(`\b(pgquorum_[a-zA-Z0-9_]+)\{([^}]*)\}`)
	labelEquals = regexp.MustCompile(`\b([a-zA-Z_][a-zA-Z0-9_]*)="([^"]*)"`)
)

// exportedNames gathers a registry of server.NewMetrics after every metric
// has been fed; a histogram's series names count as well as its own. labels
// holds, per metric, the values each of its labels takes.
func exportedNames(t *testing.T) (names map[string]bool, labels map[string]map[string]map[string]bool) {
	t.Helper()
	m := server.NewMetrics("test")
	m.WatchPool(func() int { return 1 })
	m.WatchFailover("n1", fakeFailover{})
	standby, primary := snapshot(api.StateStandby), snapshot(api.StatePrimary)
	m.Refreshed(standby, time.Millisecond, false)
	m.Refreshed(primary, time.Millisecond, false) // a transition
	m.Surveyed(consensus.Survey{SplitBrain: true})
	names, labels = map[string]bool{}, map[string]map[string]map[string]bool{}
	mfs, err := m.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		names[mf.GetName()] = true
		for _, series := range mf.GetMetric() {
			for _, l := range series.GetLabel() {
				if labels[mf.GetName()] == nil {
					labels[mf.GetName()] = map[string]map[string]bool{}
				}
				if labels[mf.GetName()][l.GetName()] == nil {
					labels[mf.GetName()][l.GetName()] = map[string]bool{}
				}
				labels[mf.GetName()][l.GetName()][l.GetValue()] = true
			}
		}
		if mf.GetType().String() == "HISTOGRAM" {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				names[mf.GetName()+suffix] = true
			}
		}
	}
	list := make([]string, 0, len(names))
	for n := range names {
		list = append(list, n)
	}
	sort.Strings(list)
	t.Logf("exported: %s", strings.Join(list, " "))
	return names, labels
}

func ruleExprs(t *testing.T) []string {
	t.Helper()
	f, err := os.Open(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }() // read only
	v := viper.New()
	v.SetConfigType("yaml")
	if err := v.ReadConfig(f); err != nil {
		t.Fatalf("%s: %v", rulesFile, err)
	}
	var doc struct {
		Groups []struct {
			Rules []struct {
				Alert, Record, Expr string
			}
		}
	}
	if err := v.Unmarshal(&doc); err != nil {
		t.Fatalf("%s: %v", rulesFile, err)
	}
	var exprs []string
	for _, g := range doc.Groups {
		for _, r := range g.Rules {
			exprs = append(exprs, r.Expr)
		}
	}
	return exprs
}

// dashboardExprs are the dashboard's queries: every "expr", and the
// variables' "query" and "definition" strings.
func dashboardExprs(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	var exprs []string
	var walk func(any)
	walk = func(x any) {
		switch x := x.(type) {
		case map[string]any:
			for k, v := range x {
				if s, ok := v.(string); ok && (k == "expr" || k == "query" || k == "definition") {
					exprs = append(exprs, s)
				}
				walk(v)
			}
		case []any:
			for _, v := range x {
				walk(v)
			}
		}
	}
	walk(doc)
	return exprs
}

func snapshot(state api.State) *consensus.Snapshot {
	pos, delay := int64(100), 0.5
	return &consensus.Snapshot{
		Facts: repmgr.Facts{InRecovery: state == api.StateStandby, ProbedAt: time.Now(),
			Nodes: []repmgr.Node{{ID: 1, Name: "n1"}, {ID: 2, Name: "n2"}},
			WAL:   repmgr.WAL{PrimaryPosition: &pos, Replayed: &pos, ReplayDelay: &delay}},
		Votes:   map[int]consensus.PeerVote{2: {Answer: &api.VoteAnswer{}}},
		Verdict: consensus.Verdict{State: state, Node: "n1", Timeline: 1},
	}
}

type fakeFailover struct{}

func (fakeFailover) Status(context.Context) api.FailoverStatus {
	return api.FailoverStatus{Mode: api.ModePgquorum, State: api.FailoverBlocked, Reason: "cooldown"}
}
func (fakeFailover) History() api.HistoryBody { return api.HistoryBody{} }
func (fakeFailover) Report(context.Context, api.ReportRequest) api.Report {
	return api.Report{}
}
