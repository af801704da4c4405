package consensus

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgquorum/pgquorum/repmgr"
)

// TestCheckIdentity: every check CheckIdentity makes, with the facts that
// pass it and those that do not. The node is n1 unless a case says
// otherwise; site(3)'s conninfos carry libpq's default port 5432.
func TestCheckIdentity(t *testing.T) {
	dataDir := t.TempDir()
	otherDir := t.TempDir()
	link := filepath.Join(t.TempDir(), "pgdata-link")
	if err := os.Symlink(dataDir, link); err != nil {
		t.Fatal(err)
	}

	nodes := site(3)
	on5433 := site(3)
	on5433[0].Conninfo = "host=n1 port=5433 user=repmgr dbname=repmgr"
	twice := append(site(3), node(4, "n1", repmgr.TypeStandby, "dc1", true))

	primary := func(edit func(*repmgr.Facts)) repmgr.Facts {
		f := primaryFacts(nodes)
		f.Server.Port = 5432
		if edit != nil {
			edit(&f)
		}
		return f
	}
	standby := func(receiverConninfo string) repmgr.Facts {
		return primary(func(f *repmgr.Facts) {
			f.InRecovery = true
			f.WAL = repmgr.WAL{ReceiverStatus: repmgr.StreamingState, SenderHost: "n2", SenderPort: 5432, ReceiverConninfo: receiverConninfo}
		})
	}

	tests := []struct {
		name    string
		id      Identity
		facts   repmgr.Facts
		wantErr []string // substrings of the error; none: no error
	}{
		{name: "matching port passes", id: Identity{Name: "n1"}, facts: primary(nil)},
		{name: "port mismatch names both ports", id: Identity{Name: "n1"},
			facts:   primary(func(f *repmgr.Facts) { f.Server.Port = 5433 }),
			wantErr: []string{"port 5433", `node "n1" is registered on port 5432`}},
		{name: "explicit conninfo port must match", id: Identity{Name: "n1"},
			facts:   primary(func(f *repmgr.Facts) { f.Nodes = on5433 }),
			wantErr: []string{"port 5432", "registered on port 5433"}},
		{name: "explicit conninfo port that matches passes", id: Identity{Name: "n1"},
			facts: primary(func(f *repmgr.Facts) { f.Nodes, f.Server.Port = on5433, 5433 })},
		{name: "unknown server port skips the port check", id: Identity{Name: "n1"},
			facts: primary(func(f *repmgr.Facts) { f.Server.Port = 0 })},

		{name: "same data directory passes", id: Identity{Name: "n1", DataDir: dataDir},
			facts: primary(func(f *repmgr.Facts) { f.Server.DataDir = dataDir })},
		{name: "same data directory with a trailing slash passes", id: Identity{Name: "n1", DataDir: dataDir + "/"},
			facts: primary(func(f *repmgr.Facts) { f.Server.DataDir = dataDir })},
		{name: "data directory through a symlink to the same directory passes", id: Identity{Name: "n1", DataDir: link},
			facts: primary(func(f *repmgr.Facts) { f.Server.DataDir = dataDir })},
		{name: "data directory mismatch refused", id: Identity{Name: "n1", DataDir: dataDir},
			facts:   primary(func(f *repmgr.Facts) { f.Server.DataDir = otherDir }),
			wantErr: []string{"data directory " + otherDir, "repmgr.conf says " + dataDir}},
		{name: "data directory mismatch refused when neither exists here", id: Identity{Name: "n1", DataDir: "/srv/pg/n1"},
			facts:   primary(func(f *repmgr.Facts) { f.Server.DataDir = "/srv/pg/n2" }),
			wantErr: []string{"data directory /srv/pg/n2"}},
		{name: "unreadable data_directory skips the check", id: Identity{Name: "n1", DataDir: dataDir},
			facts: primary(func(f *repmgr.Facts) { f.Server.DataDir = "" })},
		{name: "unknown data directory in repmgr.conf skips the check", id: Identity{Name: "n1"},
			facts: primary(func(f *repmgr.Facts) { f.Server.DataDir = otherDir })},

		{name: "standby streaming under another registered node's name refused", id: Identity{Name: "n1"},
			facts:   standby("user=repmgr host=n2 port=5432 application_name=n3"),
			wantErr: []string{`streams as registered node "n3", not as "n1"`}},
		{name: "standby streaming under its own name passes", id: Identity{Name: "n1"},
			facts: standby("user=repmgr host=n2 port=5432 application_name=n1")},
		{name: "standby streaming under an unregistered name passes", id: Identity{Name: "n1"},
			facts: standby("user=repmgr host=n2 port=5432 application_name=walreceiver")},
		{name: "standby streaming without application_name passes", id: Identity{Name: "n1"},
			facts: standby("user=repmgr host=n2 port=5432")},
		{name: "standby with an unparsable receiver conninfo passes", id: Identity{Name: "n1"},
			facts: standby("application_name")},
		{name: "receiver name is ignored out of recovery", id: Identity{Name: "n1"},
			facts: primary(func(f *repmgr.Facts) { f.WAL.ReceiverConninfo = "application_name=n3" })},

		{name: "own name among the walsenders refused: that is its upstream", id: Identity{Name: "n1"},
			facts:   primary(func(f *repmgr.Facts) { f.Server.Downstreams = []string{"n2", "n1"} }),
			wantErr: []string{`node "n1" streams from`, "its upstream"}},
		{name: "own name among a standby's walsenders refused", id: Identity{Name: "n1"},
			facts:   func() repmgr.Facts { f := standby(""); f.Server.Downstreams = []string{"n1"}; return f }(),
			wantErr: []string{"its upstream"}},
		{name: "other nodes among the walsenders pass", id: Identity{Name: "n1"},
			facts: primary(func(f *repmgr.Facts) { f.Server.Downstreams = []string{"n2", "n3"} })},

		{name: "node_id of repmgr.conf agreeing with the registered row passes", id: Identity{Name: "n1", NodeID: 1},
			facts: primary(nil)},
		{name: "node_id of repmgr.conf disagreeing with the registered row refused", id: Identity{Name: "n1", NodeID: 7},
			facts:   primary(nil),
			wantErr: []string{"repmgr.conf says node_id 7", `node "n1" is registered with node_id 1`}},
		{name: "node_id of repmgr.conf naming another node's row refused", id: Identity{Name: "n1", NodeID: 2},
			facts:   primary(nil),
			wantErr: []string{"node_id 2", "registered with node_id 1"}},
		{name: "name registered twice is ambiguous without node_id", id: Identity{Name: "n1"},
			facts:   primary(func(f *repmgr.Facts) { f.Nodes = twice }),
			wantErr: []string{`node "n1" is registered 2 times`, "node_id [1 4]"}},
		{name: "name registered twice is resolved by node_id", id: Identity{Name: "n1", NodeID: 1},
			facts: primary(func(f *repmgr.Facts) { f.Nodes = twice })},
		{name: "name registered twice, resolved to the row whose port must match", id: Identity{Name: "n1", NodeID: 4},
			facts: primary(func(f *repmgr.Facts) {
				f.Nodes = append(site(3), node(4, "n1", repmgr.TypeStandby, "dc1", true))
				f.Nodes[3].Conninfo = "host=n1 port=5499"
			}),
			wantErr: []string{"registered on port 5499"}},

		{name: "unregistered node passes identity", id: Identity{Name: "n9"}, facts: primary(nil)},
		{name: "unregistered node with a node_id passes identity", id: Identity{Name: "n9", NodeID: 9}, facts: primary(nil)},
		{name: "empty metadata passes identity", id: Identity{Name: "n1"},
			facts: primary(func(f *repmgr.Facts) { f.Nodes = nil })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckIdentity(tt.id, tt.facts)
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("CheckIdentity = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("CheckIdentity = nil, want an error containing %q", tt.wantErr)
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("CheckIdentity = %q, want it to contain %q", err, want)
				}
			}
		})
	}
}

// TestIdentitySelf: the row of repmgr.nodes that is this node.
func TestIdentitySelf(t *testing.T) {
	twice := append(site(3), node(4, "n1", repmgr.TypeStandby, "dc2", true))
	tests := []struct {
		name    string
		id      Identity
		nodes   []repmgr.Node
		wantID  int // 0: not found
		wantErr string
	}{
		{name: "registered name found", id: Identity{Name: "n2"}, nodes: site(3), wantID: 2},
		{name: "registered name with its node_id found", id: Identity{Name: "n2", NodeID: 2}, nodes: site(3), wantID: 2},
		{name: "registered name with another node_id not found", id: Identity{Name: "n2", NodeID: 3}, nodes: site(3)},
		{name: "unregistered name not found", id: Identity{Name: "n9"}, nodes: site(3)},
		{name: "empty metadata not found", id: Identity{Name: "n1"}},
		{name: "name match is exact", id: Identity{Name: "N1"}, nodes: site(3)},
		{name: "name registered twice is ambiguous without node_id", id: Identity{Name: "n1"}, nodes: twice,
			wantErr: `node "n1" is registered 2 times in repmgr.nodes (node_id [1 4])`},
		{name: "name registered twice resolved by node_id to the first row", id: Identity{Name: "n1", NodeID: 1}, nodes: twice, wantID: 1},
		{name: "name registered twice resolved by node_id to the second row", id: Identity{Name: "n1", NodeID: 4}, nodes: twice, wantID: 4},
		{name: "name registered twice with a node_id of neither not found", id: Identity{Name: "n1", NodeID: 7}, nodes: twice},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			me, ok, err := tt.id.Self(tt.nodes)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || ok {
					t.Fatalf("Self = %+v, %v, %v; want not found and an error containing %q", me, ok, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Self error = %v, want none", err)
			}
			if ok != (tt.wantID != 0) || me.ID != tt.wantID {
				t.Fatalf("Self = node_id %d, found %v; want node_id %d, found %v", me.ID, ok, tt.wantID, tt.wantID != 0)
			}
			if ok && me.Name != tt.id.Name {
				t.Errorf("Self = %q, want a row named %q", me.Name, tt.id.Name)
			}
		})
	}
}
