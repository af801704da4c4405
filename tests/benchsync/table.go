package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pgquorum/pgquorum/tests/benchrig"
)

// modeResult is every pgbench run of one mode.
type modeResult struct {
	name         string
	standbyNames string // node1's synchronous_standby_names when the cluster was up
	samples      []sample
	retried      int // runs that failed (HAProxy cut node1's sessions) and were run again
	cut          int // of those, runs that failed again: left out
}

// outageResult is every failover of one mode.
type outageResult struct {
	name     string
	outages  []time.Duration
	lost     []int // acknowledged writes the new primary lacked, per run
	failures []string
}

// summary is the medians of a mode's runs that stayed synchronous (all of
// off's): a run that fell back to asynchronous replication measured
// something else, and is left out of them (the table says so).
type summary struct {
	tps      float64
	p50, p99 time.Duration
	runs     int // runs counted
	fellBack int // runs left out
}

func summarise(s []sample) summary {
	var out summary
	var tps []float64
	var p50, p99 []time.Duration
	for _, x := range s {
		if x.fellBack {
			out.fellBack++
			continue
		}
		tps, p50, p99 = append(tps, x.tps), append(p50, x.p50), append(p99, x.p99)
	}
	out.runs = len(tps)
	out.tps, out.p50, out.p99 = benchrig.Median(tps), benchrig.Median(p50), benchrig.Median(p99)
	return out
}

// pgbenchTable prints each mode's medians over its rounds and their
// ratios to the first mode's (off), then every round's figures; a run
// that fell back to asynchronous replication is marked "async" and left
// out of the medians.
func pgbenchTable(w io.Writer, rs []modeResult) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MODE\tsynchronous_standby_names\tRUNS\tTPS\tp50 ms\tp99 ms\tTPS/off\tp99/off\tper round: TPS, p99 ms")
	base := summarise(rs[0].samples)
	for _, r := range rs {
		s := summarise(r.samples)
		rounds := make([]string, len(r.samples))
		for i, x := range r.samples {
			rounds[i] = fmt.Sprintf("%.0f %s", x.tps, ms(x.p99))
			if x.fellBack {
				rounds[i] += " async"
			}
		}
		names := r.standbyNames
		if names == "" {
			names = "''"
		}
		if s.runs == 0 || base.runs == 0 {
			fmt.Fprintf(tw, "%s\t%s\t0\t-\t-\t-\t-\t-\t%s\n", r.name, names, strings.Join(rounds, ", "))
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.0f\t%s\t%s\t%.2f\t%.2f\t%s\n", r.name, names, s.runs, s.tps, ms(s.p50), ms(s.p99),
			s.tps/base.tps, float64(s.p99)/float64(base.p99), strings.Join(rounds, ", "))
	}
	tw.Flush()
	for _, r := range rs {
		if k := summarise(r.samples).fellBack; k > 0 {
			fmt.Fprintf(w, "note: %s fell back to asynchronous replication during %d of %d runs (node1's /state counted a fallback, or was not at RPO 0 after it): left out of its medians\n",
				r.name, k, len(r.samples))
		}
		if r.retried > 0 {
			fmt.Fprintf(w, "note: %s: %d runs failed (HAProxy cut node1's sessions) and were run again; %d failed again and are left out\n", r.name, r.retried, r.cut)
		}
		failed := 0
		for _, x := range r.samples {
			failed += x.failed
		}
		if failed > 0 {
			fmt.Fprintf(w, "note: %s: %d transactions failed (counted in no latency)\n", r.name, failed)
		}
	}
}

// outageTable prints each mode's failover outages: median, max, every
// run, the median's ratio to the first mode's (off), and the acknowledged
// writes lost.
func outageTable(w io.Writer, rs []outageResult) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MODE\tRUNS\tMEDIAN\tMAX\t/off\tALL\tLOST WRITES")
	var base time.Duration
	for i, r := range rs {
		if len(r.outages) == 0 {
			fmt.Fprintf(tw, "%s\t0\t\t\t\t\t\n", r.name)
			continue
		}
		d := append([]time.Duration(nil), r.outages...)
		med := benchrig.Median(d) // sorts d
		if i == 0 {
			base = med
		}
		all := make([]string, len(r.outages))
		lost := make([]string, len(r.lost))
		for j, x := range r.outages {
			all[j] = x.Round(10 * time.Millisecond).String()
			lost[j] = fmt.Sprint(r.lost[j])
		}
		ratio := "-"
		if base > 0 {
			ratio = fmt.Sprintf("%.2f", float64(med)/float64(base))
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\n", r.name, len(d), med.Round(10*time.Millisecond),
			d[len(d)-1].Round(10*time.Millisecond), ratio, strings.Join(all, " "), strings.Join(lost, " "))
	}
	tw.Flush()
	for _, r := range rs {
		for _, f := range r.failures {
			fmt.Fprintf(w, "failed: %s, %s\n", r.name, f)
		}
	}
}

// ms prints d in milliseconds with two decimals.
func ms(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/float64(time.Millisecond)) }
