package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/pgquorum/pgquorum/internal/buildinfo"
)

func TestVersionFlagAndCommandPrintTheSameIdentity(t *testing.T) {
	code, flag, _ := runCmd(t, "--version")
	if code != exitOK {
		t.Fatalf("--version exit %d", code)
	}
	code, cmd, _ := runCmd(t, "version")
	if code != exitOK {
		t.Fatalf("version exit %d", code)
	}
	if flag != cmd {
		t.Errorf("--version printed %q, version printed %q", flag, cmd)
	}
	for _, want := range []string{"pgquorum ", "commit: ", "built: ", "go:      " + runtime.Version()} {
		if !strings.Contains(cmd, want) {
			t.Errorf("version output %q lacks %q", cmd, want)
		}
	}
}

func TestVersionJSONHasEveryField(t *testing.T) {
	code, out, errOut := runCmd(t, "version", "--json")
	if code != exitOK {
		t.Fatalf("version --json exit %d: %s", code, errOut)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("version --json printed %q: %v", out, err)
	}
	for _, k := range []string{"version", "revision", "date", "modified", "goversion"} {
		if _, ok := got[k]; !ok {
			t.Errorf("version --json lacks %q: %s", k, out)
		}
	}
	var info buildinfo.Info
	if err := json.Unmarshal([]byte(out), &info); err != nil || info != buildinfo.Get() {
		t.Errorf("version --json = %+v (%v), want buildinfo.Get() = %+v", info, err, buildinfo.Get())
	}
}

func TestManWritesAPagePerCommand(t *testing.T) {
	dir := t.TempDir()
	if code, _, errOut := runCmd(t, "man", dir); code != exitOK {
		t.Fatalf("man exit %d: %s", code, errOut)
	}
	for _, page := range []string{"pgquorum.1", "pgquorum-serve.1", "pgquorum-version.1"} {
		b, err := os.ReadFile(filepath.Join(dir, page))
		if err != nil || !strings.Contains(string(b), ".TH \"PGQUORUM\" \"1\"") {
			t.Errorf("%s: %v, %.60q", page, err, b)
		}
	}
}
