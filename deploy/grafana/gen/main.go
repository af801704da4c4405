// Command gen writes pgquorum's Grafana dashboard, deploy/grafana/pgquorum.json:
//
//	go run ./deploy/grafana/gen > deploy/grafana/pgquorum.json
//
// (or go test ./deploy/grafana/gen -update). The dashboard is code so that
// its layout stays regular and every query is in one place; its test keeps
// the committed JSON equal to what this writes, and deploy's test keeps
// every metric it queries one that pgquorum exports.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
)

func main() {
	asRules := flag.Bool("as-rules", false, "write every query as a Prometheus recording rule instead, for promtool check rules to parse")
	flag.Parse()
	out := write
	if *asRules {
		out = writeRules
	}
	if err := out(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func write(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // PromQL's < > & stay readable
	enc.SetIndent("", "  ")
	return enc.Encode(dashboard())
}

// writeRules writes every query of the dashboard as a recording rule: the
// file promtool check rules parses, so that a query that does not parse
// fails scripts/alerts-test.sh rather than a panel. JSON strings are YAML.
func writeRules(w io.Writer) error {
	var exprs []string
	var walk func(any)
	walk = func(x any) {
		switch x := x.(type) {
		case obj:
			if e, ok := x["expr"].(string); ok {
				exprs = append(exprs, e)
			}
			for _, v := range x {
				walk(v)
			}
		case []obj:
			for _, v := range x {
				walk(v)
			}
		}
	}
	walk(dashboard())
	if len(exprs) == 0 {
		return fmt.Errorf("no query found")
	}
	sort.Strings(exprs)
	fmt.Fprintln(w, "groups:\n  - name: dashboard\n    rules:")
	for i, e := range exprs {
		q, err := json.Marshal(e)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(w, "      - record: dashboard:query%d\n        expr: %s\n", i+1, q); err != nil {
			return err
		}
	}
	return nil
}

// sel is the selector of the dashboard's variables; cl the cluster's alone.
const (
	sel = `cluster="$cluster",instance=~"$instance"`
	cl  = `cluster="$cluster"`
)

type obj = map[string]any

var datasource = obj{"type": "prometheus", "uid": "${datasource}"}

// layout places panels left to right, 24 columns a row.
type layout struct {
	x, y, rowH int
	id         int
	panels     []obj
}

func (l *layout) add(w, h int, p obj) {
	if l.x+w > 24 {
		l.x, l.y = 0, l.y+l.rowH
		l.rowH = 0
	}
	l.id++
	p["id"] = l.id
	p["gridPos"] = obj{"x": l.x, "y": l.y, "w": w, "h": h}
	p["datasource"] = datasource
	l.panels = append(l.panels, p)
	l.x += w
	l.rowH = max(l.rowH, h)
}

func (l *layout) row(title string) {
	if l.x > 0 {
		l.x, l.y, l.rowH = 0, l.y+l.rowH, 0
	}
	l.id++
	l.panels = append(l.panels, obj{"id": l.id, "type": "row", "title": title, "collapsed": false,
		"gridPos": obj{"x": 0, "y": l.y, "w": 24, "h": 1}, "panels": []obj{}})
	l.y++
}

// target is one query; legend "" lets Grafana name the series.
type target struct{ expr, legend string }

func targets(ts ...target) []obj {
	out := make([]obj, len(ts))
	for i, t := range ts {
		out[i] = obj{"expr": t.expr, "legendFormat": t.legend, "refId": string(rune('A' + i)), "datasource": datasource}
	}
	return out
}

func thresholds(steps ...obj) obj { return obj{"mode": "absolute", "steps": steps} }

func step(value any, color string) obj { return obj{"value": value, "color": color} }

// valueText maps values to words and colours, as stat and state timeline
// panels show them.
func valueText(pairs ...any) []obj {
	opts := obj{}
	for i := 0; i+3 <= len(pairs); i += 3 {
		opts[fmt.Sprint(pairs[i])] = obj{"text": pairs[i+1], "color": pairs[i+2], "index": i / 3}
	}
	return []obj{{"type": "value", "options": opts}}
}

func stat(title, desc, unit string, t target, mappings []obj, th obj) obj {
	return obj{"type": "stat", "title": title, "description": desc, "targets": targets(t),
		"fieldConfig": obj{"defaults": obj{"unit": unit, "mappings": mappings, "thresholds": th, "color": obj{"mode": "thresholds"}}, "overrides": []obj{}},
		"options": obj{"reduceOptions": obj{"calcs": []string{"lastNotNull"}, "fields": "", "values": false},
			"colorMode": "background", "graphMode": "none", "textMode": "value", "justifyMode": "center", "orientation": "auto"}}
}

func timeseries(title, desc, unit string, ts ...target) obj {
	return obj{"type": "timeseries", "title": title, "description": desc, "targets": targets(ts...),
		"fieldConfig": obj{"defaults": obj{"unit": unit, "custom": obj{"lineWidth": 1, "fillOpacity": 10, "showPoints": "never", "spanNulls": false}},
			"overrides": []obj{}},
		"options": obj{"legend": obj{"displayMode": "list", "placement": "bottom", "showLegend": true}, "tooltip": obj{"mode": "multi", "sort": "none"}}}
}

func stateTimeline(title, desc string, mappings []obj, t target) obj {
	return obj{"type": "state-timeline", "title": title, "description": desc, "targets": targets(t),
		"fieldConfig": obj{"defaults": obj{"mappings": mappings, "color": obj{"mode": "thresholds"},
			"thresholds": thresholds(step(nil, "text"))}, "overrides": []obj{}},
		"options": obj{"showValue": "auto", "mergeValues": true, "rowHeight": 0.8, "alignValue": "center",
			"legend": obj{"showLegend": false}, "tooltip": obj{"mode": "single"}}}
}

func variable(name, label, query string, multi bool) obj {
	v := obj{"name": name, "label": label, "type": "query", "datasource": datasource, "refresh": 2, "sort": 1,
		"query": obj{"query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"}, "definition": query,
		"multi": multi, "includeAll": multi, "current": obj{}, "options": []obj{}}
	if multi {
		v["allValue"] = ".*"
	}
	return v
}

func dashboard() obj {
	l := &layout{}
	addOverview(l)
	addNodes(l)
	addReplication(l)
	addProcess(l)
	return obj{
		"title": "pgquorum", "uid": "pgquorum", "description": "pgquorum: the confirmed primary of a repmgr cluster, its failover and its nodes. Alerts: deploy/prometheus/pgquorum.rules.yml.",
		"tags": []string{"pgquorum", "postgresql", "repmgr"}, "editable": true, "graphTooltip": 1, "schemaVersion": 39, "version": 1,
		"time": obj{"from": "now-6h", "to": "now"}, "refresh": "30s", "timezone": "",
		"links": []obj{}, "panels": l.panels,
		"annotations": obj{"list": []obj{
			{"builtIn": 1, "datasource": obj{"type": "grafana", "uid": "-- Grafana --"}, "enable": true, "hide": true,
				"iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts", "type": "dashboard"},
			{"name": "Failovers", "datasource": datasource, "enable": true, "iconColor": "red", "step": "30s",
				"expr": `changes(max(pgquorum_failover_epoch{` + cl + `})[1m:]) > 0`, "titleFormat": "failover or switchover: new epoch"},
		}},
		"templating": obj{"list": []obj{
			{"name": "datasource", "label": "Prometheus", "type": "datasource", "query": "prometheus", "current": obj{}, "hide": 0},
			variable("cluster", "Cluster", "label_values(pgquorum_state, cluster)", false),
			variable("instance", "Node", `label_values(pgquorum_state{cluster="$cluster"}, instance)`, true),
		}},
	}
}
