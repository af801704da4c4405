package failover

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/pgquorum/pgquorum/api"
)

// testdata/sync-v1 holds the entries of failover.synchronous as version 1
// writes them, after the decision they follow; snapshot-sync-v1.json is
// the state they make. Like log-v1, they must read back the same forever.
func TestDecodeGoldenSyncEntries(t *testing.T) {
	names, data := goldenEntriesIn(t, "sync-v1")
	f := replayGolden(t, names, data)
	sink := &memSink{}
	fs, _ := f.Snapshot()
	if err := fs.Persist(sink); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "snapshot-sync-v1.json")
	snap, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(bytes.TrimSpace(sink.Bytes()), bytes.TrimSpace(snap)) {
		t.Errorf("the snapshot of the golden sync log differs from %s:\n got %s\nwant %s", path, sink.Bytes(), snap)
	}
	restored := NewFSM()
	if err := restored.Restore(readCloser{bytes.NewReader(snap)}); err != nil {
		t.Fatal(err)
	}
	if got, want := f.State(), restored.State(); !reflect.DeepEqual(got, want) {
		t.Errorf("applied:\n%+v\nrestored:\n%+v", got, want)
	}
	s := f.State().Sync
	if s == nil || strings.Join(s.Members, ",") != "n2" || strings.Join(s.Counted, ",") != "n2" || s.Mode != api.SyncOn || s.StandbyNames() != `ANY 1 ("n2")` {
		t.Errorf("the golden sync log makes an unexpected state: %+v", s)
	}
}

func TestApplySyncRefuses(t *testing.T) {
	_, data := goldenEntriesIn(t, "sync-v1")
	good := LogSync{Epoch: 1, Primary: "n1", Mode: api.SyncStrict, Count: 1, Members: []string{"n2"}, Counted: []string{"n2"}}
	tests := []struct {
		name string
		edit func(*LogSync)
	}{
		{"another epoch", func(s *LogSync) { s.Epoch = 2 }},
		{"another primary", func(s *LogSync) { s.Primary = "n2" }},
		{"mode off", func(s *LogSync) { s.Mode = api.SyncOff }},
		{"k 0", func(s *LogSync) { s.Count = 0 }},
		{"counted outside the set", func(s *LogSync) { s.Counted = []string{"n3"} }},
		{"the primary in its own set", func(s *LogSync) { s.Members = []string{"n1", "n2"} }},
		{"a duplicate", func(s *LogSync) { s.Members = []string{"n2", "n2"} }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := NewFSM()
			if err := apply(f, 1, data[0]); err != nil {
				t.Fatal(err)
			}
			s := good
			s.Members, s.Counted = append([]string(nil), good.Members...), append([]string(nil), good.Counted...)
			tc.edit(&s)
			e := syncEntry(s)
			e.Version = EntryVersion
			if err := apply(f, 2, e.Encode()); !errors.Is(err, ErrRefused) {
				t.Fatalf("applied: %v", err)
			}
			if f.State().Sync != nil {
				t.Fatal("a refused entry changed the state")
			}
		})
	}
	f := NewFSM()
	_ = apply(f, 1, data[0])
	e := syncEntry(good)
	e.Version = EntryVersion
	if err := apply(f, 2, e.Encode()); err != nil {
		t.Fatalf("the good entry: %v", err)
	}
}
