package main

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/consensus"
	"github.com/pgquorum/pgquorum/internal/sdnotify"
)

func TestVerdictFresh(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name      string
		checkedAt time.Time
		want      bool
	}{
		{"no verdict yet", time.Time{}, false},
		{"verdict of this instant", now, true},
		{"verdict younger than half the watchdog", now.Add(-14 * time.Second), true},
		{"verdict exactly half the watchdog old", now.Add(-15 * time.Second), false},
		{"verdict older than the watchdog", now.Add(-time.Minute), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := verdictFresh(tt.checkedAt, now, 30*time.Second); got != tt.want {
				t.Errorf("verdictFresh(%v) = %v, want %v", tt.checkedAt, got, tt.want)
			}
		})
	}
}

type nopObserver struct{}

func (nopObserver) Refreshed(*consensus.Snapshot, time.Duration, bool) {}
func (nopObserver) Surveyed(consensus.Survey)                          {}

// TestNotifySystemdReadyAfterFirstVerdictThenWatchdog plays systemd with a
// unixgram socket: nothing before the first verdict, then READY=1, then
// WATCHDOG=1 while verdicts are fresh, and nothing once they are stale.
func TestNotifySystemdReadyAfterFirstVerdictThenWatchdog(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }() // read only
	n, err := sdnotify.New(func(string) string { return sock })
	if err != nil {
		t.Fatal(err)
	}
	w := newVerdictWatch(nopObserver{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	const watchdog = 200 * time.Millisecond
	go func() {
		notifySystemd(ctx, n, w, watchdog, slog.New(slog.DiscardHandler))
		close(done)
	}()
	read := func(timeout time.Duration) (string, bool) {
		buf := make([]byte, 256)
		_ = conn.SetReadDeadline(time.Now().Add(timeout)) // without it the read below only waits longer
		k, err := conn.Read(buf)
		return string(buf[:k]), err == nil
	}
	if m, ok := read(3 * watchdog); ok {
		t.Fatalf("before any verdict: received %q, want nothing", m)
	}
	refresh := func() {
		s := &consensus.Snapshot{}
		s.Verdict.CheckedAt = time.Now()
		w.Refreshed(s, 0, false)
	}
	refresh()
	if m, ok := read(2 * time.Second); !ok || m != sdnotify.Ready+"\nSTATUS=serving verdicts" {
		t.Fatalf("after the first verdict: received %q (%v), want READY=1", m, ok)
	}
	// Keep verdicts fresh: the watchdog is fed.
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(watchdog / 10):
				refresh()
			}
		}
	}()
	if m, ok := read(2 * time.Second); !ok || m != sdnotify.Watchdog {
		t.Fatalf("with fresh verdicts: received %q (%v), want WATCHDOG=1", m, ok)
	}
	close(stop)
	// Stale verdicts: the watchdog starves. Drain what was already sent.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if m, ok := read(watchdog); !ok {
			break
		} else if m != sdnotify.Watchdog || time.Now().After(deadline) {
			t.Fatalf("after verdicts stopped: received %q, want silence", m)
		}
	}
	cancel()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("notifySystemd did not return after its context ended")
	}
}

func TestNotifySystemdWithoutSocketReturnsAtOnce(t *testing.T) {
	n, _ := sdnotify.New(func(string) string { return "" })
	done := make(chan struct{})
	go func() {
		notifySystemd(context.Background(), n, newVerdictWatch(nopObserver{}), time.Second, slog.New(slog.DiscardHandler))
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("notifySystemd without NOTIFY_SOCKET did not return")
	}
}
