package failover

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/repmgr"
)

// The shells of synchronous replication (failover.synchronous): the
// coordinator's step, which commits the set through the Raft log
// (syncset.go decides), and the applier, which runs on every node and, on
// the committed primary, makes synchronous_standby_names what the log says.

// SyncSetter writes synchronous_standby_names on the local primary and
// reloads its configuration; it returns the WAL position after the reload.
// repmgr.SyncNames is the real one.
type SyncSetter interface {
	Set(ctx context.Context, value string) (int64, error)
}

// syncMemory is the coordinator's memory of the set between rounds.
type syncMemory struct {
	eligibleAt map[string]time.Time // when each member was last eligible (withGrace)
	markFor    string               // the epoch and names the mark is for
	seen       int                  // rounds the primary was seen applying markFor
	mark       int64                // the primary's WAL position at the second of them
	waitNote   string               // the last "waiting before a standby leaves" logged
}

func newSyncMemory() *syncMemory { return &syncMemory{eligibleAt: map[string]time.Time{}} }

// syncStep is the round's commit of the synchronous set, if one is due:
// only while the committed primary runs as one, reports, and no
// switchover is under way.
func (r *rounds) syncStep(f roundFacts, st Replicated, now time.Time) *commitIntent {
	p := r.opts.Sync
	prim := f.Reports[st.Primary]
	if !p.Enabled() || st.Epoch == 0 || prim == nil || !prim.DBUp || prim.InRecovery {
		return nil
	}
	if _, running := st.Switchover(); running {
		return nil
	}
	mem := r.syncMem
	var members []string
	cur := st.Sync
	if cur != nil && cur.Epoch == st.Epoch && cur.Primary == st.Primary {
		members = cur.Members
		key := prim.SyncStandbyNames + "\x00" + cur.StandbyNames()
		if prim.SyncStandbyNames == cur.StandbyNames() {
			// The second sighting: by then every walsender has reloaded
			// too, and none releases a commit on the old list.
			if mem.markFor != key {
				mem.markFor, mem.seen, mem.mark = key, 0, 0
			}
			if mem.seen++; mem.seen == 2 {
				mem.mark = prim.ReceivedLSN
			}
		} else {
			mem.markFor, mem.seen, mem.mark = "", 0, 0
		}
	}
	eligible, _ := eligibleStandbys(p, st.Primary, f.Nodes, f.Reports)
	lsn := map[string]int64{}
	for name, rep := range f.Reports {
		if standbyUp(rep) {
			lsn[name] = rep.ReceivedLSN
		}
	}
	next, why := nextSync(syncInput{Policy: p, Epoch: st.Epoch, Primary: st.Primary, Cur: cur,
		Wanted: withGrace(eligible, members, mem.eligibleAt, now, p.Grace), Applied: prim.SyncStandbyNames, AppliedOK: true,
		Mark: mem.mark, LSN: lsn, Now: now.UTC()})
	if next == nil {
		r.noteSyncWait(cur, prim, mem, lsn)
		return nil
	}
	mem.waitNote = ""
	next.Reason = why
	level := slog.LevelInfo
	if p.Mode == api.SyncOn && len(next.Counted) == 0 && cur != nil && len(cur.Counted) > 0 {
		level = slog.LevelWarn
	}
	return &commitIntent{Entry: syncEntry(*next),
		OK: logLine{level, "synchronous set committed", []any{"epoch", next.Epoch, "primary", next.Primary, "set", next.Members,
			"counted", next.Counted, "synchronous_standby_names", next.StandbyNames(), "reason", why}},
		Failed: logLine{slog.LevelWarn, "commit the synchronous set", []any{"epoch", next.Epoch, "reason", why}}}
}

// noteSyncWait logs, once per reason, why a standby dropped from the
// counted ones has not left the set yet: the primary does not show the
// narrower list, or shows it but the mark is not taken, or the members it
// waits for have not received the WAL of the mark.
func (r *rounds) noteSyncWait(cur *LogSync, prim *api.Report, mem *syncMemory, lsn map[string]int64) {
	if cur == nil || len(cur.Members) <= len(cur.Counted) {
		mem.waitNote = ""
		return
	}
	why := "the primary applies " + fmt.Sprintf("%q", prim.SyncStandbyNames) + ", not " + fmt.Sprintf("%q", cur.StandbyNames())
	if prim.SyncStandbyNames == cur.StandbyNames() {
		why = "the primary applies the narrower list; waiting for its second sighting"
		if mem.mark > 0 {
			why = fmt.Sprintf("waiting for %s to receive the WAL up to %d", strings.Join(cur.Counted, ", "), mem.mark)
		}
	}
	if why == mem.waitNote {
		return
	}
	mem.waitNote = why
	got := map[string]int64{}
	for _, m := range cur.Counted {
		got[m] = lsn[m]
	}
	r.opts.logger().Info("synchronous set: a standby waits to leave", "leaving", minus(cur.Members, cur.Counted), "why", why, "received", got)
}

// syncApplier runs on every node; on the committed primary, with
// failover.synchronous on or strict, it sets synchronous_standby_names to
// what the committed set renders: the primary counts on a standby only once
// the log names it, and stops counting on it before the log drops it.
type syncApplier struct {
	opts  Options
	local Local
	fsm   *FSM
	board *statusBoard

	mu        sync.Mutex
	applied   string    // the value this node last set
	appliedAt time.Time // and when
}

func (a *syncApplier) loop(ctx context.Context) {
	if !a.opts.Sync.Enabled() || a.opts.SyncNames == nil {
		return
	}
	t := time.NewTicker(a.opts.RefreshInterval)
	defer t.Stop()
	for {
		changed := a.fsm.Changed()
		a.step(ctx)
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-t.C:
		}
	}
}

// want is the value the committed primary of st must apply: its epoch's
// committed set; before one is committed, asynchronous in on mode, and in
// strict mode a list no standby matches, so that writes wait.
func want(p SyncPolicy, st Replicated) string {
	if s := st.Sync; s != nil && s.Epoch == st.Epoch && s.Primary == st.Primary {
		return s.StandbyNames()
	}
	return (&LogSync{Mode: p.Mode, Count: p.Count}).StandbyNames()
}

func (a *syncApplier) step(ctx context.Context) {
	st := a.fsm.State()
	snap := a.local.Facts(ctx)
	if st.Primary != a.opts.Self || snap == nil || snap.ProbeErr != nil || snap.IdentityErr != nil || snap.Facts.InRecovery {
		return
	}
	value := want(a.opts.Sync, st)
	actual := snap.Facts.Server.Sync.StandbyNames
	a.mu.Lock()
	last, lastAt := a.applied, a.appliedAt
	a.mu.Unlock()
	if actual == value || (value == last && a.opts.Now().Sub(lastAt) < 3*a.opts.RefreshInterval) {
		return // applied; or just applied, and the probe's facts predate it
	}
	log := a.opts.Logger
	if actual != last && actual != "" {
		log.Warn("overwriting a synchronous_standby_names set outside pgquorum", "was", actual, "now", value, "mode", a.opts.Sync.Mode)
	}
	lsn, err := a.opts.SyncNames.Set(ctx, value)
	if err != nil {
		log.Warn("apply the committed synchronous set", "synchronous_standby_names", value, "error", err)
		return
	}
	a.mu.Lock()
	a.applied, a.appliedAt = value, a.opts.Now()
	a.mu.Unlock()
	if value == "" && a.opts.Sync.Mode == api.SyncOn {
		a.board.fallbacks.Add(1)
		log.Warn("synchronous replication degraded: commits no longer wait for a standby", "was", actual, "lsn", lsn, "reason", syncReason(st))
		return
	}
	log.Info("applied the committed synchronous set", "synchronous_standby_names", value, "was", actual, "lsn", lsn, "epoch", st.Epoch)
}

func syncReason(st Replicated) string {
	if st.Sync == nil {
		return ""
	}
	return st.Sync.Reason
}

// primarySync is the committed primary's synchronous replication as its
// report shows it, for the poll of every node.
func primarySync(st Replicated, reports map[string]*api.Report) *api.PrimarySync {
	p := reports[st.Primary]
	if p == nil || !p.DBUp || p.InRecovery {
		return nil
	}
	return &api.PrimarySync{StandbyNames: p.SyncStandbyNames, SyncRepWaits: p.SyncRepWaits, SynchronousCommit: p.SyncCommit}
}

// syncSeen is what this node shows of the primary's setting: its own
// when it is the primary, else the coordinator's last word.
func (r *reporter) syncSeen(ctx context.Context, st Replicated) *api.PrimarySync {
	if st.Primary == r.opts.Self {
		f := r.local.Facts(ctx)
		if f == nil || f.ProbeErr != nil || f.Facts.InRecovery {
			return nil
		}
		s := f.Facts.Server.Sync
		return &api.PrimarySync{StandbyNames: s.StandbyNames, SyncRepWaits: s.Waits, SynchronousCommit: s.Commit}
	}
	return r.board.primarySync(r.opts.Now(), 3*r.opts.RefreshInterval+r.opts.PeerTimeout)
}

// syncFacts fills a report's synchronous replication fields.
func syncFacts(rep *api.Report, s repmgr.SyncFacts) {
	if !rep.InRecovery {
		rep.SyncStandbyNames, rep.SyncRepWaits, rep.SyncCommit = s.StandbyNames, s.Waits, s.Commit
		return
	}
	rep.ApplyDelayMS = s.ApplyDelayMS
}

// board memory of the coordinator's last word on the primary's setting.
type syncBoard struct {
	seen *api.PrimarySync
	at   time.Time
}

func (b *statusBoard) setPrimarySync(p *api.PrimarySync, at time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sync = syncBoard{seen: p, at: at}
}

// primarySync is the coordinator's last word, nil when older than maxAge.
func (b *statusBoard) primarySync(now time.Time, maxAge time.Duration) *api.PrimarySync {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.sync.seen == nil || now.Sub(b.sync.at) > maxAge {
		return nil
	}
	cp := *b.sync.seen
	return &cp
}

// logger is Options.Logger, or one that discards (rounds built in tests).
func (o Options) logger() *slog.Logger {
	if o.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return o.Logger
}
