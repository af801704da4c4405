package haproxy

import (
	"bytes"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/repmgr"
)

// FuzzAgentSendLine feeds arbitrary bytes as HAProxy's agent-send line: the
// role is rw or ro only when the whole first line (up to '\n' or the end of
// the input), trimmed and in any case, says so and fits in maxSendLine
// bytes; anything else is no role.
func FuzzAgentSendLine(f *testing.F) {
	for _, s := range []string{"rw\n", "ro\n", "RO \r\n", "rw", "", "\n", "rx\n", "rw\nro\n",
		"rw" + strings.Repeat(" ", 70) + "x\n", strings.Repeat(" ", 62) + "ro\n", "\x00rw\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, send []byte) {
		if got, want := roleOf(t, send), wantRole(send); got != want {
			t.Fatalf("send line %q read as role %q, want %q", send, got, want)
		}
	})
}

// roleOf runs readRole over a pipe whose far end writes send, then closes.
func roleOf(t *testing.T, send []byte) string {
	t.Helper()
	near, far := net.Pipe()
	defer near.Close()
	go func() {
		_, _ = far.Write(send) // returns early when readRole stops reading and near closes
		far.Close()
	}()
	return readRole(near, 5*time.Second)
}

// wantRole is readRole's documented answer for send, written plainly.
func wantRole(send []byte) string {
	line, _, found := bytes.Cut(send, []byte("\n"))
	if len(line)+btoi(found) > maxSendLine {
		return "" // too long
	}
	switch r := strings.ToLower(strings.TrimSpace(string(line))); r {
	case RoleRW, RoleRO:
		return r
	}
	return ""
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// FuzzAgentReply checks every reply pgquorum sends HAProxy, whatever the
// verdict's reason and state: one line ending in '\n' and holding no other
// line break or carriage return; mode, weight and health first, the
// description last after " #", bounded; "up" only where the role allows
// (the write listener: Primary; the read listener: a streaming Standby;
// no role: either), never for Down, Unknown or no verdict.
func FuzzAgentReply(f *testing.F) {
	f.Add("", "Primary", "streaming", "because", 100, uint8(0))
	f.Add("rw", "Primary", "", "3 votes", 256, uint8(1))
	f.Add("ro", "Standby", "stopping", "line\nbreak\r#x", 1, uint8(2))
	f.Add("ro", "Standby", "streaming", strings.Repeat("é", 100), 50, uint8(0))
	f.Add("rw", "Unknown", "", "no majority", 100, uint8(1))
	f.Add("", "Down", "", "\xff\xfe", 100, uint8(2))
	f.Add("", "", "", "", 100, uint8(3))
	f.Fuzz(func(t *testing.T, role, state, receiver, reason string, weight int, mode uint8) {
		ov := Override{Mode: []Mode{ModeReady, ModeDrain, ModeMaint}[int(mode)%3], Weight: weight}
		if ov.Validate() != nil {
			return
		}
		s := snap(api.State(state), receiver)
		s.Verdict.Reason = reason
		if mode == 3 {
			s = nil
		}
		reply := Reply(role, s, ov)
		body, ok := strings.CutSuffix(reply, "\n")
		if !ok || strings.ContainsAny(body, "\n\r") {
			t.Fatalf("reply %q is not one line", reply)
		}
		head, why, ok := strings.Cut(body, " #")
		words := strings.Fields(head)
		if !ok || len(words) != 3 || words[0] != string(ov.Mode) || words[1] != fmt.Sprintf("%d%%", weight) {
			t.Fatalf("reply %q: want %q, \"%d%%\", up or down, then \" #\" and a description", reply, ov.Mode, weight)
		}
		if len(why) > maxReason {
			t.Fatalf("reply %q: description of %d bytes, over %d", reply, len(why), maxReason)
		}
		up := s != nil && (role == RoleRW && state == string(api.StatePrimary) ||
			role == RoleRO && state == string(api.StateStandby) && receiver == repmgr.StreamingState ||
			role != RoleRW && role != RoleRO && (state == string(api.StatePrimary) || state == string(api.StateStandby)))
		if want := map[bool]string{true: "up", false: "down"}[up]; words[2] != want {
			t.Fatalf("role %q, state %q, receiver %q: reply %q, want %s", role, state, receiver, reply, want)
		}
	})
}
