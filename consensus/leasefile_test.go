package consensus

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// bootID returns a LeaseFile.BootID that reports id.
func bootID(id string) func() (string, error) {
	return func() (string, error) { return id, nil }
}

// dirEntries lists the names in dir.
func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestLeaseFile(t *testing.T) {
	x := Lease{Holder: "n1", HolderID: 1, Until: 42*time.Hour + 7}
	y := Lease{Holder: "n2", HolderID: 2, Until: 43 * time.Hour}
	bootFailed := errors.New("boot id unreadable")
	tests := []struct {
		name string
		// prepare writes whatever the file holds before Load, in dir.
		prepare   func(t *testing.T, path string)
		loadBoot  func() (string, error)
		want      Lease
		wantFound bool
		wantErr   string
	}{
		{name: "round trip: the saved lease is found",
			prepare:  func(t *testing.T, path string) { mustSave(t, LeaseFile{Path: path, BootID: bootID("boot-a")}, x) },
			loadBoot: bootID("boot-a"), want: x, wantFound: true},
		{name: "second save replaces the first",
			prepare: func(t *testing.T, path string) {
				f := LeaseFile{Path: path, BootID: bootID("boot-a")}
				mustSave(t, f, x)
				mustSave(t, f, y)
			},
			loadBoot: bootID("boot-a"), want: y, wantFound: true},
		{name: "record from another boot is not found",
			prepare:  func(t *testing.T, path string) { mustSave(t, LeaseFile{Path: path, BootID: bootID("boot-a")}, x) },
			loadBoot: bootID("boot-b")},
		{name: "record without a boot id is not found",
			prepare: func(t *testing.T, path string) {
				writeFile(t, path, `{"holder":"n1","holder_id":1,"until_monotonic_ns":1}`)
			},
			loadBoot: bootID("boot-a")},
		{name: "missing file is not found, without error", loadBoot: bootID("boot-a")},
		{name: "missing file is not found even when the boot id is unreadable",
			loadBoot: func() (string, error) { return "", bootFailed }},
		{name: "corrupt file is an error",
			prepare:  func(t *testing.T, path string) { writeFile(t, path, `{"holder": "n1", "until_mono`) },
			loadBoot: bootID("boot-a"), wantErr: "decode "},
		{name: "empty file is an error",
			prepare:  func(t *testing.T, path string) { writeFile(t, path, "") },
			loadBoot: bootID("boot-a"), wantErr: "decode "},
		{name: "unreadable boot id is an error when a record exists",
			prepare:  func(t *testing.T, path string) { mustSave(t, LeaseFile{Path: path, BootID: bootID("boot-a")}, x) },
			loadBoot: func() (string, error) { return "", bootFailed }, wantErr: bootFailed.Error()},
		{name: "unreadable file is an error",
			prepare:  func(t *testing.T, path string) { mustMkdir(t, path) },
			loadBoot: bootID("boot-a"), wantErr: "is a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "vote-lease.json")
			if tt.prepare != nil {
				tt.prepare(t, path)
			}
			l, found, err := LeaseFile{Path: path, BootID: tt.loadBoot}.Load()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || found {
					t.Fatalf("Load = %+v, %v, %v; want not found and an error containing %q", l, found, err, tt.wantErr)
				}
				return
			}
			if err != nil || found != tt.wantFound || l != tt.want {
				t.Fatalf("Load = %+v, %v, %v; want %+v, %v, no error", l, found, err, tt.want, tt.wantFound)
			}
		})
	}
}

// TestLeaseFileSaveReplacesAtomically: Save renames a complete new file over
// the old one, which is never rewritten in place, and leaves no temporary
// file behind, whether it succeeds or fails.
func TestLeaseFileSaveReplacesAtomically(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "vote-lease.json")
	f := LeaseFile{Path: path, BootID: bootID("boot-a")}
	mustSave(t, f, Lease{Holder: "n1", HolderID: 1, Until: time.Hour})
	old, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// A second name for the first file: rewritten in place, it would change.
	keep := filepath.Join(t.TempDir(), "first")
	if err := os.Link(path, keep); err != nil {
		t.Skipf("hard links unsupported here: %v", err)
	}
	for i := range 20 {
		mustSave(t, f, Lease{Holder: "n2", HolderID: 2, Until: time.Duration(i) * time.Hour})
	}
	if kept, err := os.ReadFile(keep); err != nil || string(kept) != string(old) {
		t.Errorf("the first file now holds %q (%v), want it untouched %q: Save wrote in place", kept, err, old)
	}
	if names := dirEntries(t, dir); !slices.Equal(names, []string{"vote-lease.json"}) {
		t.Errorf("directory holds %v after saves, want the lease file alone", names)
	}
	if l, found, err := f.Load(); err != nil || !found || l != (Lease{Holder: "n2", HolderID: 2, Until: 19 * time.Hour}) {
		t.Errorf("Load = %+v, %v, %v; want the last save", l, found, err)
	}
}

func TestLeaseFileSaveErrors(t *testing.T) {
	lease := Lease{Holder: "n1", HolderID: 1, Until: time.Hour}
	tests := []struct {
		name    string
		file    func(t *testing.T, dir string) LeaseFile
		wantErr string
	}{
		{name: "missing directory", file: func(t *testing.T, dir string) LeaseFile {
			return LeaseFile{Path: filepath.Join(dir, "nope", "vote-lease.json"), BootID: bootID("boot-a")}
		}, wantErr: "no such file or directory"},
		{name: "path is a directory: the temporary file is removed", file: func(t *testing.T, dir string) LeaseFile {
			mustMkdir(t, filepath.Join(dir, "vote-lease.json")) // a file cannot be renamed over a directory
			return LeaseFile{Path: filepath.Join(dir, "vote-lease.json"), BootID: bootID("boot-a")}
		}, wantErr: "vote-lease.json"},
		{name: "unreadable boot id", file: func(t *testing.T, dir string) LeaseFile {
			return LeaseFile{Path: filepath.Join(dir, "vote-lease.json"), BootID: func() (string, error) { return "", errors.New("no boot id") }}
		}, wantErr: "no boot id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			f := tt.file(t, dir)
			before := dirEntries(t, dir)
			err := f.Save(lease)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Save = %v, want an error containing %q", err, tt.wantErr)
			}
			if after := dirEntries(t, dir); !slices.Equal(after, before) {
				t.Errorf("directory holds %v after a failed save, want %v as before", after, before)
			}
		})
	}
}

// TestLeaseFileSystemBootID: without an injected BootID the file is bound to
// this machine's boot.
func TestLeaseFileSystemBootID(t *testing.T) {
	if _, err := os.Stat(bootIDFile); err != nil {
		t.Skipf("no %s here: %v", bootIDFile, err)
	}
	path := filepath.Join(t.TempDir(), "vote-lease.json")
	want := Lease{Holder: "n1", HolderID: 1, Until: SystemMonotonic() + time.Second}
	mustSave(t, LeaseFile{Path: path}, want)
	if l, found, err := (LeaseFile{Path: path}).Load(); err != nil || !found || l != want {
		t.Fatalf("Load = %+v, %v, %v; want %+v", l, found, err, want)
	}
	if _, found, err := (LeaseFile{Path: path, BootID: bootID("another boot")}).Load(); err != nil || found {
		t.Fatalf("Load under another boot id = found %v, %v; want not found", found, err)
	}
}

// TestLeaseFileAcrossRestart: a ballot restarted on the same LeaseFile
// honours the lease its predecessor granted; after a reboot it vouches for
// nobody for one lease.
func TestLeaseFileAcrossRestart(t *testing.T) {
	tests := []struct {
		name          string
		boot          string // of the restarted process
		wantHolder    string
		wantRemaining time.Duration
	}{
		{name: "same boot: the recorded lease is honoured up to its horizon", boot: "boot-a", wantHolder: "n1",
			wantRemaining: 2*testLease - testLease/2},
		{name: "another boot: nobody for one lease", boot: "boot-b", wantHolder: "", wantRemaining: testLease},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			path := filepath.Join(t.TempDir(), "vote-lease.json")
			first, err := NewBallot(testLease, clock.Mono, LeaseFile{Path: path, BootID: bootID("boot-a")})
			if err != nil {
				t.Fatal(err)
			}
			clock.Advance(testLease) // the first process's quiet lease
			mustGrant(t, first, "n1", 1)
			clock.Advance(testLease / 2)
			second, err := NewBallot(testLease, clock.Mono, LeaseFile{Path: path, BootID: bootID(tt.boot)})
			if err != nil {
				t.Fatal(err)
			}
			granted, l, remaining, err := second.Grant("n2", 2)
			if granted || err != nil || l.Holder != tt.wantHolder || remaining != tt.wantRemaining {
				t.Fatalf("restarted Grant(n2) = %v, holder %q, %s, %v; want refused, holder %q, %s",
					granted, l.Holder, remaining, err, tt.wantHolder, tt.wantRemaining)
			}
		})
	}
}

func mustSave(t *testing.T, f LeaseFile, l Lease) {
	t.Helper()
	if err := f.Save(l); err != nil {
		t.Fatalf("Save(%+v) = %v", l, err)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func mustMkdir(t *testing.T, path string) {
	t.Helper()
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
}

// TestLeaseFileOwner: a lease file written for another node (two instances
// given the same consensus.state_dir) is refused, not honoured; a record
// of an older version, which names no owner, is taken as ours.
func TestLeaseFileOwner(t *testing.T) {
	me := LeaseOwner{Node: "n1", NodeID: 1, DataDir: "/var/lib/postgresql/15/main"}
	x := Lease{Holder: "n2", HolderID: 2, Until: 5 * time.Second, Saved: time.Second, Length: 1100 * time.Millisecond}
	tests := []struct {
		name    string
		writer  LeaseOwner
		legacy  string // a record of an older version, written as is
		wantErr error
		want    Lease
	}{
		{name: "our own record", writer: me, want: x},
		{name: "another node's record", writer: LeaseOwner{Node: "n3", NodeID: 3, DataDir: "/var/lib/postgresql/15/main"}, wantErr: ErrNotOurLease},
		{name: "same name, another data directory", writer: LeaseOwner{Node: "n1", NodeID: 1, DataDir: "/srv/pg"}, wantErr: ErrNotOurLease},
		{name: "same name, another node_id", writer: LeaseOwner{Node: "n1", NodeID: 4, DataDir: me.DataDir}, wantErr: ErrNotOurLease},
		{name: "a record of an older version names no owner nor length",
			legacy: `{"holder":"n2","holder_id":2,"until_monotonic_ns":5000000000,"saved_monotonic_ns":1000000000,"boot_id":"boot-a"}`,
			want:   Lease{Holder: "n2", HolderID: 2, Until: 5 * time.Second, Saved: time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "vote-lease.json")
			if tt.legacy != "" {
				writeFile(t, path, tt.legacy)
			} else {
				mustSave(t, LeaseFile{Path: path, Owner: tt.writer, BootID: bootID("boot-a")}, x)
			}
			l, found, err := LeaseFile{Path: path, Owner: me, BootID: bootID("boot-a")}.Load()
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || found || !strings.Contains(err.Error(), "state_dir of its own") {
					t.Fatalf("Load = %+v, %v, %v; want %v naming the fix", l, found, err, tt.wantErr)
				}
				return
			}
			if err != nil || !found || l != tt.want {
				t.Fatalf("Load = %+v, %v, %v; want %+v", l, found, err, tt.want)
			}
		})
	}
}
