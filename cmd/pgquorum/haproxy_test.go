package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/pgquorum/pgquorum/repmgr"
)

func runPgquorum(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), append([]string{"pgquorum"}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

var twoNodes = []string{"--node", "node1=10.0.0.1:5432", "--node", "node2=10.0.0.2:5433:6000"}

func TestHAProxyConfigFlagErrors(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"no source", nil, "want exactly one of --dsn, --repmgr-config or --node"},
		{"two sources", append([]string{"--dsn", "host=x"}, twoNodes...), "want exactly one of --dsn, --repmgr-config or --node"},
		{"bad rw listen", append([]string{"--rw-listen", "5000"}, twoNodes...), "--rw-listen: want host:port"},
		{"ro listen equal to stats listen", append([]string{"--ro-listen", ":7000"}, twoNodes...), `--stats-listen: ":7000" is already the --ro-listen address`},
		{"zero fall", append([]string{"--fall", "0"}, twoNodes...), "--fall: want 1 to 100, got 0"},
		{"zero rise", append([]string{"--rise", "0"}, twoNodes...), "--rise: want 1 to 100, got 0"},
		{"sub-millisecond inter", append([]string{"--inter", "100us"}, twoNodes...), "--inter: want a whole number of milliseconds"},
		{"agent port out of range", append([]string{"--agent-port", "99999"}, twoNodes...), "--agent-port: want 1 to 65535"},
		{"check port out of range", append([]string{"--check-port", "0"}, twoNodes...), "--check-port: want 1 to 65535, got 0"},
		{"relative stats socket", append([]string{"--stats-socket", "h.sock"}, twoNodes...), "--stats-socket: want an absolute path"},
		{"relative server state file", append([]string{"--stats-socket", "/run/h.sock", "--server-state-file", "state"}, twoNodes...), "--server-state-file: want an absolute path"},
		{"server state file without a stats socket", append([]string{"--server-state-file", "/var/lib/haproxy/state"}, twoNodes...), "--server-state-file: needs --stats-socket"},
		{"node without a name", []string{"--node", "10.0.0.1:5432"}, `--node "10.0.0.1:5432": want name=host:pgport[:checkport]`},
		{"node without a port", []string{"--node", "n1=10.0.0.1"}, `--node "n1=10.0.0.1": want name=host:pgport[:checkport]: pgport "" is not a number`},
		{"node with a bad check port", []string{"--node", "n1=10.0.0.1:5432:x"}, `checkport "x" is not a number`},
		{"node with a port out of range", []string{"--node", "n1=10.0.0.1:70000"}, `--node: server 1 ("n1"): Port: want 1 to 65535`},
		{"two nodes of one name", []string{"--node", "n1=a:1", "--node", "n1=b:2"}, `name used twice`},
		{"check port of an unknown node", append([]string{"--node-check-port", "node9=6000"}, twoNodes...), "--node-check-port: no node named node9"},
		{"missing repmgr config", []string{"--repmgr-config", "/nonexistent/repmgr.conf"}, "--repmgr-config: read repmgr config"},
		{"unknown flag", append([]string{"--listen", ":5000"}, twoNodes...), "unknown flag: --listen"},
		{"TLS checks without a CA", append([]string{"--check-ssl"}, twoNodes...), "--ca-file: required with --check-ssl"},
		{"client certificate without TLS checks", append([]string{"--crt", "/etc/haproxy/h.pem"}, twoNodes...), "--check-ssl: required with --ca-file and --crt"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runPgquorum(t, append([]string{"haproxy-config"}, tc.args...)...)
			if code != exitUsage {
				t.Fatalf("exit code %d, want %d (usage); stderr %s", code, exitUsage, errOut)
			}
			if !strings.Contains(errOut, tc.wantErr) {
				t.Fatalf("stderr %q lacks %q", errOut, tc.wantErr)
			}
			if out != "" {
				t.Fatalf("a rejected command wrote a config: %s", out)
			}
		})
	}
}

func TestHAProxyConfigFromNodeFlags(t *testing.T) {
	out := filepath.Join(t.TempDir(), "haproxy.cfg")
	args := append([]string{"haproxy-config", "--output", out, "--inter", "300ms", "--fall", "3", "--rise", "1",
		"--agent-port", "5998", "--node", "v6=[::1]:5432:6001"}, twoNodes...)
	code, stdout, errOut := runPgquorum(t, args...)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if stdout != "" {
		t.Fatalf("with --output, stdout should be empty, got %q", stdout)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(b)
	for _, want := range []string{
		"default-server inter 300ms fall 3 rise 1 ",
		`server node1 10.0.0.1:5432 check port 5999 agent-check agent-port 5998 agent-send "rw\n" agent-inter 300ms`,
		`server node2 10.0.0.2:5433 check port 6000 agent-check agent-port 5998 agent-send "ro\n"`,
		`server v6 [::1]:5432 check port 6001 `,
	} {
		if !strings.Contains(cfg, want) {
			t.Errorf("config lacks %q", want)
		}
	}
}

func TestHAProxyConfigServerStateFile(t *testing.T) {
	args := append([]string{"haproxy-config", "--stats-socket", "/run/haproxy/pgquorum.sock",
		"--server-state-file", "/var/lib/haproxy/pgquorum.state"}, twoNodes...)
	code, cfg, errOut := runPgquorum(t, args...)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	global, defaults, _ := strings.Cut(cfg, "\ndefaults\n")
	if !strings.Contains(global, "\n    server-state-file /var/lib/haproxy/pgquorum.state\n") {
		t.Errorf("global section lacks the server-state-file line:\n%s", global)
	}
	if !strings.Contains(defaults, "\n    load-server-state-from-file global\n") || strings.Contains(global, "load-server-state") {
		t.Errorf("load-server-state-from-file global is not in the defaults section:\n%s", cfg)
	}
}

func TestServersFromNodes(t *testing.T) {
	nodes := []repmgr.Node{
		{Name: "node2", Type: "standby", Location: "dc1", Conninfo: "host=db2 port=5433 user=repmgr"},
		{Name: "node1", Type: "primary", Location: "dc1", Conninfo: "host=db1,db1b user=repmgr"},
		{Name: "witness", Type: "witness", Location: "dc1", Conninfo: "host=w port=5432"},
		{Name: "far", Type: "standby", Location: "dc2", Conninfo: "postgresql://repmgr@db9:5434/repmgr"},
	}
	tests := []struct {
		name       string
		location   string
		checkPorts map[string]int
		want       string // name host port checkport, one server per line
		wantErr    string
	}{
		{"witness left out, sorted by name, default port 5432, first host", "", nil,
			"far db9 5434 5999\nnode1 db1 5432 5999\nnode2 db2 5433 5999", ""},
		{"location filter", "dc2", nil, "far db9 5434 5999", ""},
		{"per-node check port", "dc1", map[string]int{"node2": 6002}, "node1 db1 5432 5999\nnode2 db2 5433 6002", ""},
		{"check port of an unknown node is an error", "", map[string]int{"nod2": 6002}, "", "--node-check-port: no node named nod2"},
		{"empty location is an error", "dc3", nil, "", `no non-witness node in location "dc3"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			servers, err := serversFromNodes(nodes, tc.location, 5999, tc.checkPorts)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var lines []string
			for _, s := range servers {
				lines = append(lines, strings.Join([]string{s.Name, s.Host, strconv.Itoa(s.Port), strconv.Itoa(s.CheckPort)}, " "))
			}
			if got := strings.Join(lines, "\n"); got != tc.want {
				t.Fatalf("servers:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

func TestServersFromNodesRejectsUnixSocketHost(t *testing.T) {
	_, err := serversFromNodes([]repmgr.Node{{Name: "n1", Conninfo: "host=/var/run/postgresql"}}, "", 5999, nil)
	if err == nil || !strings.Contains(err.Error(), "node n1") || !strings.Contains(err.Error(), "--node instead") {
		t.Fatalf("error %v, want one naming node n1 and suggesting --node", err)
	}
}
