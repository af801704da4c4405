package repmgr

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseLSN(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0/0", 0, true},
		{"0/3000028", 0x3000028, true},
		{"16/B374D848", 0x16<<32 | 0xB374D848, true},
		{"16B374D848", 0, false},
		{"x/1", 0, false},
		{"1/100000000", 0, false}, // a half wider than 32 bits
		{"FFFFFFFF/0", 0, false},  // beyond int64
		{"", 0, false},
	} {
		got, err := ParseLSN(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseLSN(%q) = %d, %v; want %d, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

// controldata is pg_controldata's output of PostgreSQL 15 for a cleanly
// stopped primary, cut to the lines around the ones read.
const controldata = `pg_control version number:            1300
Catalog version number:               202209061
Database system identifier:           7441234567890123456
Database cluster state:               shut down
pg_control last modified:             Fri 27 Nov 2026 17:00:00 UTC
Latest checkpoint location:           0/5000028
Latest checkpoint's REDO location:    0/5000028
Latest checkpoint's REDO WAL file:    000000020000000000000005
Latest checkpoint's TimeLineID:       2
Latest checkpoint's PrevTimeLineID:   2
`

func TestParseControldata(t *testing.T) {
	c, err := ParseControldata(controldata)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Control{State: StateShutDown, Checkpoint: 0x5000028, Timeline: 2}); c != want {
		t.Errorf("got %+v, want %+v", c, want)
	}
	for _, tt := range []struct{ name, out string }{
		{"empty", ""},
		{"no checkpoint", strings.ReplaceAll(controldata, "Latest checkpoint location:", "Other:")},
		{"bad checkpoint", strings.ReplaceAll(controldata, "0/5000028\nLatest checkpoint's REDO location", "nowhere\nLatest checkpoint's REDO location")},
		{"bad timeline", strings.ReplaceAll(controldata, "TimeLineID:       2", "TimeLineID:       two")},
		{"another locale", strings.ReplaceAll(controldata, "Database cluster state", "État de l'instance")},
	} {
		if c, err := ParseControldata(tt.out); err == nil {
			t.Errorf("%s: got %+v, want an error", tt.name, c)
		}
	}
}

func TestServiceCommands(t *testing.T) {
	s := Service{Conf: Config{PGBinDir: "/usr/lib/postgresql/15/bin", DataDirectory: "/var/lib/pg's data", PGCtlOptions: `-l /tmp/pg.log -o "-p 5433"`}}
	if got, want := s.pgctl("-m fast stop"), `'/usr/lib/postgresql/15/bin/pg_ctl' -l /tmp/pg.log -o "-p 5433" -w -D '/var/lib/pg'\''s data' -m fast stop`; got != want {
		t.Errorf("pg_ctl command\n got %s\nwant %s", got, want)
	}
	s.Conf.PGBinDir, s.Conf.PGCtlOptions = "", ""
	if got, want := s.pgctl("start"), `'pg_ctl' -w -D '/var/lib/pg'\''s data' start`; got != want {
		t.Errorf("pg_ctl command without pg_bindir\n got %s\nwant %s", got, want)
	}
}

// TestRunningServer: the data directory says whether a postmaster runs, and
// as a standby, without a connection.
func TestRunningServer(t *testing.T) {
	write := func(t *testing.T, dir, name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	self := os.Getpid()
	// A postmaster's file: PID, directory, start time, port, socket
	// directory, listen address, shared memory key, state.
	pidFile := func(state string) string {
		return fmt.Sprintf("%d\n/data\n1700000000\n5432\n/tmp\n*\n  5432001    0\n%s\n", self, state)
	}
	tests := []struct {
		name  string
		files map[string]string
		want  RunningServer
		err   bool
	}{
		{name: "no postmaster.pid: none runs"},
		{name: "a live postmaster, no signal file: a primary", files: map[string]string{"postmaster.pid": pidFile("ready")},
			want: RunningServer{PID: self}},
		{name: "a live postmaster with standby.signal", files: map[string]string{"postmaster.pid": pidFile("standby"), "standby.signal": ""},
			want: RunningServer{PID: self, Standby: true}},
		{name: "a live postmaster with recovery.signal", files: map[string]string{"postmaster.pid": pidFile("starting"), "recovery.signal": ""},
			want: RunningServer{PID: self, Standby: true}},
		{name: "the rejoin's placeholder (no state line): no server", files: map[string]string{"postmaster.pid": fmt.Sprintf("%d\n/data\n", self)}},
		{name: "a file left by a postmaster that is gone", files: map[string]string{"postmaster.pid": "2147483646\n"}},
		{name: "a garbled file: no live PID", files: map[string]string{"postmaster.pid": "x\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, content := range tt.files {
				write(t, dir, name, content)
			}
			got, err := Service{Conf: Config{DataDirectory: dir}}.RunningServer()
			if (err != nil) != tt.err || got != tt.want {
				t.Errorf("RunningServer() = %+v, %v; want %+v, error %v", got, err, tt.want, tt.err)
			}
		})
	}
}
