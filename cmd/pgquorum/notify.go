package main

import (
	"context"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pgquorum/pgquorum/consensus"
	"github.com/pgquorum/pgquorum/internal/sdnotify"
)

// verdictWatch is the Checker's consensus.Observer: it passes every refresh
// and survey on (to the metrics) and keeps when the newest verdict's facts
// were gathered, for systemd's readiness and watchdog.
type verdictWatch struct {
	consensus.Observer
	latest atomic.Pointer[time.Time]
	once   sync.Once
	first  chan struct{} // closed by the first verdict
}

func newVerdictWatch(next consensus.Observer) *verdictWatch {
	return &verdictWatch{Observer: next, first: make(chan struct{})}
}

// Refreshed implements consensus.Observer.
func (w *verdictWatch) Refreshed(s *consensus.Snapshot, took time.Duration, changed bool) {
	w.Observer.Refreshed(s, took, changed)
	at := s.Verdict.CheckedAt
	for {
		old := w.latest.Load()
		if old != nil && !at.After(*old) {
			break
		}
		if w.latest.CompareAndSwap(old, &at) {
			break
		}
	}
	w.once.Do(func() { close(w.first) })
}

// verdictFresh tells whether the watchdog may be fed: the newest verdict is
// younger than half of WatchdogSec. Refreshes come every
// consensus.refresh_interval (at most a few seconds, bounded by
// database.timeout + peer_timeout), so a verdict that old means a checker
// that no longer runs: better restarted by systemd than serving nothing.
// A database that is down still yields fresh (Down) verdicts.
func verdictFresh(checkedAt, now time.Time, watchdog time.Duration) bool {
	return !checkedAt.IsZero() && now.Sub(checkedAt) < watchdog/2
}

// notifySystemd tells systemd READY=1 once the first verdict exists, then
// feeds the watchdog (when WatchdogSec= is set) every quarter of its period
// while verdicts stay fresh, until ctx ends (serve says STOPPING=1 itself,
// before it returns). Without $NOTIFY_SOCKET it returns at once.
func notifySystemd(ctx context.Context, n *sdnotify.Notifier, w *verdictWatch, watchdog time.Duration, log *slog.Logger) {
	if !n.Enabled() {
		return
	}
	select {
	case <-ctx.Done():
		return
	case <-w.first:
	}
	if err := n.Notify(sdnotify.Ready + "\nSTATUS=serving verdicts"); err != nil {
		log.Warn("systemd readiness", "error", err)
	}
	if watchdog <= 0 {
		<-ctx.Done()
		return
	}
	t := time.NewTicker(watchdog / 4)
	defer t.Stop()
	stale := false
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			var at time.Time
			if p := w.latest.Load(); p != nil {
				at = *p
			}
			if verdictFresh(at, now, watchdog) {
				stale = false
				if err := n.Notify(sdnotify.Watchdog); err != nil {
					log.Warn("systemd watchdog", "error", err)
				}
				continue
			}
			if !stale {
				log.Error("no fresh verdict: not feeding systemd's watchdog, which will restart pgquorum",
					"last_verdict", at.Format(time.RFC3339Nano), "watchdog", watchdog)
			}
			stale = true
		}
	}
}

// systemdNotifier reads $NOTIFY_SOCKET and $WATCHDOG_USEC, then removes them
// (and $WATCHDOG_PID) from the environment: repmgr, pg_ctl and the
// PostgreSQL they start must not talk to pgquorum's service manager.
func systemdNotifier() (*sdnotify.Notifier, time.Duration, error) {
	n, err := sdnotify.New(os.Getenv)
	if err != nil {
		return nil, 0, err
	}
	wd, err := sdnotify.WatchdogInterval(os.Getenv, os.Getpid())
	if err != nil {
		return nil, 0, err
	}
	for _, k := range []string{"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"} {
		_ = os.Unsetenv(k) // fails only for a name with "=" or NUL
	}
	return n, wd, nil
}
