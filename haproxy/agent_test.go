package haproxy

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/consensus"
	"github.com/pgquorum/pgquorum/repmgr"
)

func snap(state api.State, receiver string) *consensus.Snapshot {
	s := &consensus.Snapshot{Verdict: consensus.Verdict{State: state, Votes: 2, Needed: 2, Reason: "why"}}
	s.Facts.WAL.ReceiverStatus = receiver
	return s
}

func TestReply(t *testing.T) {
	ready := Override{Mode: ModeReady, Weight: 100}
	tests := []struct {
		name string
		role string
		snap *consensus.Snapshot
		ov   Override
		want string
	}{
		{"primary is up for writes", RoleRW, snap(api.StatePrimary, ""), ready, "ready 100% up #Primary with 2 votes, 2 needed\n"},
		{"primary is down for reads", RoleRO, snap(api.StatePrimary, ""), ready, "ready 100% down #Primary, not a standby\n"},
		{"streaming standby is up for reads", RoleRO, snap(api.StateStandby, repmgr.StreamingState), ready, "ready 100% up #Standby\n"},
		{"streaming standby is down for writes", RoleRW, snap(api.StateStandby, repmgr.StreamingState), ready, "ready 100% down #Standby, not writable\n"},
		{"standby that lost its upstream is down for reads", RoleRO, snap(api.StateStandby, ""), ready, "ready 100% down #Standby not streaming (wal receiver \"\")\n"},
		{"primary without majority is down for writes", RoleRW, snap(api.StateUnknown, ""), ready, "ready 100% down #Unknown: why\n"},
		{"node with its database down is down for reads", RoleRO, snap(api.StateDown, ""), ready, "ready 100% down #Down: why\n"},
		{"no snapshot fails closed", RoleRW, nil, ready, "ready 100% down #no verdict\n"},
		{"no role: primary is up, the http check picks the listener", "", snap(api.StatePrimary, ""), ready, "ready 100% up #Primary\n"},
		{"no role: unknown is down", "", snap(api.StateUnknown, ""), ready, "ready 100% down #Unknown: why\n"},
		{"drain keeps the health word", RoleRO, snap(api.StateStandby, repmgr.StreamingState), Override{ModeDrain, 100}, "drain 100% up #Standby\n"},
		{"maint keeps the health word", RoleRW, snap(api.StatePrimary, ""), Override{ModeMaint, 100}, "maint 100% up #Primary with 2 votes, 2 needed\n"},
		{"weight is a percentage", RoleRO, snap(api.StateStandby, repmgr.StreamingState), Override{ModeReady, 50}, "ready 50% up #Standby\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Reply(tc.role, tc.snap, tc.ov); got != tc.want {
				t.Fatalf("Reply = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestReplyIsOneLineWithDescriptionLast checks the two rules HAProxy's parser
// imposes: one line, and the '#' description after every word.
func TestReplyIsOneLineWithDescriptionLast(t *testing.T) {
	s := snap(api.StateDown, "")
	s.Verdict.Reason = "probe local node: dial tcp 127.0.0.1:5432:\nconnection refused, " + strings.Repeat("x", 300)
	got := Reply(RoleRW, s, Override{ModeReady, 100})
	if strings.Count(got, "\n") != 1 || !strings.HasSuffix(got, "\n") {
		t.Fatalf("reply is not exactly one line: %q", got)
	}
	words, desc, ok := strings.Cut(got, " #")
	if !ok || words != "ready 100% down" {
		t.Fatalf("reply words before the description = %q, want %q", words, "ready 100% down")
	}
	if len(desc) > maxReason+1 {
		t.Fatalf("description is %d bytes, want at most %d", len(desc), maxReason)
	}
}

func TestOverrideValidate(t *testing.T) {
	tests := []struct {
		name    string
		ov      Override
		wantErr string
	}{
		{"ready at 100% is valid", Override{ModeReady, 100}, ""},
		{"maint at 256% is valid", Override{ModeMaint, 256}, ""},
		{"unknown mode is rejected", Override{"stopped", 100}, "mode: want ready, drain or maint"},
		{"zero weight is rejected (use drain)", Override{ModeReady, 0}, "weight: want a percentage from 1 to 256"},
		{"weight above HAProxy's 256 is rejected", Override{ModeReady, 257}, "weight:"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.ov.Validate()
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("Validate() = %v, want error containing %q", err, tc.wantErr)
			}
		})
	}
}

// fakeVerdicts serves a fixed snapshot; when gate is set, Snapshot tells
// entered and blocks until gate is closed.
type fakeVerdicts struct {
	snap    *consensus.Snapshot
	gate    chan struct{}
	entered chan struct{}
}

func (f *fakeVerdicts) Snapshot(ctx context.Context) *consensus.Snapshot {
	if f.gate != nil {
		f.entered <- struct{}{}
		select {
		case <-f.gate:
		case <-ctx.Done():
		}
	}
	return f.snap
}

// startAgent serves a on a loopback port until the test ends, and checks
// that Serve returns nil once its context is cancelled.
func startAgent(t *testing.T, a *Agent) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve returned %v after cancel, want nil", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return within 5s of cancel")
		}
	})
	return ln.Addr().String()
}

// exchange dials addr, sends send (if any) and returns everything the agent
// wrote before closing. A reset is reported as an error: the agent resets a
// connection it closes with unread input.
func exchange(t *testing.T, addr, send string) (string, error) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if send != "" {
		if _, err := io.WriteString(conn, send); err != nil {
			t.Fatal(err)
		}
	}
	b, err := io.ReadAll(conn) // reads to EOF: the agent must close after one line
	if isTimeout(err) {
		t.Fatalf("the agent kept the connection open: %v", err)
	}
	return string(b), err
}

func TestAgentProtocol(t *testing.T) {
	src := &fakeVerdicts{snap: snap(api.StateStandby, repmgr.StreamingState)}
	a := NewAgent(AgentOptions{SendWait: 50 * time.Millisecond}, src)
	addr := startAgent(t, a)
	tests := []struct {
		name string
		send string
		want string
	}{
		{"rw line gets the write answer", "rw\n", "ready 100% down #Standby, not writable\n"},
		{"ro line gets the read answer", "ro\n", "ready 100% up #Standby\n"},
		{"CRLF and case are tolerated", "RO\r\n", "ready 100% up #Standby\n"},
		{"no agent-send: answered after the wait, role-less", "", "ready 100% up #Standby\n"},
		{"unknown line is answered role-less", "be_pg/node1\n", "ready 100% up #Standby\n"},
		{"line of exactly the bound without newline is answered role-less", strings.Repeat("r", maxSendLine), "ready 100% up #Standby\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := exchange(t, addr, tc.send)
			if err != nil || got != tc.want {
				t.Fatalf("agent answered %q (%v), want %q", got, err, tc.want)
			}
		})
	}
}

// TestAgentBoundsItsRead sends far more than an agent-send line: the agent
// must answer or close at once rather than read on, and a reset (it closes
// with our input unread) is fine.
func TestAgentBoundsItsRead(t *testing.T) {
	a := NewAgent(AgentOptions{SendWait: time.Second}, &fakeVerdicts{snap: snap(api.StateStandby, repmgr.StreamingState)})
	addr := startAgent(t, a)
	start := time.Now()
	got, err := exchange(t, addr, strings.Repeat("r", 100*maxSendLine)+"\n")
	if took := time.Since(start); took >= time.Second {
		t.Fatalf("the agent took %s, at least its send wait: it read past its bound", took)
	}
	if err == nil && got != "ready 100% up #Standby\n" {
		t.Fatalf("agent answered %q to an overlong line, want the role-less answer", got)
	}
}

func TestAgentAnswersWithTheOverride(t *testing.T) {
	a := NewAgent(AgentOptions{}, &fakeVerdicts{snap: snap(api.StateStandby, repmgr.StreamingState)})
	addr := startAgent(t, a)
	if err := a.SetOverride(Override{Mode: ModeDrain, Weight: 100}); err != nil {
		t.Fatal(err)
	}
	if got, err := exchange(t, addr, "ro\n"); got != "drain 100% up #Standby\n" {
		t.Fatalf("after drain the agent answered %q (%v), want %q", got, err, "drain 100% up #Standby\n")
	}
	if err := a.SetOverride(Override{Mode: "off", Weight: 100}); err == nil {
		t.Fatal("SetOverride accepted mode \"off\"")
	}
	if got := a.Override(); got.Mode != ModeDrain {
		t.Fatalf("a rejected override changed the mode to %q", got.Mode)
	}
}

// TestAgentRefusesBeyondMaxConns holds the only slot with a blocked verdict
// and checks a second connection is closed without an answer.
func TestAgentRefusesBeyondMaxConns(t *testing.T) {
	src := &fakeVerdicts{snap: snap(api.StatePrimary, ""), gate: make(chan struct{}), entered: make(chan struct{}, 1)}
	a := NewAgent(AgentOptions{MaxConns: 1, SendWait: 10 * time.Millisecond}, src)
	addr := startAgent(t, a)

	first, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	_ = first.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(first, "rw\n"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-src.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the first exchange never asked for a verdict")
	}
	if got, err := exchange(t, addr, "rw\n"); got != "" {
		t.Fatalf("a connection beyond MaxConns was answered %q (%v)", got, err)
	}
	close(src.gate)
	b, err := io.ReadAll(first)
	if err != nil || string(b) != "ready 100% up #Primary with 2 votes, 2 needed\n" {
		t.Fatalf("the exchange holding the slot got %q, %v", b, err)
	}
}

func TestAgentServeReportsAcceptFailure(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	err = NewAgent(AgentOptions{}, &fakeVerdicts{}).Serve(context.Background(), ln)
	if err == nil || !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Serve on a closed listener = %v, want an accept error", err)
	}
}

// The Reply of a real repmgr-facts snapshot uses the receiver status.
func TestReplyReadsReceiverStatusFromFacts(t *testing.T) {
	s := &consensus.Snapshot{Facts: repmgr.Facts{InRecovery: true, WAL: repmgr.WAL{ReceiverStatus: "waiting"}},
		Verdict: consensus.Verdict{State: api.StateStandby}}
	if got := Reply(RoleRO, s, Override{ModeReady, 100}); !strings.HasPrefix(got, "ready 100% down ") {
		t.Fatalf("a standby whose receiver is waiting got %q, want down", got)
	}
}

// flakyListener fails its first Accept, as when file descriptors run out.
type flakyListener struct {
	net.Listener
	failed bool
}

func (l *flakyListener) Accept() (net.Conn, error) {
	if !l.failed {
		l.failed = true
		return nil, errors.New("accept4: too many open files")
	}
	return l.Listener.Accept()
}

func TestAgentKeepsServingAfterATransientAcceptError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := NewAgent(AgentOptions{}, &fakeVerdicts{snap: snap(api.StatePrimary, "")})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, &flakyListener{Listener: ln}) }()
	got, err := exchange(t, ln.Addr().String(), "rw\n")
	cancel()
	if err != nil || got != "ready 100% up #Primary with 2 votes, 2 needed\n" {
		t.Fatalf("after a failed accept the agent answered %q (%v)", got, err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Serve returned %v after cancel", err)
	}
}
