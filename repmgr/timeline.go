package repmgr

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// Timelines: where a primary's history left the timelines before its own,
// and where a standby's WAL ends, as facts read from the servers (not
// from any tool's words, which a locale may translate). A standby whose
// WAL goes past the point where the primary's history left its timeline
// forked off it: it cannot follow that primary without a rewind.

// TimelineSwitch is one line of a timeline history file: timeline
// Timeline ended at Switch, where its child began.
type TimelineSwitch struct {
	Timeline int
	Switch   int64 // as ParseLSN gives it
}

// Timelines is a primary's current timeline and the history that led to it.
type Timelines struct {
	Current int
	History []TimelineSwitch // oldest first; empty on timeline 1
}

// SwitchOf is where the primary's history left timeline tli: ok is false
// when tli is the primary's current timeline or not in its history.
func (t Timelines) SwitchOf(tli int) (int64, bool) {
	for _, s := range t.History {
		if s.Timeline == tli {
			return s.Switch, true
		}
	}
	return 0, false
}

// ParseTimelineHistory reads a timeline history file, as PostgreSQL writes
// it: "parentTLI<TAB>switchpoint<TAB>reason" a line, comments after '#'.
func ParseTimelineHistory(text string) ([]TimelineSwitch, error) {
	var out []TimelineSwitch
	for _, line := range strings.Split(text, "\n") {
		line, _, _ = strings.Cut(line, "#")
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if len(fields) < 2 {
			return nil, fmt.Errorf("timeline history line %q: want a timeline and a switch point", line)
		}
		tli, err := strconv.Atoi(fields[0])
		if err != nil || tli < 1 {
			return nil, fmt.Errorf("timeline history line %q: %q is not a timeline", line, fields[0])
		}
		lsn, err := ParseLSN(fields[1])
		if err != nil {
			return nil, fmt.Errorf("timeline history line %q: %w", line, err)
		}
		if n := len(out); n > 0 && (tli <= out[n-1].Timeline || lsn < out[n-1].Switch) {
			return nil, fmt.Errorf("timeline history line %q: timelines and switch points must increase", line)
		}
		out = append(out, TimelineSwitch{Timeline: tli, Switch: lsn})
	}
	return out, nil
}

// PrimaryTimelines reads the current timeline of the primary of conninfo
// (from its WAL insert location, which a promotion moves at once, unlike
// its control file's checkpoint) and that timeline's history file. It
// needs a role that may call pg_read_file, as repmgr's superuser may.
func PrimaryTimelines(ctx context.Context, conninfo string) (Timelines, error) {
	return primaryTimelines(ctx, conninfo, true)
}

// CurrentTimeline is PrimaryTimelines without the history: the current
// timeline alone, which any role may read.
func CurrentTimeline(ctx context.Context, conninfo string) (int, error) {
	t, err := primaryTimelines(ctx, conninfo, false)
	return t.Current, err
}

func primaryTimelines(ctx context.Context, conninfo string, history bool) (Timelines, error) {
	conn, err := connectTo(ctx, conninfo)
	if err != nil {
		return Timelines{}, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var inRecovery bool
	var file string
	if err := conn.QueryRow(ctx, `SELECT pg_is_in_recovery(),
		CASE WHEN pg_is_in_recovery() THEN '' ELSE substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8) END`).Scan(&inRecovery, &file); err != nil {
		return Timelines{}, fmt.Errorf("read the primary's timeline: %w", err)
	}
	if inRecovery {
		return Timelines{}, fmt.Errorf("read the primary's timeline: it is in recovery")
	}
	cur, err := strconv.ParseInt(file, 16, 32)
	if err != nil || cur < 1 {
		return Timelines{}, fmt.Errorf("read the primary's timeline: WAL file prefix %q is not a timeline", file)
	}
	t := Timelines{Current: int(cur)}
	if cur == 1 || !history {
		return t, nil
	}
	var text string
	if err := conn.QueryRow(ctx, "SELECT pg_read_file('pg_wal/' || $1 || '.history')", file).Scan(&text); err != nil {
		return Timelines{}, fmt.Errorf("read the history file of the primary's timeline %d: %w", cur, err)
	}
	if t.History, err = ParseTimelineHistory(text); err != nil {
		return Timelines{}, fmt.Errorf("the history file of the primary's timeline %d: %w", cur, err)
	}
	return t, nil
}

// StandbyEnd is where a standby's WAL ends: the newest timeline its WAL
// reached (its control file's checkpoint and minimum recovery point, its
// WAL receiver's; not history files it merely fetched) and the furthest
// location it received or replayed.
type StandbyEnd struct {
	Timeline int
	End      int64
}

// StandbyEnd reads where the local standby's WAL ends.
func (l *Local) StandbyEnd(ctx context.Context) (StandbyEnd, error) {
	conn, err := l.connect(ctx)
	if err != nil {
		return StandbyEnd{}, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var e StandbyEnd
	var inRecovery bool
	err = conn.QueryRow(ctx, `SELECT pg_is_in_recovery(),
		greatest((SELECT timeline_id FROM pg_control_checkpoint()),
			(SELECT min_recovery_end_timeline FROM pg_control_recovery()),
			(SELECT received_tli FROM pg_stat_wal_receiver)),
		coalesce(greatest(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()) - '0/0', 0)::bigint`).Scan(&inRecovery, &e.Timeline, &e.End)
	switch {
	case err != nil:
		return StandbyEnd{}, fmt.Errorf("read where the standby's WAL ends: %w", err)
	case !inRecovery:
		return StandbyEnd{}, fmt.Errorf("read where the standby's WAL ends: it is not in recovery")
	}
	return e, nil
}
