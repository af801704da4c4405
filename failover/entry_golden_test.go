package failover

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/pgquorum/pgquorum/api"
)

// The files of testdata/log-v1 are log entries of every type as pgquorum
// wrote them at version 1 (encoded before the log entries had types of
// their own, apart from the HTTP bodies), in the order a cluster commits
// them; testdata/snapshot-v1.json is the snapshot of the state they make.
// Renaming a JSON field of an HTTP body must not change what a node reads
// from its disk.

// goldenEntries reads testdata/log-v1, in order.
func goldenEntries(t testing.TB) (names []string, data [][]byte) {
	t.Helper()
	return goldenEntriesIn(t, "log-v1")
}

// goldenEntriesIn reads the golden entries of testdata/dir, in order.
func goldenEntriesIn(t testing.TB, dir string) (names []string, data [][]byte) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", dir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("golden log entries: %v (%d files)", err, len(files))
	}
	sort.Strings(files)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, filepath.Base(f))
		data = append(data, bytes.TrimSpace(b))
	}
	return names, data
}

func TestDecodeGoldenEntries(t *testing.T) {
	names, data := goldenEntries(t)
	f := replayGolden(t, names, data)
	snap, err := os.ReadFile(filepath.Join("testdata", "snapshot-v1.json"))
	if err != nil {
		t.Fatal(err)
	}
	restored := NewFSM()
	if err := restored.Restore(readCloser{bytes.NewReader(snap)}); err != nil {
		t.Fatal(err)
	}
	got, want := f.State(), restored.State()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("the golden log applied:\n%+v\nthe golden snapshot restored:\n%+v", got, want)
	}
	sink := &memSink{}
	fs, _ := restored.Snapshot()
	if err := fs.Persist(sink); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(bytes.TrimSpace(sink.Bytes()), bytes.TrimSpace(snap)) {
		t.Errorf("snapshot persisted again differs:\n got %s\nwant %s", sink.Bytes(), snap)
	}
	// A few values, so that two equal but empty states do not pass.
	d, _ := got.Latest()
	sw := got.Switchovers[len(got.Switchovers)-1]
	if got.Epoch != 3 || d.Primary != "n3" || d.AllowedAt == nil || len(got.History) != 3 || got.History[1].PromotedAt == nil ||
		len(got.Fences) != 1 || got.Fences[0].Node != "n3" || sw.Phase != api.PhaseDone || len(sw.Steps) != 4 || got.Paused() ||
		len(got.Deposed) != 1 || got.Deposed[0].Node != "n3" || got.Deposed[0].Epoch != 3 {
		t.Errorf("the golden log makes an unexpected state: %+v", got)
	}
}

type readCloser struct{ *bytes.Reader }

func (readCloser) Close() error { return nil }

// memSink is a raft.SnapshotSink in memory.
type memSink struct{ bytes.Buffer }

func (*memSink) ID() string    { return "golden" }
func (*memSink) Cancel() error { return nil }
func (*memSink) Close() error  { return nil }

var _ raft.SnapshotSink = (*memSink)(nil)

// replayGolden decodes each golden entry, checks that it encodes back to
// the same bytes, and applies it to a new FSM, in order.
func replayGolden(t *testing.T, names []string, data [][]byte) *FSM {
	t.Helper()
	f := NewFSM()
	for i, b := range data {
		e, err := DecodeEntry(b)
		if err != nil {
			t.Fatalf("%s: %v", names[i], err)
		}
		if got := e.Encode(); !bytes.Equal(got, b) {
			t.Errorf("%s: encoded again differs:\n got %s\nwant %s", names[i], got, b)
		}
		if err := apply(f, uint64(i+1), b); err != nil {
			t.Fatalf("%s: apply: %v", names[i], err)
		}
	}
	return f
}
