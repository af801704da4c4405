package failover

import (
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/repmgr"
)

// TestOpenRaftRefusesALostRaftDir: a member whose raft_dir was wiped must
// not bootstrap a new group (it could vote twice in a term); one whose
// directory is intact, or that never was a member, starts.
func TestOpenRaftRefusesALostRaftDir(t *testing.T) {
	tests := []struct {
		name    string
		between func(t *testing.T, dir string) // between the first and the second start
		wantErr error
	}{
		{name: "restart with its state", between: func(*testing.T, string) {}},
		{name: "raft_dir wiped", between: func(t *testing.T, dir string) {
			if err := os.RemoveAll(dir); err != nil {
				t.Fatal(err)
			}
		}, wantErr: ErrRaftStateLost},
		{name: "raft_dir wiped, marker removed by the operator (joins afresh)", between: func(t *testing.T, dir string) {
			if err := errors.Join(os.RemoveAll(dir), os.Remove(memberMarker(dir))); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := l.Addr().String()
			l.Close()
			dir := filepath.Join(t.TempDir(), "raft")
			nodes := []repmgr.Node{{ID: 1, Name: "n1", Type: repmgr.TypePrimary, Conninfo: "host=127.0.0.1"}}
			o := RaftOptions{Self: "n1", Dir: dir, Bind: addr, Peers: map[string]string{"n1": addr},
				HeartbeatTimeout: 200 * time.Millisecond, ElectionTimeout: 200 * time.Millisecond, LogOutput: io.Discard}
			first, err := openRaft(o, NewFSM(), nodes)
			if err != nil {
				t.Fatalf("first start: %v", err)
			}
			if err := first.Close(); err != nil {
				t.Fatal(err)
			}
			tt.between(t, dir)
			second, err := openRaft(o, NewFSM(), nodes)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("second start: %v", err)
				}
				_ = second.Close()
				return
			}
			if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), "pgquorum raft-recover") {
				if second != nil {
					_ = second.Close()
				}
				t.Fatalf("second start = %v, want %v naming pgquorum raft-recover", err, tt.wantErr)
			}
		})
	}
}
