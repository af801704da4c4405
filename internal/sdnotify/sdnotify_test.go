package sdnotify

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func env(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

// listen opens a unixgram socket like systemd's and returns what it reads.
func listen(t *testing.T, name string) <-chan string {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatalf("listen %s: %v", name, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	got := make(chan string, 4)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				close(got)
				return
			}
			got <- string(buf[:n])
		}
	}()
	return got
}

func receive(t *testing.T, got <-chan string) string {
	t.Helper()
	select {
	case m := <-got:
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no datagram within 5s")
		return ""
	}
}

func TestNotifySendsOneDatagramPerMessage(t *testing.T) {
	tests := []struct {
		name   string
		socket func(t *testing.T) string
	}{
		{"path socket in a temp dir", func(t *testing.T) string { return filepath.Join(t.TempDir(), "notify.sock") }},
		{"abstract socket named with @", func(t *testing.T) string {
			return fmt.Sprintf("@pgquorum-sdnotify-test-%d-%d", os.Getpid(), time.Now().UnixNano())
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := tt.socket(t)
			got := listen(t, name)
			n, err := New(env(map[string]string{"NOTIFY_SOCKET": name}))
			if err != nil || !n.Enabled() {
				t.Fatalf("New() = %v, %v; want an enabled notifier", n, err)
			}
			for _, msg := range []string{Ready + "\nSTATUS=first verdict: Standby", Watchdog} {
				if err := n.Notify(msg); err != nil {
					t.Fatalf("Notify(%q): %v", msg, err)
				}
				if m := receive(t, got); m != msg {
					t.Errorf("received %q, want %q", m, msg)
				}
			}
		})
	}
}

func TestNotifyWithoutSocketIsANoOp(t *testing.T) {
	n, err := New(env(nil))
	if err != nil || n.Enabled() {
		t.Fatalf("New() without NOTIFY_SOCKET = %+v, %v; want disabled, no error", n, err)
	}
	if err := n.Notify(Ready); err != nil {
		t.Errorf("Notify on a disabled notifier: %v", err)
	}
	var zero *Notifier
	if err := zero.Notify(Ready); err != nil {
		t.Errorf("Notify on a nil notifier: %v", err)
	}
}

func TestNotifyReportsAMissingListener(t *testing.T) {
	n, err := New(env(map[string]string{"NOTIFY_SOCKET": filepath.Join(t.TempDir(), "gone.sock")}))
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Notify(Ready); err == nil || !strings.Contains(err.Error(), "sd_notify") {
		t.Errorf("Notify to a socket nobody listens on = %v, want an sd_notify error", err)
	}
}

func TestNewRefusesARelativeSocket(t *testing.T) {
	if _, err := New(env(map[string]string{"NOTIFY_SOCKET": "vsock:2:1234"})); err == nil {
		t.Error("New(vsock:…) = nil error, want one")
	}
}

func TestWatchdogInterval(t *testing.T) {
	const pid = 4242
	tests := []struct {
		name    string
		env     map[string]string
		want    time.Duration
		wantErr bool
	}{
		{"no WATCHDOG_USEC: watchdog off", nil, 0, false},
		{"WATCHDOG_USEC alone applies to us", map[string]string{"WATCHDOG_USEC": "30000000"}, 30 * time.Second, false},
		{"WATCHDOG_PID names us", map[string]string{"WATCHDOG_USEC": "500000", "WATCHDOG_PID": "4242"}, 500 * time.Millisecond, false},
		{"WATCHDOG_PID names another process: off for us", map[string]string{"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, 0, false},
		{"malformed WATCHDOG_USEC", map[string]string{"WATCHDOG_USEC": "30s"}, 0, true},
		{"zero WATCHDOG_USEC", map[string]string{"WATCHDOG_USEC": "0"}, 0, true},
		{"malformed WATCHDOG_PID", map[string]string{"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "me"}, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := WatchdogInterval(env(tt.env), pid)
			if got != tt.want || (err != nil) != tt.wantErr {
				t.Errorf("WatchdogInterval() = %v, %v; want %v, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}
