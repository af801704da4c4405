package haproxy

import (
	"crypto/x509"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/auth/testpki"
)

func threeServers() []Server {
	return []Server{
		{Name: "node1", Host: "10.0.0.1", Port: 5432, CheckPort: 5999},
		{Name: "node2", Host: "10.0.0.2", Port: 5432, CheckPort: 5999},
		{Name: "db-3.invalid", Host: "db-3.invalid", Port: 5433, CheckPort: 6000},
	}
}

// haproxyCheck runs "haproxy -c" on cfg: the real parser is the judge of
// what Render writes.
func haproxyCheck(t *testing.T, cfg string) {
	t.Helper()
	if testing.Short() {
		return
	}
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		t.Fatalf("haproxy is needed to validate rendered configs (or run with -short): %v", err)
	}
	path := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "-c", "-f", path).CombinedOutput()
	if err != nil {
		t.Fatalf("haproxy -c rejected the rendered config: %v\n%s\n--- config ---\n%s", err, out, cfg)
	}
}

// section returns the lines of "listen name", trimmed.
func section(cfg, name string) []string {
	var out []string
	in := false
	for _, l := range strings.Split(cfg, "\n") {
		if !strings.HasPrefix(l, " ") && strings.TrimSpace(l) != "" {
			in = strings.TrimSpace(l) == "listen "+name
			continue
		}
		if in && strings.TrimSpace(l) != "" {
			out = append(out, strings.TrimSpace(l))
		}
	}
	return out
}

func hasLine(lines []string, want string) bool {
	for _, l := range lines {
		if l == want {
			return true
		}
	}
	return false
}

func TestRenderValidConfigs(t *testing.T) {
	agentOpts := DefaultOptions()
	agentOpts.AgentPort = 5998
	agentOpts.AgentInter = 500 * time.Millisecond
	fast := DefaultOptions()
	fast.RWListen, fast.ROListen, fast.StatsListen = "127.0.0.1:15000", "127.0.0.1:15001", "[::1]:17000"
	fast.Inter, fast.Fall, fast.Rise = 300*time.Millisecond, 2, 1
	fast.StatsSocket = "/run/haproxy/pgquorum.sock"
	perServerAgent := threeServers()
	for i := range perServerAgent {
		perServerAgent[i].AgentPort = 7001 + i
	}
	v6 := []Server{{Name: "v6", Host: "::1", Port: 5432, CheckPort: 5999}}

	tests := []struct {
		name    string
		opts    Options
		servers []Server
		rw, ro  []string // lines each listener must hold
		global  []string // substrings the whole config must hold
	}{
		{
			name: "defaults: rw expects 200, ro expects 202, both cut sessions of servers marked down", opts: DefaultOptions(), servers: threeServers(),
			rw: []string{"bind :5000", "option httpchk GET /state", "http-check expect status 200",
				"default-server inter 1s fall 2 rise 2 on-marked-down shutdown-sessions weight 100 init-addr libc,none",
				"server node1 10.0.0.1:5432 check port 5999", "server db-3.invalid db-3.invalid:5433 check port 6000"},
			ro: []string{"bind :5001", "balance leastconn", "option httpchk GET /state", "http-check expect status 202",
				"server node2 10.0.0.2:5432 check port 5999"},
			global: []string{"listen stats", "bind :7000", "stats enable"},
		},
		{
			name: "agent port: each listener sends its role and the agent interval", opts: agentOpts, servers: threeServers(),
			rw: []string{`server node1 10.0.0.1:5432 check port 5999 agent-check agent-port 5998 agent-send "rw\n" agent-inter 500ms`},
			ro: []string{`server node1 10.0.0.1:5432 check port 5999 agent-check agent-port 5998 agent-send "ro\n" agent-inter 500ms`},
		},
		{
			name: "per-server agent ports override the default and agent-inter falls back to inter", opts: fast, servers: perServerAgent,
			rw: []string{"bind 127.0.0.1:15000", "default-server inter 300ms fall 2 rise 1 on-marked-down shutdown-sessions weight 100 init-addr libc,none",
				`server node2 10.0.0.2:5432 check port 5999 agent-check agent-port 7002 agent-send "rw\n" agent-inter 300ms`},
			ro:     []string{`server db-3.invalid db-3.invalid:5433 check port 6000 agent-check agent-port 7003 agent-send "ro\n" agent-inter 300ms`},
			global: []string{"stats socket /run/haproxy/pgquorum.sock mode 600 level admin", "bind [::1]:17000"},
		},
		{
			name: "IPv6 server address is bracketed", opts: DefaultOptions(), servers: v6,
			rw: []string{"server v6 [::1]:5432 check port 5999"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Render(tc.opts, tc.servers)
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			rw, ro := section(cfg, "postgres_rw"), section(cfg, "postgres_ro")
			for _, want := range tc.rw {
				if !hasLine(rw, want) {
					t.Errorf("read-write listener lacks %q; has:\n%s", want, strings.Join(rw, "\n"))
				}
			}
			for _, want := range tc.ro {
				if !hasLine(ro, want) {
					t.Errorf("read-only listener lacks %q; has:\n%s", want, strings.Join(ro, "\n"))
				}
			}
			for _, want := range tc.global {
				if !strings.Contains(cfg, want) {
					t.Errorf("config lacks %q", want)
				}
			}
			if !tc.opts.hasAgent(tc.servers) && strings.Contains(cfg, "agent-check") {
				t.Errorf("no agent port configured, yet the config has an agent-check")
			}
			haproxyCheck(t, cfg)
		})
	}
}

func (o Options) hasAgent(servers []Server) bool {
	return o.AgentPort != 0 || len(servers) > 0 && servers[0].AgentPort != 0
}

func TestRenderRejectsBadInput(t *testing.T) {
	mod := func(f func(*Options)) Options {
		o := DefaultOptions()
		f(&o)
		return o
	}
	withServer := func(f func(*Server)) []Server {
		s := threeServers()
		f(&s[1])
		return s
	}
	tests := []struct {
		name    string
		opts    Options
		servers []Server
		wantErr string
	}{
		{"rw listen without port", mod(func(o *Options) { o.RWListen = "127.0.0.1" }), threeServers(), "RWListen: want host:port"},
		{"ro listen with port 0", mod(func(o *Options) { o.ROListen = ":0" }), threeServers(), "ROListen: want host:port"},
		{"stats listen with a blank", mod(func(o *Options) { o.StatsListen = ":70 00" }), threeServers(), "StatsListen: want host:port"},
		{"ro listen equal to rw listen", mod(func(o *Options) { o.ROListen = o.RWListen }), threeServers(), `ROListen: ":5000" is already the RWListen address`},
		{"zero inter", mod(func(o *Options) { o.Inter = 0 }), threeServers(), "Inter: want a whole number of milliseconds"},
		{"sub-millisecond inter", mod(func(o *Options) { o.Inter = 1500 * time.Microsecond }), threeServers(), "Inter: want a whole number of milliseconds"},
		{"negative agent inter", mod(func(o *Options) { o.AgentInter = -time.Second }), threeServers(), "AgentInter: want"},
		{"zero fall", mod(func(o *Options) { o.Fall = 0 }), threeServers(), "Fall: want 1 to 100, got 0"},
		{"zero rise", mod(func(o *Options) { o.Rise = 0 }), threeServers(), "Rise: want 1 to 100, got 0"},
		{"agent port out of range", mod(func(o *Options) { o.AgentPort = 70000 }), threeServers(), "AgentPort: want 1 to 65535"},
		{"relative stats socket", mod(func(o *Options) { o.StatsSocket = "haproxy.sock" }), threeServers(), "StatsSocket: want an absolute path"},
		{"relative server state file", mod(func(o *Options) { o.StatsSocket, o.ServerStateFile = "/run/h.sock", "state" }), threeServers(), "ServerStateFile: want an absolute path"},
		{"server state file with a blank", mod(func(o *Options) { o.StatsSocket, o.ServerStateFile = "/run/h.sock", "/var/lib/my state" }), threeServers(), "ServerStateFile: want an absolute path"},
		{"server state file with a backslash", mod(func(o *Options) { o.StatsSocket, o.ServerStateFile = "/run/h.sock", `/var/lib/a\b` }), threeServers(), "ServerStateFile: want an absolute path"},
		{"server state file without a stats socket", mod(func(o *Options) { o.ServerStateFile = "/var/lib/haproxy/state" }), threeServers(), "ServerStateFile: needs StatsSocket"},
		{"server state file at the stats socket path", mod(func(o *Options) { o.StatsSocket, o.ServerStateFile = "/run/h.sock", "/run/h.sock" }), threeServers(), `ServerStateFile: "/run/h.sock" is already the StatsSocket path`},
		{"zero client timeout", mod(func(o *Options) { o.TimeoutClient = 0 }), threeServers(), "TimeoutClient: want"},
		{"no servers", DefaultOptions(), nil, "servers: none to render"},
		{"server name with a blank", DefaultOptions(), withServer(func(s *Server) { s.Name = "node 2" }), `server 2 ("node 2"): name must be`},
		{"duplicate server name", DefaultOptions(), withServer(func(s *Server) { s.Name = "node1" }), `server 2 ("node1"): name used twice`},
		{"server without host", DefaultOptions(), withServer(func(s *Server) { s.Host = "" }), `server 2 ("node2"): want a host name or IP address`},
		{"unix socket host", DefaultOptions(), withServer(func(s *Server) { s.Host = "/var/run/postgresql" }), `want a host name or IP address, got "/var/run/postgresql"`},
		{"server port 0", DefaultOptions(), withServer(func(s *Server) { s.Port = 0 }), `server 2 ("node2"): Port: want 1 to 65535, got 0`},
		{"check port 0", DefaultOptions(), withServer(func(s *Server) { s.CheckPort = 0 }), `server 2 ("node2"): CheckPort: want 1 to 65535, got 0`},
		{"agent port on one server only", DefaultOptions(), withServer(func(s *Server) { s.AgentPort = 5998 }), "AgentPort set on 1 of 3 servers"},
		{"TLS checks without a CA", mod(func(o *Options) { o.CheckSSL = true }), threeServers(), "CAFile: required with CheckSSL"},
		{"a CA without TLS checks", mod(func(o *Options) { o.CAFile = "/etc/haproxy/ca.crt" }), threeServers(), "CheckSSL: required with CAFile and CrtFile"},
		{"a client certificate without TLS checks", mod(func(o *Options) { o.CrtFile = "/etc/haproxy/h.pem" }), threeServers(), "CheckSSL: required with CAFile and CrtFile"},
		{"CA path with a blank", mod(func(o *Options) { o.CheckSSL, o.CAFile = true, "/etc/my ca.crt" }), threeServers(), "CAFile: want an absolute path"},
		{"relative client certificate", mod(func(o *Options) { o.CheckSSL, o.CAFile, o.CrtFile = true, "/ca.crt", "h.pem" }), threeServers(), "CrtFile: want an absolute path"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Render(tc.opts, tc.servers)
			if err == nil {
				t.Fatalf("Render accepted the input; want an error containing %q; got:\n%s", tc.wantErr, cfg)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %q does not contain %q", err, tc.wantErr)
			}
		})
	}
}

func TestRenderReportsEveryProblemAtOnce(t *testing.T) {
	o := DefaultOptions()
	o.Fall, o.Rise = 0, 0
	_, err := Render(o, nil)
	for _, want := range []string{"Fall:", "Rise:", "servers: none"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
}

func TestHAProxyTimeUsesTheLargestExactUnit(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{300 * time.Millisecond, "300ms"},
		{1500 * time.Millisecond, "1500ms"},
		{2 * time.Second, "2s"},
		{90 * time.Second, "90s"},
		{30 * time.Minute, "30m"},
		{2 * time.Hour, "2h"},
	}
	for _, tc := range tests {
		if got := haproxyTime(tc.d); got != tc.want {
			t.Errorf("haproxyTime(%s) = %q, want %q", tc.d, got, tc.want)
		}
	}
}

// TestValidateErrorsNameTheirField lets callers map each problem to their
// own flag or key.
func TestValidateErrorsNameTheirField(t *testing.T) {
	o := DefaultOptions()
	o.Inter, o.RWListen = 0, "nowhere"
	joined, ok := o.Validate().(interface{ Unwrap() []error })
	if !ok {
		t.Fatal("Validate did not return joined errors")
	}
	var fields []string
	for _, err := range joined.Unwrap() {
		var fe *FieldError
		if !errors.As(err, &fe) {
			t.Fatalf("%v is not a *FieldError", err)
		}
		fields = append(fields, fe.Field)
	}
	if strings.Join(fields, ",") != "RWListen,Inter" {
		t.Fatalf("fields %v, want RWListen,Inter", fields)
	}
}

// block returns the trimmed lines of the top-level section whose header is
// exactly header ("global", "defaults", "listen stats").
func block(cfg, header string) []string {
	var out []string
	in := false
	for _, l := range strings.Split(cfg, "\n") {
		if strings.TrimSpace(l) == "" || strings.HasPrefix(strings.TrimSpace(l), "#") {
			continue
		}
		if !strings.HasPrefix(l, " ") {
			in = l == header
			continue
		}
		if in {
			out = append(out, strings.TrimSpace(l))
		}
	}
	return out
}

func TestRenderServerStateFile(t *testing.T) {
	withState := DefaultOptions()
	withState.StatsSocket = "/run/haproxy/pgquorum.sock"
	withState.ServerStateFile = "/var/lib/haproxy/pgquorum.state"
	socketOnly := DefaultOptions()
	socketOnly.StatsSocket = "/run/haproxy/pgquorum.sock"

	tests := []struct {
		name             string
		opts             Options
		global, defaults []string // lines each section must hold
		absentAnywhere   []string // substrings no line may hold
	}{
		{
			name:     "state file set: global names it, defaults load it for every listener",
			opts:     withState,
			global:   []string{"server-state-file /var/lib/haproxy/pgquorum.state", "stats socket /run/haproxy/pgquorum.sock mode 600 level admin"},
			defaults: []string{"load-server-state-from-file global", "mode tcp"},
		},
		{
			name:           "no state file: neither directive is rendered",
			opts:           socketOnly,
			global:         []string{"stats socket /run/haproxy/pgquorum.sock mode 600 level admin"},
			absentAnywhere: []string{"server-state", "load-server-state-from-file"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Render(tc.opts, threeServers())
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			for _, s := range []struct {
				header string
				want   []string
			}{{"global", tc.global}, {"defaults", tc.defaults}} {
				lines := block(cfg, s.header)
				for _, want := range s.want {
					if !hasLine(lines, want) {
						t.Errorf("%s lacks %q; has:\n%s", s.header, want, strings.Join(lines, "\n"))
					}
				}
			}
			for _, absent := range tc.absentAnywhere {
				if strings.Contains(cfg, absent) {
					t.Errorf("config holds %q:\n%s", absent, cfg)
				}
			}
			// The state file does not exist here: haproxy -c must accept
			// the config anyway, as HAProxy starts without one.
			haproxyCheck(t, cfg)
		})
	}
}

// TestRenderCheckSSL: TLS checks verify pgquorum's certificate and its
// node name, optionally with a client certificate; haproxy -c loads the
// real files.
func TestRenderCheckSSL(t *testing.T) {
	dir := t.TempDir()
	ca, err := testpki.NewCA("pgquorum nodes")
	if err != nil {
		t.Fatal(err)
	}
	caFile, err := ca.Write(dir, "ca")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue(testpki.Options{CN: "haproxy", Usages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err != nil {
		t.Fatal(err)
	}
	crt := filepath.Join(dir, "haproxy.pem")
	if err := os.WriteFile(crt, append(leaf.CertPEM, leaf.KeyPEM...), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		crtFile string
		want    string
	}{
		{"CA only", "", "server node1 10.0.0.1:5432 check port 5999 check-ssl verify required ca-file " + caFile + " verifyhost node1"},
		{"CA and client certificate", crt, "server node2 10.0.0.2:5432 check port 5999 check-ssl verify required ca-file " + caFile + " crt " + crt + " verifyhost node2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := DefaultOptions()
			o.CheckSSL, o.CAFile, o.CrtFile = true, caFile, tc.crtFile
			cfg, err := Render(o, threeServers())
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			for _, l := range [][]string{section(cfg, "postgres_rw"), section(cfg, "postgres_ro")} {
				if !hasLine(l, tc.want) {
					t.Errorf("listener lacks %q; has:\n%s", tc.want, strings.Join(l, "\n"))
				}
			}
			if strings.Contains(cfg, " ssl ") {
				t.Errorf("PostgreSQL traffic must not be TLS-wrapped by HAProxy:\n%s", cfg)
			}
			haproxyCheck(t, cfg)
		})
	}
}
