// Package benchrig starts the lab clusters of the benchmarks (make
// bench-failover, make bench-sync) behind HAProxy, and measures the write
// outage of a fault through it, so that both benchmarks measure an outage
// the same way.
package benchrig

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/internal/lab"
)

// Setup is one way of running a cluster.
type Setup struct {
	Name    string
	Quorum  map[string]string   // pgquorum keys on top of the lab's
	Repmgrd *lab.RepmgrdOptions // nil: no repmgrd, pgquorum fails over
	HAProxy lab.HAProxyTimings  // the settings docs/configuration.md recommends for the profile
	// SynchronousCommit turns synchronous_commit on on every node: the
	// lab's postgresql.conf turns it off, under which no commit waits for
	// a standby, whatever synchronous_standby_names says.
	SynchronousCommit bool
}

// LabTimings leave the lab's own timings out of a setup's keys: each
// profile's defaults apply.
var LabTimings = map[string]string{
	"consensus.refresh_interval": lab.Unset, "consensus.cache_ttl": lab.Unset,
	"consensus.peer_timeout": lab.Unset, "database.timeout": lab.Unset,
}

// Keys returns LabTimings with more.
func Keys(more map[string]string) map[string]string {
	out := maps.Clone(LabTimings)
	maps.Copy(out, more)
	return out
}

// HAProxy timings of each profile, as docs/configuration.md recommends.
var (
	HAProxyDefault = lab.HAProxyTimings{Inter: 500 * time.Millisecond, Fall: 2, Rise: 1}
	HAProxyFast    = lab.HAProxyTimings{Inter: 200 * time.Millisecond, Fall: 2, Rise: 1}
)

// Rig is a running three-node cluster, node1 its primary, behind HAProxy.
type Rig struct {
	C *lab.Cluster
	H *lab.HAProxy
	L lab.Listeners
}

// Start starts a three-node cluster with s (node1 the primary), waits for
// node1's 200 and, when pgquorum fails over, for epoch 1 on every node
// (it fails over once it has adopted the first primary), then for HAProxy
// to send writes to node1. The caller closes the rig.
func Start(ctx context.Context, pgquorum string, s Setup, logf func(string, ...any)) (_ *Rig, err error) {
	c, err := lab.Start(ctx, lab.Options{Nodes: []lab.NodeSpec{{Name: "node1", Location: "dc1"}, {Name: "node2", Location: "dc1"},
		{Name: "node3", Location: "dc1"}}, Pgquorum: pgquorum, Quorum: s.Quorum, Repmgrd: s.Repmgrd, Logf: logf})
	if err != nil {
		return nil, err
	}
	r := &Rig{C: c}
	defer func() {
		if err != nil {
			_ = c.Close() // the setup's error is the one to report
		}
	}()
	if s.SynchronousCommit {
		for _, n := range c.Nodes {
			if err := n.Exec(ctx, "ALTER SYSTEM SET synchronous_commit = on"); err != nil {
				return nil, fmt.Errorf("synchronous_commit on %s: %w", n.Name, err)
			}
			if err := n.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
				return nil, fmt.Errorf("reload %s: %w", n.Name, err)
			}
		}
	}
	n1 := c.Node("node1")
	if s.Repmgrd != nil {
		for _, n := range c.Nodes {
			if err := n.StartRepmgrd(); err != nil {
				return nil, err
			}
		}
	}
	if err := n1.WaitStatus(ctx, api.PathState, 200, 30*time.Second); err != nil {
		return nil, err
	}
	if s.Repmgrd == nil {
		if err := waitEpoch1(ctx, c); err != nil {
			return nil, err
		}
	}
	if r.H, r.L, err = c.StartHAProxyFromRepmgr(ctx, pgquorum, s.HAProxy); err != nil {
		return nil, err
	}
	if err := r.H.WaitStatus(ctx, "postgres_rw", "node1", "UP", 30*time.Second); err != nil {
		return nil, err
	}
	return r, nil
}

func waitEpoch1(ctx context.Context, c *lab.Cluster) error {
	return lab.WaitFor(ctx, 30*time.Second, "epoch 1 on every node", func(ctx context.Context) error {
		for _, n := range c.Nodes {
			var h api.HistoryBody
			if _, err := n.GetJSON(ctx, api.PathHistory, &h); err != nil || len(h.Decisions) == 0 {
				return fmt.Errorf("%s: no decision yet (%v)", n.Name, err)
			}
		}
		return nil
	})
}

// Close stops the cluster and its HAProxy.
func (r *Rig) Close() error { return r.C.Close() }

// StartWrites creates the write table and writes through HAProxy's
// read-write listener every 20 ms until the prober is stopped; it returns
// once 5 writes are acknowledged.
func (r *Rig) StartWrites(ctx context.Context) (*lab.WriteProber, error) {
	if err := r.C.CreateWriteTable(ctx, r.C.Node("node1")); err != nil {
		return nil, err
	}
	w := lab.StartWriteProber(r.L.RW, 20*time.Millisecond)
	err := lab.WaitFor(ctx, 10*time.Second, "writes on node1", func(context.Context) error {
		if len(w.Acked()) < 5 {
			return errors.New("fewer than 5 writes acknowledged")
		}
		return nil
	})
	if err != nil {
		w.Stop()
		return nil, err
	}
	return w, nil
}

// OutageSince waits up to 3 minutes for a write sent after the fault at
// and acknowledged by a server other than old, and returns the time from
// the fault to that acknowledgement: the write outage of the failover.
func OutageSince(ctx context.Context, w *lab.WriteProber, old *lab.Node, at time.Time) (time.Duration, error) {
	var first time.Time
	err := lab.WaitFor(ctx, 3*time.Minute, "a write acknowledged by a new primary", func(context.Context) error {
		for _, x := range w.Acked() {
			if x.Port != old.PGPort && x.Sent.After(at) {
				first = x.Done
				return nil
			}
		}
		return errors.New("none yet")
	})
	if err != nil {
		all := w.Writes()
		return 0, fmt.Errorf("%w (last write: %+v)", err, all[len(all)-1])
	}
	return first.Sub(at), nil
}

// Median of d, which it sorts.
func Median[T int64 | float64 | time.Duration](d []T) T {
	slices.Sort(d)
	n := len(d)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return d[n/2]
	}
	return (d[n/2-1] + d[n/2]) / 2
}
