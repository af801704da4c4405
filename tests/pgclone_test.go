package tests

// How the version matrix clones a standby without pg_basebackup, which the
// npm packages of PostgreSQL 16–18 do not ship, and the file helpers it needs.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgquorum/pgquorum/internal/lab"
)

// cloneStandby clones the primary into the standby as pg_basebackup -R
// would, starts it, waits until it streams, and registers it.
func (p *pgPair) cloneStandby(ctx context.Context, owner *user.User) error {
	pr, st := p.Primary, p.Standby
	slot := fmt.Sprintf("repmgr_slot_%d", st.ID)
	conn, err := pgx.Connect(ctx, pr.Conninfo())
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	// The slot, reserved at once, keeps the WAL from the backup's start
	// until the standby streams it.
	if _, err := conn.Exec(ctx, "SELECT pg_create_physical_replication_slot($1, true)", slot); err != nil {
		return fmt.Errorf("create slot: %w", err)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_backup_start('pgquorum version matrix', true)"); err != nil {
		return fmt.Errorf("pg_backup_start: %w", err)
	}
	copyErr := copyDataDir(pr.DataDir(), st.DataDir(), owner)
	var label string
	if err := conn.QueryRow(ctx, "SELECT labelfile FROM pg_backup_stop(false)").Scan(&label); err != nil {
		return fmt.Errorf("pg_backup_stop: %w", err)
	}
	if copyErr != nil {
		return copyErr
	}
	if err := writeOwned(owner, filepath.Join(st.DataDir(), "backup_label"), label); err != nil {
		return err
	}
	if err := writeOwned(owner, filepath.Join(st.DataDir(), "standby.signal"), ""); err != nil {
		return err
	}
	if err := appendFile(filepath.Join(st.DataDir(), "postgresql.auto.conf"), standbyConf(p.Major, pr, st, slot)); err != nil {
		return err
	}
	if err := st.Start(ctx); err != nil {
		return err
	}
	err = lab.WaitFor(ctx, 30*time.Second, st.Name+" streaming from "+pr.Name, func(ctx context.Context) error {
		var n int
		err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_stat_replication WHERE application_name = $1 AND state = 'streaming'", st.Name).Scan(&n)
		if err == nil && n != 1 {
			err = fmt.Errorf("%d streaming walsenders for %s", n, st.Name)
		}
		return err
	})
	if err != nil {
		return err
	}
	up := pr.ID
	return p.register(ctx, st, "standby", &up)
}

// standbyConf is what pg_basebackup -R and repmgr's clone write, plus, from
// 17 on, slot synchronization (sync_replication_slots), which needs dbname
// in primary_conninfo, hot_standby_feedback and logical WAL.
func standbyConf(major int, pr, st *pgServer, slot string) string {
	conninfo := fmt.Sprintf("host=127.0.0.1 port=%d user=repmgr application_name=%s", pr.Port, st.Name)
	conf := ""
	if major >= 17 {
		conninfo += " dbname=repmgr"
		conf += "sync_replication_slots = on\nhot_standby_feedback = on\n"
	}
	return conf + fmt.Sprintf("primary_conninfo = '%s'\nprimary_slot_name = '%s'\n", conninfo, slot)
}

// Directories whose contents a base backup leaves out, as pg_basebackup
// does: pg_wal keeps its subdirectories (archive_status, summaries), the
// others nothing.
var (
	skipDirContents = map[string]bool{"pg_replslot": true, "pg_stat_tmp": true, "pg_dynshmem": true,
		"pg_notify": true, "pg_serial": true, "pg_snapshots": true, "pg_subtrans": true}
	skipFiles = map[string]bool{"postmaster.pid": true, "postmaster.opts": true, "backup_label": true,
		"tablespace_map": true, "standby.signal": true, "recovery.signal": true}
)

// copyDataDir copies a running server's data directory between
// pg_backup_start and pg_backup_stop. Files that vanish meanwhile are
// skipped: WAL replay from the backup's start makes the copy consistent.
func copyDataDir(src, dst string, owner *user.User) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		parent := filepath.Dir(rel)
		switch {
		case skipDirContents[parent] && d.IsDir():
			return fs.SkipDir
		case d.IsDir():
			if err := os.Mkdir(filepath.Join(dst, rel), 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
				return err
			}
			return chownPath(owner, filepath.Join(dst, rel))
		case skipDirContents[parent], skipFiles[rel], strings.HasPrefix(rel, "pg_wal"+string(filepath.Separator)),
			d.Name() == "pg_internal.init", !d.Type().IsRegular():
			return nil
		}
		return copyOwnedFile(path, filepath.Join(dst, rel), owner)
	})
}

func copyOwnedFile(src, dst string, owner *user.User) error {
	in, err := os.Open(src)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer func() { _ = in.Close() }() // read only
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close() // the copy failed already
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return chownPath(owner, dst)
}

func writeOwned(owner *user.User, path, content string) error {
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		return err
	}
	return chownPath(owner, path)
}

func appendFile(path, content string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(content); err != nil {
		_ = f.Close() // the write failed already
		return err
	}
	return f.Close()
}

// logTail logs the last n lines of a server's log, for a failed test.
func logTail(t *testing.T, what, path string, n int) {
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	t.Logf("%s, last %d lines:\n%s", what, min(n, len(lines)), strings.Join(lines[max(0, len(lines)-n):], "\n"))
}

// freeLoopbackPort asks the kernel for an unused loopback port.
func freeLoopbackPort() (int, error) {
	// lab.FreePort never hands out a port twice in this process: the kernel
	// may offer a just-released port again before its new owner bound it
	// (seen: a PG 17 pair's raft_listen given node1's HTTP port).
	return lab.FreePort()
}

func chownPath(u *user.User, path string) error {
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return os.Chown(path, uid, gid)
}
