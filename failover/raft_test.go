package failover

import (
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/pgquorum/pgquorum/repmgr"
)

func TestAddress(t *testing.T) {
	node := func(name, conninfo string) repmgr.Node {
		return repmgr.Node{ID: 1, Name: name, Type: repmgr.TypeStandby, Conninfo: conninfo}
	}
	tests := []struct {
		name    string
		opts    RaftOptions
		node    repmgr.Node
		want    string
		errText string // a part of the error, when one is expected
	}{
		{name: "the conninfo host with the port of raft_listen",
			opts: RaftOptions{Bind: "0.0.0.0:5997"}, node: node("n1", "host=db1 port=5432 user=repmgr"), want: "db1:5997"},
		{name: "raft_listen with no host gives its port",
			opts: RaftOptions{Bind: ":7000"}, node: node("n1", "host=10.0.0.1 port=5433"), want: "10.0.0.1:7000"},
		{name: "the first of several conninfo hosts",
			opts: RaftOptions{Bind: ":5997"}, node: node("n1", "host=db1,db1b port=5432,5433"), want: "db1:5997"},
		{name: "hostaddr when the conninfo has no host",
			opts: RaftOptions{Bind: ":5997"}, node: node("n1", "hostaddr=192.0.2.7 dbname=repmgr"), want: "192.0.2.7:5997"},
		{name: "an IPv6 conninfo host is bracketed",
			opts: RaftOptions{Bind: "[::]:5997"}, node: node("n1", "host=2001:db8::5 dbname=repmgr"), want: "[2001:db8::5]:5997"},
		{name: "a URI conninfo",
			opts: RaftOptions{Bind: ":5997"}, node: node("n1", "postgresql://repmgr@db3:5432/repmgr"), want: "db3:5997"},
		{name: "raft_peers overrides the conninfo by node name",
			opts: RaftOptions{Bind: ":5997", Peers: map[string]string{"n1": "raft1.example:6000", "n2": "raft2.example:6000"}},
			node: node("n1", "host=db1"), want: "raft1.example:6000"},
		{name: "raft_peers matches node names without regard to case, as viper lower-cases its keys",
			opts: RaftOptions{Bind: ":5997", Peers: map[string]string{"node-a": "raft1.example:6000"}},
			node: node("Node-A", "host=db1"), want: "raft1.example:6000"},
		{name: "raft_peers overrides even a conninfo that gives no address",
			opts: RaftOptions{Bind: "bad", Peers: map[string]string{"n1": "raft1.example:6000"}},
			node: node("n1", "host=/var/run/postgresql"), want: "raft1.example:6000"},
		{name: "raft_peers for other nodes leaves this one to its conninfo",
			opts: RaftOptions{Bind: ":5997", Peers: map[string]string{"n2": "raft2.example:6000"}},
			node: node("n1", "host=db1"), want: "db1:5997"},
		{name: "a Unix socket directory as the conninfo host is an error naming the node",
			opts: RaftOptions{Bind: ":5997"}, node: node("n1", "host=/var/run/postgresql port=5432"),
			errText: `raft address of node "n1": conninfo host "/var/run/postgresql" is a Unix socket directory`},
		{name: "a conninfo with no host is an error",
			opts: RaftOptions{Bind: ":5997"}, node: node("n1", "dbname=repmgr"), errText: "conninfo names no host"},
		{name: "a conninfo that does not parse is an error",
			opts: RaftOptions{Bind: ":5997"}, node: node("n1", "host='db1"), errText: `raft address of node "n1"`},
		{name: "raft_listen with no port is an error naming the key",
			opts: RaftOptions{Bind: "db1"}, node: node("n1", "host=db1"), errText: `failover.raft_listen "db1"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.opts.Address(tt.node)
			if tt.errText != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errText) {
					t.Fatalf("Address = %q, %v; want an error saying %q", got, err, tt.errText)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("Address = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// TestAddressPrefersTheExactName: a raft_peers given as a string
// (PGQUORUM_FAILOVER_RAFT_PEERS="Node1=a:1,node1=b:2") keeps its keys' case,
// so two keys can differ by case only. The exact name must win, every time,
// as in consensus.Addresses: a map's order is random, and two nodes that
// resolved the same peer differently would bootstrap different
// configurations.
func TestAddressPrefersTheExactName(t *testing.T) {
	o := RaftOptions{Bind: ":5997", Peers: map[string]string{"Node1": "upper.example:6000", "node1": "lower.example:6000"}}
	for _, name := range []string{"node1", "Node1"} {
		want := o.Peers[name]
		for i := range 200 { // map order is random: one draw could pass by luck
			got, err := o.Address(repmgr.Node{Name: name, Conninfo: "host=db1"})
			if err != nil || got != want {
				t.Fatalf("draw %d: Address(%s) = %q, %v; want %q, its exact entry", i, name, got, err, want)
			}
		}
	}
}

func TestConfiguration(t *testing.T) {
	nodes := []repmgr.Node{
		{ID: 3, Name: "n3", Type: repmgr.TypeStandby, Conninfo: "host=db3"},
		{ID: 1, Name: "n1", Type: repmgr.TypePrimary, Conninfo: "host=db1"},
		{ID: 9, Name: "w9", Type: repmgr.TypeWitness, Conninfo: "host=witness"},
		{ID: 2, Name: "n2", Type: repmgr.TypeStandby, Active: false, Conninfo: "host=db2"},
	}
	tests := []struct {
		name    string
		opts    RaftOptions
		nodes   []repmgr.Node
		want    []raft.Server
		errText string
	}{
		{name: "every registered node is a voter named by node_name, witnesses and inactive nodes included, sorted by name",
			opts: RaftOptions{Bind: ":5997", Peers: map[string]string{"W9": "10.0.0.9:6000"}}, nodes: nodes,
			want: []raft.Server{
				{Suffrage: raft.Voter, ID: "n1", Address: "db1:5997"},
				{Suffrage: raft.Voter, ID: "n2", Address: "db2:5997"},
				{Suffrage: raft.Voter, ID: "n3", Address: "db3:5997"},
				{Suffrage: raft.Voter, ID: "w9", Address: "10.0.0.9:6000"},
			}},
		{name: "no registered node is an empty configuration", opts: RaftOptions{Bind: ":5997"}},
		{name: "a node with no address fails the whole configuration, naming it",
			opts:    RaftOptions{Bind: ":5997"},
			nodes:   append([]repmgr.Node{{ID: 4, Name: "n4", Conninfo: "host=/tmp"}}, nodes...),
			errText: `raft address of node "n4"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.opts.Configuration(tt.nodes)
			if tt.errText != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errText) || len(got.Servers) != 0 {
					t.Fatalf("Configuration = %+v, %v; want no servers and an error saying %q", got, err, tt.errText)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got.Servers, tt.want) {
				t.Errorf("Configuration = %+v, %v; want %+v", got.Servers, err, tt.want)
			}
		})
	}
}

// TestConfigTimeouts checks the raft timings derived from the options
// against raft's own validation, for the profiles' heartbeats.
func TestConfigTimeouts(t *testing.T) {
	for _, hb := range []time.Duration{50 * time.Millisecond, 500 * time.Millisecond, time.Second, 5 * time.Second} {
		t.Run(hb.String(), func(t *testing.T) {
			o := RaftOptions{Self: "n1", HeartbeatTimeout: hb, ElectionTimeout: hb, LogOutput: io.Discard}
			cfg := o.config()
			if err := raft.ValidateConfig(cfg); err != nil {
				t.Fatalf("raft refuses the config for heartbeat %s: %v", hb, err)
			}
			if cfg.LeaderLeaseTimeout > cfg.HeartbeatTimeout || cfg.CommitTimeout > cfg.HeartbeatTimeout {
				t.Errorf("lease %s, commit %s: both must stay within the heartbeat %s", cfg.LeaderLeaseTimeout, cfg.CommitTimeout, hb)
			}
			if cfg.LocalID != "n1" {
				t.Errorf("LocalID %q, want the node name", cfg.LocalID)
			}
		})
	}
}
