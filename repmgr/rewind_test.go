package repmgr

import (
	"os"
	"path/filepath"
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
