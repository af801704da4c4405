package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/api"
)

// runCheck drives the real entry point and returns the exit code and outputs.
func runCheck(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), append([]string{"pgquorum", "check"}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

// stateServer answers /state with status and body, and 404 elsewhere, so a
// test also proves which path check asks.
func stateServer(t *testing.T, status int, body string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != api.PathState || r.Method != http.MethodGet {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func stateJSON(s api.State, node string, votes, needed int) string {
	return fmt.Sprintf(`{"State":%q,"node":%q,"location":"dc1","votes":%d,"needed":%d,"checked_at":"2026-11-21T10:00:00Z"}`, s, node, votes, needed)
}

func TestCheckDecidesFromStatusCode(t *testing.T) {
	cases := []struct {
		name   string
		status int
		state  api.State
		expect string
		code   int
	}{
		{"primary 200 matches primary", 200, api.StatePrimary, "primary", 0},
		{"primary 200 does not match standby", 200, api.StatePrimary, "standby", 1},
		{"primary 200 is up", 200, api.StatePrimary, "up", 0},
		{"standby 202 does not match primary", 202, api.StateStandby, "primary", 1},
		{"standby 202 matches standby", 202, api.StateStandby, "standby", 0},
		{"standby 202 is up", 202, api.StateStandby, "up", 0},
		{"down 503 does not match primary", 503, api.StateDown, "primary", 1},
		{"down 503 does not match standby", 503, api.StateDown, "standby", 1},
		{"down 503 is not up", 503, api.StateDown, "up", 1},
		{"unknown 509 does not match primary", 509, api.StateUnknown, "primary", 1},
		{"unknown 509 does not match standby", 509, api.StateUnknown, "standby", 1},
		{"unknown 509 is up: its database answers", 509, api.StateUnknown, "up", 0},
		{"404 is no verdict", 404, "", "up", 2},
		{"502 from a proxy is no verdict", 502, "", "primary", 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			url := stateServer(t, tc.status, stateJSON(tc.state, "node1", 3, 2))
			code, stdout, stderr := runCheck(t, "--expect", tc.expect, "--url", url, "--timeout", "2s")
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stdout %q stderr %q", code, tc.code, stdout, stderr)
			}
			line := stdout + stderr
			if strings.Count(line, "\n") != 1 {
				t.Errorf("want exactly one line, got %q", line)
			}
			if tc.code == 0 && (stdout == "" || stderr != "") {
				t.Errorf("a match prints on stdout only: stdout %q stderr %q", stdout, stderr)
			}
			if tc.code != 0 && (stdout != "" || stderr == "") {
				t.Errorf("a failure prints on stderr only: stdout %q stderr %q", stdout, stderr)
			}
		})
	}
}

func TestCheckPrintsTheVerdict(t *testing.T) {
	cases := []struct {
		name, expect, body string
		status             int
		want               string
	}{
		{"primary with votes", "primary", stateJSON(api.StatePrimary, "node1", 3, 2), 200,
			"primary: node1 is Primary (3 votes, 2 needed)\n"},
		{"standby is not primary", "primary", stateJSON(api.StateStandby, "node2", 0, 2), 202,
			"pgquorum: not primary: node2 is Standby\n"},
		{"down with its reason", "up", `{"State":"Down","node":"node1","reason":"connect: refused"}`, 503,
			"pgquorum: not up: node1 is Down: connect: refused\n"},
		{"undecodable body keeps the 200 verdict", "primary", "<html>oops", 200,
			"primary: URL answers Primary (decode body: invalid character '<' looking for beginning of value)\n"},
		{"body contradicting the status does not change the verdict", "primary", stateJSON(api.StateStandby, "node1", 0, 2), 200,
			"primary: node1 is Primary (0 votes, 2 needed) (body says Standby)\n"},
		{"newlines in the body stay on one line", "standby", `{"State":"Standby","node":"a\nb"}`, 202,
			"standby: a b is Standby\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			url := stateServer(t, tc.status, tc.body)
			_, stdout, stderr := runCheck(t, "--expect", tc.expect, "--url", url+"/")
			want := strings.ReplaceAll(tc.want, "URL", url+api.PathState)
			if got := stdout + stderr; got != want {
				t.Errorf("printed %q, want %q", got, want)
			}
		})
	}
}

// silentListener accepts connections and writes reply (if any) then keeps them
// open without answering more, until the test ends.
func silentListener(t *testing.T, reply string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { close(done); ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				fmt.Fprint(c, reply)
				<-done
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

// stalledBodyServer sends a status line and headers, then never the body.
func stalledBodyServer(t *testing.T, status int) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		w.WriteHeader(status)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func closedPortURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

func TestCheckWithoutVerdict(t *testing.T) {
	const timeout = 300 * time.Millisecond
	cases := []struct {
		name   string
		url    func(*testing.T) string
		code   int
		output string
	}{
		{"connection refused is unreachable", closedPortURL, 2, "unreachable: "},
		{"a non-HTTP answer is unreachable", func(t *testing.T) string { return silentListener(t, "SSH-2.0-OpenSSH_9.2\r\n\r\n") }, 2, "unreachable: "},
		{"no answer within the timeout is unreachable", func(t *testing.T) string { return silentListener(t, "") }, 2, "unreachable: timed out: "},
		{"a 200 whose body stalls keeps its verdict within the timeout", func(t *testing.T) string { return stalledBodyServer(t, 200) }, 0, "primary: "},
		{"a 503 whose body stalls is not primary within the timeout", func(t *testing.T) string { return stalledBodyServer(t, 503) }, 1, "not primary: "},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			code, stdout, stderr := runCheck(t, "--expect", "primary", "--url", tc.url(t), "--timeout", timeout.String())
			elapsed := time.Since(start)
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stdout %q stderr %q", code, tc.code, stdout, stderr)
			}
			if !strings.Contains(stdout+stderr, tc.output) {
				t.Errorf("output %q lacks %q", stdout+stderr, tc.output)
			}
			// The timeout bounds the whole call; 1 s of slack for a loaded machine.
			if elapsed > timeout+time.Second {
				t.Errorf("took %s with --timeout %s", elapsed, timeout)
			}
		})
	}
}

func TestCheckUsageErrors(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"missing --expect", []string{}, `--expect "": want primary, standby or up`},
		{"unknown --expect", []string{"--expect", "master"}, `--expect "master": want primary, standby or up`},
		{"URL without scheme", []string{"--expect", "up", "--url", "127.0.0.1:5999"}, "--url"},
		{"non-HTTP scheme", []string{"--expect", "up", "--url", "ftp://127.0.0.1"}, `--url: want http://host:port, got "ftp://127.0.0.1"`},
		{"zero timeout", []string{"--expect", "up", "--timeout", "0s"}, "--timeout: want a positive duration, got 0s"},
		{"positional argument", []string{"--expect", "up", "extra"}, "unknown command"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCheck(t, tc.args...)
			if code != exitUsage {
				t.Fatalf("exit %d, want %d (usage); stdout %q stderr %q", code, exitUsage, stdout, stderr)
			}
			if !strings.Contains(stderr, tc.want) {
				t.Errorf("stderr %q lacks %q", stderr, tc.want)
			}
		})
	}
}

func TestCheckHelpDocumentsExitCodesAndUp(t *testing.T) {
	code, stdout, _ := runCheck(t, "--help")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"any state except Down", "keepalived treats every non-zero exit as a failure", "  2  no verdict"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("--help lacks %q", want)
		}
	}
}
