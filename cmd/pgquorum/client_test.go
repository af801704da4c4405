package main

import (
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgquorum/pgquorum/auth"
	"github.com/pgquorum/pgquorum/auth/testpki"
	"github.com/pgquorum/pgquorum/config"
	"github.com/pgquorum/pgquorum/haproxy"
	"github.com/pgquorum/pgquorum/server"
)

const testToken = "admin-token-0123456789"

// writeConfig writes a node config whose server section is server (YAML
// lines, indented by two) and returns its path.
func writeConfig(t *testing.T, serverKeys string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pgquorum.yaml")
	body := "node:\n  name: node1\ndatabase:\n  dsn: \"host=127.0.0.1 user=repmgr dbname=repmgr\"\nserver:\n" + serverKeys
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestTargetFromConfig(t *testing.T) {
	tests := []struct {
		listen string
		want   string
	}{
		{":5999", "http://127.0.0.1:5999"},
		{"0.0.0.0:6000", "http://127.0.0.1:6000"},
		{"[::]:5999", "http://[::1]:5999"},
		{"10.0.0.5:5999", "http://10.0.0.5:5999"},
	}
	for _, tt := range tests {
		t.Run(tt.listen, func(t *testing.T) {
			got, err := targetFromConfig(config.Config{Listen: tt.listen, Security: config.Security{AdminToken: testToken}})
			if err != nil {
				t.Fatal(err)
			}
			if got.base.String() != tt.want || got.token != testToken {
				t.Errorf("target %s with token %q, want %s with the admin token", got.base, got.token, tt.want)
			}
		})
	}
}

// TestConfigTokenGoesOnlyWhereItIsSafe: with --config, --url may point
// elsewhere, but the token goes only over HTTPS or to loopback.
func TestConfigTokenGoesOnlyWhereItIsSafe(t *testing.T) {
	cfg := writeConfig(t, fmt.Sprintf("  listen: \"127.0.0.1:5999\"\n  admin_token: %q\n", testToken))
	tests := []struct {
		url     string
		wantErr string
	}{
		{"http://127.0.0.2:5999", ""},
		{"http://localhost:5999", ""},
		{"https://10.0.0.9:5999", ""},
		{"http://10.0.0.9:5999", "sent over HTTPS or to loopback only"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			_, err := localFlags{url: tt.url, config: cfg, timeout: 1e9}.target(true)
			if (tt.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("target: %v, want %q", err, tt.wantErr)
			}
		})
	}
}

// tokenServer serves the real handler, whose actions need testToken, over
// TLS with cert when it is set; it returns the listen address.
func tokenServer(t *testing.T, cert *auth.Store) (string, *haproxy.Agent) {
	t.Helper()
	agent := haproxy.NewAgent(haproxy.AgentOptions{}, standbyVerdicts{})
	h := server.New(server.Options{AgentAdmin: agent.AdminHandler(), Auth: server.AuthOptions{AdminToken: testToken, TLS: cert}}, standbyVerdicts{}).Handler()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: h, ErrorLog: log.New(io.Discard, "", 0)}}
	if cert != nil {
		srv.Listener = tls.NewListener(ln, cert.ServerTLS(auth.ClientAuthNone))
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return ln.Addr().String(), agent
}

// TestCommandsWithConfig: "agent" and "check" with --config reach the
// node's own pgquorum, over HTTPS when it serves it, with its admin token;
// without the config the action is refused and nothing changes.
func TestCommandsWithConfig(t *testing.T) {
	ca, err := testpki.NewCA("nodes")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue(testpki.Options{DNS: []string{"node1"}}) // no IP SAN: the CLI checks the chain, not the address
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, err := leaf.Write(t.TempDir(), "node1")
	if err != nil {
		t.Fatal(err)
	}
	store, err := auth.NewStore(auth.Files{Node: "node1", ServerCert: certFile, ServerKey: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		tls  *auth.Store
		keys string
	}{
		{"HTTP", nil, ""},
		{"HTTPS", store, fmt.Sprintf("  tls_cert: %q\n  tls_key: %q\n", certFile, keyFile)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			addr, agent := tokenServer(t, tt.tls)
			cfg := writeConfig(t, fmt.Sprintf("  listen: %q\n  admin_token: %q\n", addr, testToken)+tt.keys)
			scheme := "http"
			if tt.tls != nil {
				scheme = "https"
			}
			// Without the config: no token (401 over HTTP); over HTTPS not
			// even the node's certificate, which no system CA signed.
			want := map[string]string{"http": "401 Unauthorized", "https": "failed to verify certificate"}[scheme]
			code, _, errOut := runPgquorum(t, "agent", "drain", "--url", scheme+"://"+addr)
			if code != exitFailed || !strings.Contains(errOut, want) || agent.Override().Mode != haproxy.ModeReady {
				t.Fatalf("without --config: exit %d, %q, mode %s; want exit 1, %q, still ready", code, errOut, agent.Override().Mode, want)
			}
			if code, _, errOut := runPgquorum(t, "agent", "drain", "--config", cfg); code != exitOK || agent.Override().Mode != haproxy.ModeDrain {
				t.Fatalf("with --config: exit %d: %s; mode %s, want drain", code, errOut, agent.Override().Mode)
			}
			if code, out, errOut := runPgquorum(t, "check", "--expect", "standby", "--config", cfg); code != exitOK {
				t.Fatalf("check --config: exit %d: %s%s", code, out, errOut)
			}
		})
	}
}

// TestCheckFromAHostThatIsNoNode: an HAProxy host asks a node's https://
// URL with the nodes' CA and a client certificate given as files.
func TestCheckFromAHostThatIsNoNode(t *testing.T) {
	dir := t.TempDir()
	nodes, err := testpki.NewCA("nodes")
	if err != nil {
		t.Fatal(err)
	}
	caFile, err := nodes.Write(dir, "nodes-ca")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := nodes.Node("node1") // names 127.0.0.1 too: the URL's host is checked
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := leaf.Write(dir, "node1")
	if err != nil {
		t.Fatal(err)
	}
	store, err := auth.NewStore(auth.Files{Node: "node1", ServerCert: cert, ServerKey: key})
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := tokenServer(t, store)
	url := "https://" + addr
	for _, tt := range []struct {
		name string
		args []string
		code int
	}{
		{"with the nodes' CA", []string{"--ca-file", caFile}, exitOK},
		{"with a client certificate too", []string{"--ca-file", caFile, "--cert", cert, "--key", key}, exitOK},
		{"without the CA: no verdict", nil, exitUnreachable},
		{"a certificate without its key", []string{"--ca-file", caFile, "--cert", cert}, exitUsage},
		{"with --config too", []string{"--ca-file", caFile, "--config", "testdata/good.yaml"}, exitUsage},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"check", "--expect", "standby", "--url", url}, tt.args...)
			if code, out, errOut := runPgquorum(t, args...); code != tt.code {
				t.Errorf("exit %d, want %d: %s%s", code, tt.code, out, errOut)
			}
		})
	}
}
