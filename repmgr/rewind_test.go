package repmgr

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestWriteStandbyConfig: the settings pg_rewind copied from the source
// stay, and the standby's come after them (the last setting wins).
func TestWriteStandbyConfig(t *testing.T) {
	dir := t.TempDir()
	auto := filepath.Join(dir, "postgresql.auto.conf")
	if err := os.WriteFile(auto, []byte("primary_conninfo = 'host=old'\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := Service{Conf: Config{DataDirectory: dir}}
	if err := s.WriteStandbyConfig(`host=s2 port=5432 user=repmgr application_name=it's\here`, "repmgr_slot_1"); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(auto)
	if err != nil {
		t.Fatal(err)
	}
	want := "primary_conninfo = 'host=old'\n# rejoined by pgquorum\n" +
		`primary_conninfo = 'host=s2 port=5432 user=repmgr application_name=it''s\\here'` + "\nprimary_slot_name = 'repmgr_slot_1'\n"
	if string(b) != want {
		t.Errorf("postgresql.auto.conf:\n%s\nwant:\n%s", b, want)
	}
	if _, err := os.Stat(filepath.Join(dir, "standby.signal")); err != nil {
		t.Errorf("standby.signal: %v", err)
	}
	if err := s.RemoveStandbySignal(); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveStandbySignal(); err != nil {
		t.Errorf("removing an absent standby.signal: %v", err)
	}
}

func TestCleanlyShutDown(t *testing.T) {
	for state, want := range map[string]bool{StateShutDown: true, StateShutDownInRecovery: true,
		StateInProduction: false, StateInCrashRecovery: false, StateInArchiveRecovery: false} {
		if got := CleanlyShutDown(state); got != want {
			t.Errorf("CleanlyShutDown(%q) = %t", state, got)
		}
	}
}

// TestRewindAndControldataRunUntranslated: pg_rewind's and pg_controldata's
// output is read, so they run with the C locale's messages whatever the
// locale pgquorum runs in (systemd passes LANG from /etc/locale.conf). The
// fakes speak German unless the locale's messages are C, as the real ones
// do.
func TestRewindAndControldataRunUntranslated(t *testing.T) {
	bin := t.TempDir()
	rewind := "#!/bin/sh\necho \"LC_ALL=$LC_ALL LC_MESSAGES=$LC_MESSAGES\"\n"
	controldata := `#!/bin/sh
case "${LC_ALL:-${LC_MESSAGES:-$LANG}}" in
C) printf "Database cluster state:               shut down\nLatest checkpoint location:           0/2000060\nLatest checkpoint's TimeLineID:       1\n" ;;
*) printf "Zustand des Datenbankclusters:        heruntergefahren\nPosition des letzten Checkpoints:     0/2000060\nTimeLineID des letzten Checkpoints:   1\n" ;;
esac
`
	for name, script := range map[string]string{"pg_rewind": rewind, "pg_controldata": controldata} {
		if err := os.WriteFile(filepath.Join(bin, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	env := []string{"PATH=/usr/bin:/bin", "LANG=de_DE.UTF-8", "LC_ALL=de_DE.UTF-8", "LC_MESSAGES=de_DE.UTF-8"}
	s := Service{Runner: Runner{Env: env}, Conf: Config{DataDirectory: t.TempDir(), PGBinDir: bin}}
	const want = "LC_ALL=C LC_MESSAGES=C"
	out, err := s.Rewind(context.Background(), "host=127.0.0.1 port=1")
	if err != nil || strings.TrimSpace(out) != want {
		t.Errorf("pg_rewind ran with %q (%v), want %q", out, err, want)
	}
	if c, err := s.Controldata(context.Background()); err != nil || c.State != StateShutDown || c.Timeline != 1 {
		t.Errorf("pg_controldata under a German locale: %+v, %v", c, err)
	}
	if len(s.Runner.Env) != len(env) || s.Runner.Env[2] != env[2] {
		t.Errorf("Untranslated changed the runner it was called on: %q", s.Runner.Env)
	}
}
