package failover

import (
	"errors"
	"testing"

	"github.com/pgquorum/pgquorum/repmgr"
)

// TestEnoughRoom: the rejoin touches the data directory only with room
// for crash recovery and pg_rewind; too little is a wait, retried, not a
// failure that asks for a rebuild.
func TestEnoughRoom(t *testing.T) {
	statErr := errors.New("statfs: permission denied")
	tests := []struct {
		name    string
		free    uint64
		err     error
		want    error
		retried bool
	}{
		{name: "a full WAL disk", free: 0, want: errNoRoom, retried: true},
		{name: "one segment free", free: 16 << 20, want: errNoRoom, retried: true},
		{name: "just enough", free: repmgr.RewindRoom},
		{name: "plenty", free: 10 << 30},
		{name: "cannot tell", free: 0, err: statErr, want: statErr, retried: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := enoughRoom(tt.free, "/data/pg_wal", tt.err)
			if !errors.Is(got, tt.want) || (tt.want == nil) != (got == nil) {
				t.Fatalf("enoughRoom(%d) = %v, want %v", tt.free, got, tt.want)
			}
			if got != nil {
				if _, permanent := rejoinFailure(got); permanent == tt.retried {
					t.Errorf("%v filed permanent=%v, want retried", got, permanent)
				}
			}
		})
	}
}

// TestRoomOfADataDirectory: Room reads the free space of a directory and
// of its pg_wal, and passes over a pg_wal that is not there.
func TestRoomOfADataDirectory(t *testing.T) {
	free, where, err := repmgr.Room(t.TempDir())
	if err != nil || free == 0 || where == "" {
		t.Fatalf("Room(a temporary directory) = %d, %q, %v: want its free space", free, where, err)
	}
	if _, _, err := repmgr.Room("/nonexistent/pgquorum-test"); err == nil {
		t.Error("Room of a missing data directory: no error")
	}
}
