package consensus

import (
	"strings"
	"testing"

	"github.com/pgquorum/pgquorum/repmgr"
)

func TestAddressesOf(t *testing.T) {
	tests := []struct {
		name      string
		addresses Addresses
		conninfo  string
		node      string
		want      string
		wantErr   string
	}{
		{name: "conninfo host with the common port", addresses: Addresses{Port: 5999},
			node: "n1", conninfo: "host=db1 port=5432 user=repmgr", want: "db1:5999"},
		{name: "IPv6 host is bracketed", addresses: Addresses{Port: 5999}, node: "n1", conninfo: "host=::1 port=5432", want: "[::1]:5999"},
		{name: "URI conninfo", addresses: Addresses{Port: 6000}, node: "n1", conninfo: "postgres://repmgr@10.1.2.3:5432/repmgr", want: "10.1.2.3:6000"},
		{name: "exact override wins over conninfo", addresses: Addresses{Port: 5999, Overrides: map[string]string{"n1": "127.0.0.5:7000"}},
			node: "n1", conninfo: "host=db1", want: "127.0.0.5:7000"},
		{name: "override matched without regard to case", addresses: Addresses{Port: 5999, Overrides: map[string]string{"node1": "127.0.0.5:7000"}},
			node: "Node1", conninfo: "host=db1", want: "127.0.0.5:7000"},
		{name: "exact override preferred to a case-folded one", addresses: Addresses{Port: 5999,
			Overrides: map[string]string{"NODE1": "127.0.0.9:1", "Node1": "127.0.0.5:7000", "node1": "127.0.0.8:1"}},
			node: "Node1", want: "127.0.0.5:7000"},
		{name: "override for another node is ignored", addresses: Addresses{Port: 5999, Overrides: map[string]string{"n2": "127.0.0.5:7000"}},
			node: "n1", conninfo: "host=db1", want: "db1:5999"},
		{name: "unix socket host is an error", addresses: Addresses{Port: 5999}, node: "n1",
			conninfo: "host=/var/run/postgresql", wantErr: `address of node "n1": conninfo host "/var/run/postgresql" is a Unix socket directory`},
		{name: "no host is an error", addresses: Addresses{Port: 5999}, node: "n1", conninfo: "user=repmgr", wantErr: `address of node "n1"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.addresses.Of(repmgr.Node{Name: tt.node, Conninfo: tt.conninfo})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Of = %q, %v; want an error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("Of = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
