package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/internal/lab"
	"github.com/pgquorum/pgquorum/tests/benchrig"
)

// startMode starts the cluster of mode m and waits until node1 streams to
// both standbys and, unless m is off, until node1's pgquorum reports RPO 0
// with both in the synchronous set, counting m.count of them, and node1's
// synchronous_standby_names is the committed set's. It returns the rig and
// that synchronous_standby_names, read from node1 itself.
func startMode(ctx context.Context, o options, m mode, logf func(string, ...any)) (_ *benchrig.Rig, standbyNames string, err error) {
	r, err := benchrig.Start(ctx, o.pgquorum, o.setup(m), logf)
	if err != nil {
		return nil, "", err
	}
	defer func() {
		if err != nil {
			_ = r.Close() // the setup's error is the one to report
		}
	}()
	if o.fsync {
		for _, n := range r.C.Nodes {
			if err := n.Exec(ctx, "ALTER SYSTEM SET fsync = on"); err != nil {
				return nil, "", fmt.Errorf("fsync on %s: %w", n.Name, err)
			}
			if err := n.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
				return nil, "", fmt.Errorf("reload %s: %w", n.Name, err)
			}
		}
	}
	n1 := r.C.Node("node1")
	err = lab.WaitFor(ctx, 30*time.Second, "node1 to stream to node2 and node3", func(ctx context.Context) error {
		k, err := n1.QueryInt(ctx, `SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming' AND application_name IN ('node2', 'node3')`)
		if err == nil && k != 2 {
			err = fmt.Errorf("%d of 2 standbys streaming", k)
		}
		return err
	})
	if err != nil {
		return nil, "", err
	}
	if m.sync != "off" {
		// A set change takes a grace, a commit and the primary's apply: a
		// correctness bound on a loaded machine, as in the tests.
		err := lab.WaitFor(ctx, 60*time.Second, m.name+": RPO 0 with node2 and node3", func(ctx context.Context) error {
			s, err := syncStatus(ctx, n1)
			if err != nil {
				return err
			}
			if s.RPO != api.RPOZero || s.Count != m.count || !slices.Equal(s.Set, []string{"node2", "node3"}) || !s.Seen || s.StandbyNames != s.Want {
				return fmt.Errorf("got %+v", *s)
			}
			return nil
		})
		if err != nil {
			return nil, "", err
		}
	}
	standbyNames, err = showSetting(ctx, n1, "synchronous_standby_names")
	return r, standbyNames, err
}

// syncStatus is n's /state failover.synchronous.
func syncStatus(ctx context.Context, n *lab.Node) (*api.SyncStatus, error) {
	var b api.StateBody
	if _, err := n.GetJSON(ctx, api.PathState, &b); err != nil {
		return nil, err
	}
	if b.Failover == nil || b.Failover.Synchronous == nil {
		return nil, fmt.Errorf("%s /state: no failover.synchronous: %+v", n.Name, b.Failover)
	}
	return b.Failover.Synchronous, nil
}

// showSetting reads a setting of n's PostgreSQL.
func showSetting(ctx context.Context, n *lab.Node, name string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := n.Connect(ctx)
	if err != nil {
		return "", err
	}
	defer conn.Close(context.Background())
	var v string
	if err := conn.QueryRow(ctx, "SELECT current_setting($1)", name).Scan(&v); err != nil {
		return "", fmt.Errorf("%s: read %s: %w", n.Name, name, err)
	}
	return v, nil
}

// stayedSynchronous says whether node1 of a mode other than off stayed
// synchronous over a run: no fallback to asynchronous replication counted
// between before and after, and not degraded at the end. A run that fell
// back measured the wrong thing, and is said so in the table.
func stayedSynchronous(before, after *api.SyncStatus) bool {
	return after.Fallbacks == before.Fallbacks && !after.Degraded && after.RPO == api.RPOZero
}

// benchPgbench starts one cluster per mode, loads pgbench's tables into
// each, and runs pgbench through each one's HAProxy, every mode once per
// round, the first mode of a round rotating: rounds × modes runs.
func benchPgbench(ctx context.Context, o options, stderr io.Writer, logf func(string, ...any)) ([]modeResult, error) {
	dir, err := os.MkdirTemp("", "pgquorum-bench-sync-")
	if err != nil {
		return nil, err
	}
	defer func() { _ = os.RemoveAll(dir) }() // pgbench's logs, removed as they are read: only the empty directory is left
	rigs := make([]*benchrig.Rig, len(modes))
	results := make([]modeResult, len(modes))
	defer func() {
		for _, r := range rigs {
			if r == nil {
				continue
			}
			if err := r.Close(); err != nil {
				fmt.Fprintf(stderr, "stop cluster: %v\n", err)
			}
		}
	}()
	for i, m := range modes {
		r, names, err := startMode(ctx, o, m, logf)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m.name, err)
		}
		rigs[i] = r
		results[i] = modeResult{name: m.name, standbyNames: names}
		n1 := r.C.Node("node1")
		if err := initPgbench(ctx, n1.Host, n1.PGPort, o.load); err != nil {
			return nil, fmt.Errorf("%s: %w", m.name, err)
		}
		fmt.Fprintf(stderr, "%s: cluster up, synchronous_standby_names %q, pgbench -s %d loaded\n", m.name, names, o.load.scale)
	}
	for round := range o.rounds {
		for j := range modes {
			i := (j + round) % len(modes)
			m, n1 := modes[i], rigs[i].C.Node("node1")
			var before *api.SyncStatus
			if m.sync != "off" {
				if before, err = syncStatus(ctx, n1); err != nil {
					return nil, err
				}
			}
			s, err := runPgbench(ctx, rigs[i].L.RW, o.load, dir, fmt.Sprintf("r%d-m%d", round+1, i))
			if err != nil {
				// On a loaded machine node1's own probe may miss
				// database.timeout: it answers 503 and HAProxy cuts its
				// sessions. That costs no replication; run once more when
				// HAProxy sends writes to node1 again, and say so; a run
				// that fails again is left out, and said so too.
				fmt.Fprintf(stderr, "round %d %s: FAILED, retrying once: %v\n%s", round+1, m.name, err, diagnose(ctx, rigs[i]))
				results[i].retried++
				err = rigs[i].H.WaitStatus(ctx, "postgres_rw", "node1", "UP", 60*time.Second)
				if err == nil {
					s, err = runPgbench(ctx, rigs[i].L.RW, o.load, dir, fmt.Sprintf("r%d-m%d-retry", round+1, i))
				}
			}
			if err != nil {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				fmt.Fprintf(stderr, "round %d %s: FAILED again, left out: %v\n%s", round+1, m.name, err, diagnose(ctx, rigs[i]))
				results[i].cut++
				continue
			}
			if m.sync != "off" {
				after, err := syncStatus(ctx, n1)
				if err != nil {
					return nil, err
				}
				s.fellBack = !stayedSynchronous(before, after)
			}
			results[i].samples = append(results[i].samples, s)
			fell := ""
			if s.fellBack {
				fell = ", FELL BACK to asynchronous"
			}
			fmt.Fprintf(stderr, "round %d %s: %.0f tps, p50 %s ms, p99 %s ms, %d transactions, %d failed%s\n", round+1, m.name, s.tps,
				ms(s.p50), ms(s.p99), s.txns, s.failed, fell)
		}
	}
	return results, nil
}

// diagnose says what a rig's nodes answer and which primaries they
// decided on, to tell a failed run's cause: a failover under load, or
// HAProxy marking the primary down.
func diagnose(ctx context.Context, r *benchrig.Rig) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var b strings.Builder
	for _, n := range r.C.Nodes {
		var st api.StateBody
		code, err := n.GetJSON(ctx, api.PathState, &st)
		var h api.HistoryBody
		_, herr := n.GetJSON(ctx, api.PathHistory, &h)
		fmt.Fprintf(&b, "%s: /state %d %s (%v); decisions:", n.Name, code, st.State, err)
		for _, d := range h.Decisions {
			fmt.Fprintf(&b, " [epoch %d %s: %s]", d.Epoch, d.Primary, d.Reason)
		}
		if herr != nil {
			fmt.Fprintf(&b, " (%v)", herr)
		}
		b.WriteString("\n")
	}
	if stats, err := r.H.Stats(ctx); err == nil {
		fmt.Fprintf(&b, "HAProxy: %+v\n", stats)
	}
	return b.String()
}

// benchFailover measures o.failoverRuns failovers of each of
// failoverModes, alternating, each on a new cluster.
func benchFailover(ctx context.Context, o options, stderr io.Writer, logf func(string, ...any)) []outageResult {
	results := make([]outageResult, len(failoverModes))
	for i, m := range failoverModes {
		results[i].name = m.name
	}
	for run := range o.failoverRuns {
		for j := range failoverModes {
			i := (j + run) % len(failoverModes)
			m := failoverModes[i]
			if ctx.Err() != nil {
				results[i].failures = append(results[i].failures, ctx.Err().Error())
				return results
			}
			outage, lost, err := measureFailover(ctx, o, m, stderr, logf)
			if err != nil {
				results[i].failures = append(results[i].failures, fmt.Sprintf("run %d: %v", run+1, err))
				fmt.Fprintf(stderr, "%s failover run %d: FAILED: %v\n", m.name, run+1, err)
				continue
			}
			results[i].outages = append(results[i].outages, outage)
			results[i].lost = append(results[i].lost, lost)
			fmt.Fprintf(stderr, "%s failover run %d: outage %s, %d acknowledged writes lost\n", m.name, run+1, outage.Round(10*time.Millisecond), lost)
		}
	}
	return results
}

// measureFailover runs one failover of mode m on a new cluster: writes
// through HAProxy every 20 ms, kill -9 of node1's postmaster, and the
// time from the kill to the first write a new primary acknowledges
// (benchrig, as make bench-failover measures it). It also counts the
// acknowledged writes the new primary lacks.
func measureFailover(ctx context.Context, o options, m mode, stderr io.Writer, logf func(string, ...any)) (time.Duration, int, error) {
	r, _, err := startMode(ctx, o, m, logf)
	if err != nil {
		return 0, 0, err
	}
	defer func() {
		if err := r.Close(); err != nil {
			fmt.Fprintf(stderr, "stop cluster: %v\n", err)
		}
	}()
	w, err := r.StartWrites(ctx)
	if err != nil {
		return 0, 0, err
	}
	defer w.Stop()
	n1 := r.C.Node("node1")
	if err := n1.KillPostmaster(); err != nil {
		return 0, 0, err
	}
	outage, err := benchrig.OutageSince(ctx, w, n1, time.Now())
	if err != nil {
		return 0, 0, err
	}
	w.Stop()
	acked := w.Acked()
	var primary *lab.Node
	for _, n := range r.C.Nodes {
		if n.PGPort == acked[len(acked)-1].Port {
			primary = n
		}
	}
	if primary == nil {
		return 0, 0, errors.New("the last acknowledged write came from no node of the cluster")
	}
	lost, err := lab.LostWrites(ctx, primary, acked)
	return outage, len(lost), err
}
