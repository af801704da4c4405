package failover

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/repmgr"
)

// TestRewindHalfDoneInAnotherLanguageStaysGuarded: rewindGuarded
// (rejoin_run.go) keeps the o+x guard after a failed pg_rewind only when
// pg_rewind's output contains the English "rewinding from last common
// checkpoint". pg_rewind's messages are translated (PostgreSQL packages
// ship pg_rewind-15.mo for de, fr, es, ja, ru, ...), and repmgr.Service.Rewind
// runs it with pgquorum's own environment (only Controldata forces
// LC_ALL=C), which under systemd carries LANG from /etc/locale.conf. With
// LANG=de_DE.UTF-8, a pg_rewind that fails after it began copying prints
// "Rückspulen ab letztem gemeinsamen Checkpoint ..." instead, the guard is
// lifted, and the half-rewound directory of the deposed primary (control
// file still "shut down", no standby.signal) is free for systemd's next
// start: it starts as a primary. The fake pg_rewind below speaks German
// only when LANG says so, as the real one does.
func TestRewindHalfDoneInAnotherLanguageStaysGuarded(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	script := `#!/bin/sh
rm -f "` + dir + `/postmaster.pid"
case "$LANG" in
de*) echo "pg_rewind: Server divergierten bei WAL-Position 0/3000060 auf Zeitleiste 1"
     echo "pg_rewind: Rückspulen ab letztem gemeinsamen Checkpoint bei 0/2000060 auf Zeitleiste 1"
     echo half > "` + dir + `/base-file-half-copied"
     echo "pg_rewind: Fehler: konnte Datei nicht lesen"; exit 1 ;;
*)   echo "pg_rewind: servers diverged at WAL location 0/3000060 on timeline 1"
     echo "pg_rewind: rewinding from last common checkpoint at 0/2000060 on timeline 1"
     echo half > "` + dir + `/base-file-half-copied"
     echo "pg_rewind: error: could not read file"; exit 1 ;;
esac
`
	if err := os.WriteFile(filepath.Join(bin, "pg_rewind"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, lang := range []string{"C", "de_DE.UTF-8"} {
		t.Run(lang, func(t *testing.T) {
			lock, _, err := repmgr.TakeDataDir(dir, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = lock.Release() }()
			x := Rejoiner{Service: repmgr.Service{
				Runner: repmgr.Runner{Env: append(os.Environ(), "LANG="+lang, "LC_ALL=")},
				Conf:   repmgr.Config{DataDirectory: dir, PGBinDir: bin}}}
			var out rejoinLog
			_, err = x.rewindGuarded(context.Background(), repmgr.Node{Name: "n2", Conninfo: "host=127.0.0.1 port=1"}, lock,
				func() error { return nil }, &out)
			if err == nil {
				t.Fatal("the fake pg_rewind failed, rewindGuarded says it did not")
			}
			st, serr := os.Stat(dir)
			if serr != nil {
				t.Fatal(serr)
			}
			if st.Mode().Perm()&0o001 == 0 {
				t.Fatalf("LANG=%s: pg_rewind failed after it began changing files (%v), yet the guard was lifted (mode %o): "+
					"the half-rewound directory may be started\n%s", lang, err, st.Mode().Perm(), out.String())
			}
			if err := os.Chmod(dir, 0o700); err != nil { // the next subtest starts unguarded
				t.Fatal(err)
			}
		})
	}
}
