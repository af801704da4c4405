package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestReviewSaveStateStartsWriteListenersDown: save-state.sh -i (the
// drop-in's ExecStartPre) must start every server of a write listener DOWN:
// a state saved by the stop before may predate a failover, and the old
// primary restored UP takes writes until fall checks fail. It recognises a
// write listener only by a literal "http-check expect status 200" line
// inside the listen/backend section. Patroni-style configurations whose
// write check passes only on the primary in other ways are restored as
// saved:
//   - "option httpchk OPTIONS /read-write" with no expect: pgquorum's
//     /read-write answers 200 only on the confirmed primary and 503
//     elsewhere, so any-2xx is a write check (docs/patroni.md names the path);
//   - "http-check expect status 200" in the defaults section, which HAProxy
//     applies to every listener that has no rule of its own.
//
// The read listener (expect 202) keeps its saved state in every case.
func TestSaveStateStartsWriteListenersDown(t *testing.T) {
	script, err := filepath.Abs("../../scripts/haproxy/save-state.sh")
	if err != nil {
		t.Fatal(err)
	}
	const servers = "    server node1 10.0.0.1:5432 check port 5999\n    server node2 10.0.0.2:5432 check port 5999\n"
	const ro = "\nlisten postgres_ro\n    bind :5001\n    option httpchk GET /state\n    http-check expect status 202\n" + servers
	tests := []struct {
		name string
		cfg  string
	}{
		{name: "rendered by haproxy-config", cfg: "defaults\n    mode tcp\n\nlisten postgres_rw\n    bind :5000\n    option httpchk GET /state\n    http-check expect status 200\n" + servers + ro},
		{name: "Patroni path without expect", cfg: "defaults\n    mode tcp\n\nlisten postgres_rw\n    bind :5000\n    option httpchk OPTIONS /read-write\n" + servers + ro},
		{name: "expect in defaults", cfg: "defaults\n    mode tcp\n    option httpchk GET /state\n    http-check expect status 200\n\nlisten postgres_rw\n    bind :5000\n" + servers +
			"\nlisten postgres_ro\n    bind :5001\n    option httpchk GET /state\n    http-check expect status 202\n" + servers},
	}
	// Saved by the stop before: node1 UP on the write listener (it was the
	// primary then), node2 UP on the read listener; checked (status 15, L7OK).
	saved := "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n" +
		"2 postgres_rw 1 node1 10.0.0.1 2 0 100 100 50 15 3 4 6 0 0 0 - 5432 - 0 5999 - - 0\n" +
		"2 postgres_rw 2 node2 10.0.0.2 0 0 100 100 50 15 1 0 6 0 0 0 - 5432 - 0 5999 - - 0\n" +
		"3 postgres_ro 1 node1 10.0.0.1 0 0 100 100 50 15 1 0 6 0 0 0 - 5432 - 0 5999 - - 0\n" +
		"3 postgres_ro 2 node2 10.0.0.2 2 0 100 100 50 15 3 4 6 0 0 0 - 5432 - 0 5999 - - 0\n"
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg, state := filepath.Join(dir, "haproxy.cfg"), filepath.Join(dir, "pgquorum.state")
			if err := os.WriteFile(cfg, []byte(tt.cfg), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(state, []byte(saved), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command("sh", script, "-c", cfg, "-i", "-a", "60", state).CombinedOutput()
			if err != nil {
				t.Fatalf("save-state.sh -i: %v\n%s", err, out)
			}
			b, err := os.ReadFile(state)
			if err != nil {
				t.Fatal(err)
			}
			op := map[string]string{}
			for _, line := range strings.Split(string(b), "\n") {
				f := strings.Fields(line)
				if len(f) >= 20 && !strings.HasPrefix(f[0], "#") {
					op[f[1]+"/"+f[3]] = f[5]
				}
			}
			if got := op["postgres_rw/node1"]; got != "0" {
				t.Errorf("postgres_rw/node1 starts with srv_op_state %q, want 0 (DOWN): the write listener's saved UP is restored, and may predate a failover\nscript said: %s\nstate:\n%s", got, out, b)
			}
			if got := op["postgres_ro/node2"]; got != "2" {
				t.Errorf("postgres_ro/node2 starts with srv_op_state %q, want its saved 2 (UP)", got)
			}
		})
	}
}
