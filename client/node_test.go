package client

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/auth"
)

// nodeServer serves h and returns its Node, asked with the admin token.
func nodeServer(t *testing.T, token auth.Secret, h http.HandlerFunc) Node {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	u, err := ParseBaseURL(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return New(Options{AdminToken: token}).Node(u)
}

func nodeCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestNodeURL(t *testing.T) {
	base, _ := url.Parse("http://127.0.0.1:5999/prefix")
	n := New(Options{}).Node(base)
	for path, want := range map[string]string{
		api.PathState:               "http://127.0.0.1:5999/prefix/state",
		api.PathEvents + "?limit=1": "http://127.0.0.1:5999/prefix/events?limit=1",
		api.PathAgent + "/drain":    "http://127.0.0.1:5999/prefix/agent/drain",
	} {
		if got := n.URL(path).String(); got != want {
			t.Errorf("URL(%q) = %s, want %s", path, got, want)
		}
	}
}

// TestNodeState: only a missing answer is an error; a body that does not
// decode strictly leaves the status, saying why.
func TestNodeState(t *testing.T) {
	tests := []struct {
		name        string
		status      int
		body        string
		wantNode    string // "" when the body must not decode
		wantBodyErr string
	}{
		{name: "primary", status: 200, body: `{"State":"Primary","node":"n1"}`, wantNode: "n1"},
		{name: "not JSON", status: 200, body: `<html>`, wantBodyErr: "decode body: invalid character"},
		{name: "unknown field", status: 202, body: `{"State":"Standby","node":"n2","mood":"fine"}`, wantBodyErr: `decode body: json: unknown field "mood"`},
		{name: "over the bound", status: 503, body: strings.Repeat(" ", MaxStateBody+1), wantBodyErr: "body larger than 16384 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := nodeServer(t, "", func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(tt.status)
				_, _ = w.Write([]byte(tt.body))
			})
			a, err := n.State(nodeCtx(t))
			if err != nil || a.Status != tt.status {
				t.Fatalf("State = %+v, %v; want status %d", a, err, tt.status)
			}
			if tt.wantNode != "" && (a.Body == nil || a.Body.Node != tt.wantNode || a.BodyErr != nil) {
				t.Errorf("State = %+v; want the body of %s", a, tt.wantNode)
			}
			if tt.wantBodyErr != "" && (a.Body != nil || a.BodyErr == nil || !strings.Contains(a.BodyErr.Error(), tt.wantBodyErr)) {
				t.Errorf("State = %+v; want no body and %q", a, tt.wantBodyErr)
			}
		})
	}
}

// TestNodeCommand: an action carries the admin token, and its answer says
// done, refused (saying why) or failed.
func TestNodeCommand(t *testing.T) {
	const token = auth.Secret("admin-token-0123456789")
	tests := []struct {
		name    string
		status  int
		body    string
		wantErr string // "" when done
	}{
		{name: "done", status: 200, body: `{"ok":true}`},
		{name: "refused by the coordinator", status: 409, body: `{"ok":false,"error":"a switchover is in progress"}`, wantErr: "a switchover is in progress"},
		{name: "another error", status: 503, body: `{"ok":false,"error":"no coordinator"}`, wantErr: "POST /pause: 503: no coordinator"},
		{name: "no reason", status: 502, body: `{"ok":false}`, wantErr: "POST /pause answered 502"},
		{name: "not a result", status: 200, body: `{"ok":true,"paused":true}`, wantErr: `decode answer: json: unknown field "paused"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got string
			n := nodeServer(t, token, func(w http.ResponseWriter, r *http.Request) {
				got = r.Header.Get("Authorization")
				w.WriteHeader(tt.status)
				_, _ = w.Write([]byte(tt.body))
			})
			_, err := n.Pause(nodeCtx(t), api.PauseRequest{Reason: "test"})
			if got != "Bearer "+string(token) {
				t.Errorf("Authorization %q, want the bearer token", got)
			}
			if (tt.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("Pause: %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestParseBaseURL(t *testing.T) {
	for raw, ok := range map[string]bool{
		"http://127.0.0.1:5999": true, "https://node1:5999": true, "ftp://127.0.0.1": false, "127.0.0.1:5999": false, "http://": false,
	} {
		if _, err := ParseBaseURL(raw); (err == nil) != ok {
			t.Errorf("ParseBaseURL(%q): %v, want ok %t", raw, err, ok)
		}
	}
}
