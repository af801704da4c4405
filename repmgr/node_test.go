package repmgr

import "testing"

func TestNamedPrimary(t *testing.T) {
	n := func(id int, name, typ string, active bool) Node {
		return Node{ID: id, Name: name, Type: typ, Active: active, Conninfo: "host=" + name}
	}
	oldPrimary := n(1, "n1", TypePrimary, false) // after a failover
	tests := []struct {
		name   string
		nodes  []Node
		want   string
		wantOK bool
	}{
		{name: "no nodes names none", nodes: nil},
		{name: "no active primary names none", nodes: []Node{n(2, "n2", TypeStandby, true), oldPrimary}},
		{name: "one active primary", nodes: []Node{n(1, "n1", TypePrimary, true), n(2, "n2", TypeStandby, true)}, want: "n1", wantOK: true},
		{name: "two active primaries name none", nodes: []Node{n(1, "n1", TypePrimary, true), n(3, "n3", TypePrimary, true)}},
		{name: "inactive old primary is ignored", nodes: []Node{oldPrimary, n(2, "n2", TypePrimary, true), n(3, "n3", TypeStandby, true)},
			want: "n2", wantOK: true},
		{name: "active witness is not a primary", nodes: []Node{n(9, "w", TypeWitness, true)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := NamedPrimary(tt.nodes)
			if got.Name != tt.want || ok != tt.wantOK {
				t.Errorf("NamedPrimary = %q, %v; want %q, %v", got.Name, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestNodeEndpoint(t *testing.T) {
	tests := []struct {
		conninfo string
		host     string
		port     int
		wantErr  bool
	}{
		{conninfo: "host=db1 port=5433 user=repmgr", host: "db1", port: 5433},
		{conninfo: "host=db1 user=repmgr", host: "db1", port: 5432},
		{conninfo: "postgres://repmgr@10.0.0.2:6432/repmgr", host: "10.0.0.2", port: 6432},
		{conninfo: "host=db1,db2 port=5433,5434", host: "db1", port: 5433},
		{conninfo: "host=/run/postgresql", wantErr: true},
		{conninfo: "host=db1 port=x", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.conninfo, func(t *testing.T) {
			host, port, err := Node{Name: "n", Conninfo: tt.conninfo}.Endpoint()
			if (err != nil) != tt.wantErr || host != tt.host || port != tt.port {
				t.Errorf("Endpoint = %q, %d, %v; want %q, %d, error %v", host, port, err, tt.host, tt.port, tt.wantErr)
			}
		})
	}
}
