package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/internal/lab"
)

// The tour's view of failover.synchronous: the committed set and the RPO
// before a failover, and the acknowledged writes the new primary lacks
// after it.

// writeEvery is how often the tour's prober writes through HAProxy.
const writeEvery = 20 * time.Millisecond

// printSync prints the synchronous replication that node3's /state shows
// (node3 answers throughout the tour): the mode, the committed set, the
// primary's actual synchronous_standby_names and the RPO.
func (d *demoRun) printSync(ctx context.Context) {
	var b api.StateBody
	if _, err := d.c.Node("node3").GetJSON(ctx, api.PathState, &b); err != nil || b.Failover == nil || b.Failover.Synchronous == nil {
		fmt.Fprintf(d.out, "  synchronous (asked node3): unknown (%v)\n", err)
		return
	}
	s := b.Failover.Synchronous
	if s.Mode == api.SyncOff {
		fmt.Fprintf(d.out, "  synchronous (asked node3): off: %s\n", s.RPO)
		return
	}
	actual := "unknown"
	if s.Seen {
		actual = "'" + s.StandbyNames + "'" // as SQL quotes it, not as Go does
	}
	fmt.Fprintf(d.out, "  synchronous (asked node3): %s, ANY %d of set [%s], primary's synchronous_standby_names %s: %s\n",
		s.Mode, s.Count, strings.Join(s.Set, ", "), actual, s.RPO)
}

// waitRPOZero waits, with failover.synchronous on or strict, until node3
// says the cluster runs at RPO 0 with a set of at least want members.
func (d *demoRun) waitRPOZero(ctx context.Context, want int) error {
	if d.sync == api.SyncOff {
		return nil
	}
	return lab.WaitFor(ctx, stepTimeout, fmt.Sprintf("RPO 0 with %d synchronous standbys", want), func(ctx context.Context) error {
		var b api.StateBody
		if _, err := d.c.Node("node3").GetJSON(ctx, api.PathState, &b); err != nil {
			return err
		}
		if b.Failover == nil || b.Failover.Synchronous == nil {
			return fmt.Errorf("no synchronous status yet")
		}
		if s := b.Failover.Synchronous; s.RPO != api.RPOZero || len(s.Set) < want {
			return fmt.Errorf("set %v: %s", s.Set, s.RPO)
		}
		return nil
	})
}

// writesBefore is how many writes the tour has acknowledged before it
// kills the primary: about a second's worth.
const writesBefore = 50

// startWrites writes through HAProxy's read-write listener, a new
// connection each time, and returns once writesBefore are acknowledged.
func (d *demoRun) startWrites(ctx context.Context) (*lab.WriteProber, error) {
	w := lab.StartWriteProber(d.port(rwOffset), writeEvery)
	err := lab.WaitFor(ctx, stepTimeout, fmt.Sprintf("%d writes acknowledged through HAProxy", writesBefore), func(context.Context) error {
		if k := len(w.Acked()); k < writesBefore {
			return fmt.Errorf("%d so far", k)
		}
		return nil
	})
	if err != nil {
		w.Stop()
	}
	return w, err
}

// stopWrites waits for a write acknowledged by p, stops writing, and
// prints how many writes were acknowledged and how many of them p lacks:
// acknowledged writes lost in the failover.
func (d *demoRun) stopWrites(ctx context.Context, w *lab.WriteProber, p *lab.Node) error {
	err := lab.WaitFor(ctx, stepTimeout, "a write acknowledged by "+p.Name, func(context.Context) error {
		if b := w.Backends(); len(b) == 0 || b[len(b)-1] != p.PGPort {
			return fmt.Errorf("writes acknowledged by ports %v", b)
		}
		return nil
	})
	if err != nil {
		return err
	}
	w.Stop()
	acked := w.Acked()
	lost, err := lab.LostWrites(ctx, p, acked)
	if err != nil {
		return err
	}
	outage, _ := w.LongestOutage()
	fmt.Fprintf(d.out, "   writes through HAProxy every %s: %d acknowledged, %d refused or timed out (longest gap %s)\n",
		writeEvery, len(acked), len(w.Writes())-len(acked), outage.Round(10*time.Millisecond))
	fmt.Fprintf(d.out, "   acknowledged writes lost: %d of %d (those %s lacks)\n", len(lost), len(acked), p.Name)
	return nil
}
