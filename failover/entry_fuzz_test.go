package failover

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/hashicorp/raft"
)

// FuzzDecodeEntry checks, for any bytes a log could hold:
//   - DecodeEntry never panics; an entry it accepts encodes to bytes that
//     decode to an entry encoding the same again (the format is stable);
//   - Apply never panics, on an empty FSM or on one holding the state the
//     golden log makes; an entry it refuses leaves the state as it was, the
//     same on every node.
//
// Seeded with the golden entries of testdata/log-v1; each input is one
// decode and two applies, so the seeds run in milliseconds.
func FuzzDecodeEntry(f *testing.F) {
	_, golden := goldenEntries(f)
	for _, b := range golden {
		f.Add(b)
	}
	_, syncGolden := goldenEntriesIn(f, "sync-v1") // failover.synchronous's entries
	for _, b := range syncGolden {
		f.Add(b)
	}
	for _, s := range []string{`{"v":1,"type":"sync"}`, `{"v":1,"type":"sync","sync":{"epoch":3,"primary":"n3","mode":"on","count":0}}`,
		`{"v":1,"type":"sync","sync":{"epoch":3,"primary":"n3","mode":"strict","count":1,"members":["n1"],"counted":["n2"]}}`} {
		f.Add([]byte(s))
	}
	for _, s := range []string{``, `{}`, `null`, `{"v":1}`, `{"v":1,"type":"decision"}`, `{"v":1,"type":"decision","decision":null}`,
		`{"v":1,"type":"switchover","switchover":{"id":0,"phase":"promoting"}}`, `{"v":2,"type":"pause","pause":{"paused":true}}`,
		`{"v":1,"type":"fence","fence":{"node":""}}`, `{"v":1,"type":"allow","allow":{"epoch":18446744073709551615}}`, `[1,2]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := DecodeEntry(b)
		if err == nil {
			once := e.Encode()
			again, err := DecodeEntry(once)
			if err != nil {
				t.Fatalf("%s decodes, but encoded again as %s it does not: %v", b, once, err)
			}
			if twice := again.Encode(); !bytes.Equal(once, twice) {
				t.Fatalf("unstable encoding of %s:\n%s\n%s", b, once, twice)
			}
		}
		fresh := NewFSM()
		full := NewFSM()
		for i, g := range golden {
			if err := apply(full, uint64(i+1), g); err != nil {
				t.Fatal(err)
			}
		}
		for _, fsm := range []*FSM{fresh, full} {
			before := fsm.State()
			res := fsm.Apply(&raft.Log{Index: 1000, Term: 1, Type: raft.LogCommand, Data: b})
			if _, refused := res.(error); refused && !reflect.DeepEqual(before, fsm.State()) {
				t.Fatalf("%s was refused (%v) but changed the state", b, res)
			}
		}
	})
}
