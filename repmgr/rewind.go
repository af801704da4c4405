package repmgr

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// The steps of "repmgr node rejoin --force-rewind", run one by one so that
// the caller holds the data directory between them (DataDirLock): crash
// recovery in single-user mode, pg_rewind, the standby's configuration,
// the registration.

// Control file states (pg_controldata's "Database cluster state").
const (
	StateShutDown           = "shut down"
	StateShutDownInRecovery = "shut down in recovery"
	StateInProduction       = "in production"
	StateInCrashRecovery    = "in crash recovery"
	StateInArchiveRecovery  = "in archive recovery"
)

// CleanlyShutDown tells whether pg_rewind accepts a target in state.
func CleanlyShutDown(state string) bool {
	return state == StateShutDown || state == StateShutDownInRecovery
}

// CrashRecover runs crash recovery on a primary's data directory that was
// not shut down cleanly: a single-user postgres replays the WAL, writes a
// shutdown checkpoint and exits, as pg_rewind itself would. env is added to
// its environment (DataDirLock.Env).
func (s Service) CrashRecover(ctx context.Context, env ...string) (string, error) {
	r := s.Runner
	base := r.Env
	if base == nil {
		base = os.Environ()
	}
	r.Env = append(append([]string(nil), base...), env...)
	// stdin is /dev/null: the session ends at once.
	out, err := r.Run(ctx, s.bin("postgres"), "--single", "-F", "-D", s.Conf.DataDirectory, "template1")
	if err != nil {
		return out, fmt.Errorf("crash recovery in single-user mode: %w", err)
	}
	return out, nil
}

// Rewind runs pg_rewind against the server of sourceConninfo. It never
// runs crash recovery itself (--no-ensure-shutdown): that would take the
// data directory's lock over and free it before the rewind. Its output is
// untranslated: the rejoin reads it (whether it began to change files,
// whether there was nothing to rewind, which errors no retry fixes).
func (s Service) Rewind(ctx context.Context, sourceConninfo string) (string, error) {
	out, err := s.Runner.Untranslated().Run(ctx, s.bin("pg_rewind"), "-D", s.Conf.DataDirectory,
		"--source-server="+sourceConninfo, "--no-ensure-shutdown")
	if err != nil {
		return out, fmt.Errorf("pg_rewind: %w", err)
	}
	return out, nil
}

// WriteStandbyConfig makes the data directory start as a standby streaming
// with primaryConninfo, as repmgr does on PostgreSQL 12 and later:
// standby.signal, and primary_conninfo and primary_slot_name appended to
// postgresql.auto.conf, where the last setting wins. pg_rewind copied the
// source's postgresql.auto.conf, whose settings these override.
func (s Service) WriteStandbyConfig(primaryConninfo, slot string) error {
	dir := s.Conf.DataDirectory
	auto := filepath.Join(dir, "postgresql.auto.conf")
	f, err := os.OpenFile(auto, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("open postgresql.auto.conf: %w", err)
	}
	_, err = fmt.Fprintf(f, "# rejoined by pgquorum\nprimary_conninfo = %s\nprimary_slot_name = %s\n",
		confQuote(primaryConninfo), confQuote(slot))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write postgresql.auto.conf: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "standby.signal"), nil, 0o600); err != nil {
		return fmt.Errorf("write standby.signal: %w", err)
	}
	return nil
}

// RemoveStandbySignal removes standby.signal: a single-user postgres
// refuses standby mode.
func (s Service) RemoveStandbySignal() error {
	err := os.Remove(filepath.Join(s.Conf.DataDirectory, "standby.signal"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove standby.signal: %w", err)
	}
	return nil
}

// confQuote quotes s as a postgresql.conf string value.
func confQuote(s string) string {
	s = strings.ReplaceAll(s, `\`, `\\`)
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// SlotName is the replication slot repmgr gives node id.
func SlotName(id int) string { return "repmgr_slot_" + strconv.Itoa(id) }

// RegisterStandby records this node in repmgr.nodes as an active standby
// of the node of upstreamID ("repmgr standby register --force"), as repmgr
// node rejoin does at its end.
func (c CLI) RegisterStandby(ctx context.Context, upstreamID int) (string, error) {
	return c.run(ctx, "standby", "register", "--force", "--upstream-node-id="+strconv.Itoa(upstreamID))
}

// EnsureSlotAt creates the physical replication slot name on the server of
// conninfo unless it exists, as repmgr does for a standby it attaches.
func EnsureSlotAt(ctx context.Context, conninfo, name string) error {
	conn, err := connectTo(ctx, conninfo)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, `SELECT pg_create_physical_replication_slot($1)
  WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)`, name)
	if err != nil {
		return fmt.Errorf("create replication slot %s: %w", name, err)
	}
	return nil
}
