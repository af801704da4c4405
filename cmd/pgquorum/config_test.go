package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runCmd drives the real entry point.
func runCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errw bytes.Buffer
	code = run(context.Background(), append([]string{"pgquorum"}, args...), &out, &errw)
	return code, out.String(), errw.String()
}

// TestBadConfigFilesExitWithTheirErrors runs "serve --check-config" on every
// testdata/bad/*.yaml that has a .err golden file, and wants exit 2 with
// exactly those errors, each naming its key and the expected form.
func TestBadConfigFilesExitWithTheirErrors(t *testing.T) {
	files, err := filepath.Glob("testdata/bad/*.err")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, golden := range files {
		yaml := strings.TrimSuffix(golden, ".err") + ".yaml"
		t.Run(filepath.Base(yaml), func(t *testing.T) {
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			code, stdout, stderr := runCmd(t, "serve", "--config", yaml, "--check-config")
			if code != exitUsage || stdout != "" {
				t.Errorf("exit %d, stdout %q; want exit %d and nothing printed", code, stdout, exitUsage)
			}
			if wantErr := "pgquorum: invalid configuration:\n" + string(want); stderr != wantErr {
				t.Errorf("stderr:\n%s\nwant:\n%s", stderr, wantErr)
			}
		})
	}
}

func TestUnparseableInputsNameTheirSource(t *testing.T) {
	for _, tt := range []struct{ name, file, want string }{
		{"DSN that pgx cannot parse", "testdata/bad/bad-dsn.yaml", "database.dsn: want a libpq conninfo or postgres:// URI: "},
		{"file that is not YAML", "testdata/bad/not-yaml.yaml", "read config file testdata/bad/not-yaml.yaml: "},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runCmd(t, "serve", "--config", tt.file, "--check-config")
			if code != exitUsage || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want exit 2 containing %q", code, stderr, tt.want)
			}
		})
	}
}

func TestGoodConfigPrintsEffectiveValuesRedacted(t *testing.T) {
	code, stdout, stderr := runCmd(t, "serve", "--config", "testdata/good.yaml", "--check-config")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, line := range []string{
		"node.name: node1\n",
		"database.dsn: dbname=repmgr host=127.0.0.1 password=xxxxx port=5432 user=repmgr\n",
		"database.max_conns: 2\n",
		"consensus.refresh_interval: 500ms\n",
		"consensus.peers: node2=10.0.0.2:5999,node3=[fd00::3]:5999\n",
		"log.format: json\n",
		"server.admin_token: [redacted]\n",
		"consensus.peer_token: [redacted]\n",
	} {
		if !strings.Contains(stdout, line) {
			t.Errorf("effective config lacks %q:\n%s", line, stdout)
		}
	}
	for _, secret := range []string{"s3cret", "t0ken"} {
		if strings.Contains(stdout, secret) {
			t.Errorf("secret %q printed:\n%s", secret, stdout)
		}
	}
}

func TestNodeNameAndDSNFromRepmgrConf(t *testing.T) {
	code, stdout, stderr := runCmd(t, "serve", "--config", "testdata/from-repmgr.yaml", "--check-config")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, line := range []string{"node.name: db2\n", "database.dsn: host=10.0.0.2 port=5432 user=repmgr dbname=repmgr connect_timeout=2\n"} {
		if !strings.Contains(stdout, line) {
			t.Errorf("effective config lacks %q:\n%s", line, stdout)
		}
	}
}

// TestPrecedenceFlagOverEnvOverFile: every key comes from a flag, then the
// environment, then the file, then the default.
func TestPrecedenceFlagOverEnvOverFile(t *testing.T) {
	t.Setenv("PGQUORUM_CONSENSUS_PEER_PORT", "6000")
	t.Setenv("PGQUORUM_LOG_LEVEL", "warn")
	t.Setenv("PGQUORUM_CONSENSUS_PEERS", "a=10.0.0.1:7000, b=10.0.0.2:7000")
	code, stdout, stderr := runCmd(t, "serve", "--config", "testdata/good.yaml", "--check-config", "--log.level", "error", "--database.max_conns=1")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, line := range []string{
		"log.level: error\n",                               // flag over env and file
		"consensus.peer_port: 6000\n",                      // env over default
		"consensus.peers: a=10.0.0.1:7000,b=10.0.0.2:7000", // env over file
		"database.max_conns: 1\n",                          // flag over file
		"node.name: node1\n",                               // file over default
	} {
		if !strings.Contains(stdout, line) {
			t.Errorf("effective config lacks %q:\n%s", line, stdout)
		}
	}
}

func TestEnvironmentErrors(t *testing.T) {
	for _, tt := range []struct{ name, key, value, want string }{
		{"misspelt variable", "PGQUORUM_DATABASE_DNS", "host=x", "environment: unknown variable PGQUORUM_DATABASE_DNS"},
		{"peers without =", "PGQUORUM_CONSENSUS_PEERS", "node2", `consensus.peers: want name=host:port,name=host:port, got "node2"`},
		{"duration without unit", "PGQUORUM_CONSENSUS_REFRESH_INTERVAL", "5", `consensus.refresh_interval: want a positive duration such as 1s or 500ms, got "5"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(tt.key, tt.value)
			code, _, stderr := runCmd(t, "serve", "--config", "testdata/good.yaml", "--check-config")
			if code != exitUsage || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want exit 2 containing %q", code, stderr, tt.want)
			}
		})
	}
}

// TestTokensAreNotFlags: a token on a command line shows in ps and in shell
// history, so serve has no flag for either.
func TestTokensAreNotFlags(t *testing.T) {
	for _, flag := range []string{"--server.admin_token", "--consensus.peer_token"} {
		code, _, stderr := runCmd(t, "serve", "--config", "testdata/good.yaml", flag, "0123456789abcdef0123", "--check-config")
		if code != exitUsage || !strings.Contains(stderr, "unknown flag: "+flag) {
			t.Errorf("%s: exit %d, stderr %q; want exit 2, unknown flag", flag, code, stderr)
		}
	}
}
