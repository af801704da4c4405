package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/api"
)

// fakeConn is a net.Conn that only records being closed.
type fakeConn struct {
	net.Conn
	id     int
	closed *[]int
	mu     *sync.Mutex
}

func (c fakeConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	*c.closed = append(*c.closed, c.id)
	return nil
}

// connEvent is connection id entering a state.
type connEvent struct {
	id    int
	state http.ConnState
}

func TestConnCap(t *testing.T) {
	const (
		newC   = http.StateNew
		active = http.StateActive
		idle   = http.StateIdle
		closed = http.StateClosed
	)
	tests := []struct {
		name       string
		events     []connEvent
		wantClosed []int
		wantOpen   int
	}{
		{name: "under the cap nothing is closed",
			events:   []connEvent{{1, newC}, {2, newC}, {3, newC}},
			wantOpen: 3},
		{name: "over the cap the oldest without a request is closed",
			events:     []connEvent{{1, newC}, {2, newC}, {3, newC}, {4, newC}, {5, newC}},
			wantClosed: []int{1, 2}, wantOpen: 3},
		{name: "connections without a request go before idle ones",
			events:     []connEvent{{1, newC}, {1, active}, {1, idle}, {2, newC}, {3, newC}, {4, newC}},
			wantClosed: []int{2}, wantOpen: 3},
		{name: "the oldest idle one goes when none is waiting for a request",
			events: []connEvent{{1, newC}, {2, newC}, {3, newC}, {2, active}, {2, idle}, {1, active}, {1, idle},
				{3, active}, {4, newC}},
			wantClosed: []int{2}, wantOpen: 3},
		{name: "an active connection is never closed: the new one is refused",
			events:     []connEvent{{1, newC}, {2, newC}, {3, newC}, {1, active}, {2, active}, {3, active}, {4, newC}},
			wantClosed: []int{4}, wantOpen: 3},
		{name: "a closed connection frees its slot",
			events:   []connEvent{{1, newC}, {2, newC}, {3, newC}, {2, closed}, {4, newC}},
			wantOpen: 3},
		{name: "a hijacked connection frees its slot",
			events:   []connEvent{{1, newC}, {2, newC}, {3, newC}, {3, http.StateHijacked}, {4, newC}},
			wantOpen: 3},
		{name: "an evicted connection reporting late is not counted again",
			events:     []connEvent{{1, newC}, {2, newC}, {3, newC}, {4, newC}, {1, active}, {1, idle}, {1, closed}},
			wantClosed: []int{1}, wantOpen: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var gotClosed []int
			conns := map[int]net.Conn{}
			c := newConnCap(3)
			evictions := 0
			c.onEvict = func() { evictions++ }
			for _, e := range tt.events {
				if conns[e.id] == nil {
					conns[e.id] = fakeConn{id: e.id, closed: &gotClosed, mu: &mu}
				}
				c.track(conns[e.id], e.state)
			}
			if !slices.Equal(gotClosed, tt.wantClosed) || evictions != len(tt.wantClosed) {
				t.Errorf("closed %v (%d counted), want %v", gotClosed, evictions, tt.wantClosed)
			}
			if got := c.open(); got != tt.wantOpen {
				t.Errorf("%d open, want %d", got, tt.wantOpen)
			}
		})
	}
}

// TestHalfOpenFloodDoesNotLockOutClients: far more half-open connections
// than the cap (silent ones and ones that sent part of a header) leave the
// server holding at most the cap, and a client that sends its request is
// answered every time.
func TestHalfOpenFloodDoesNotLockOutClients(t *testing.T) {
	const maxConns, flood, clients = 16, 300, 20
	s := New(Options{MaxConns: maxConns}, &fakeVerdicts{snapshot: snapshotIn(api.StatePrimary, 2, 2)})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := s.HTTPServer(ln.Addr().String())
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() { _ = hs.Close() })
	addr := ln.Addr().String()

	var held []net.Conn
	t.Cleanup(func() {
		for _, c := range held {
			c.Close()
		}
	})
	for i := range flood {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("half-open connection %d: %v", i, err)
		}
		held = append(held, c)
		if i%2 == 1 {
			fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\n", api.PathState) // never finished
		}
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	for i := range clients {
		resp, err := client.Get("http://" + addr + api.PathState)
		if err != nil {
			t.Fatalf("client %d after the flood: %v", i, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("client %d: status %d, want 200", i, resp.StatusCode)
		}
	}
	if open := s.conns.open(); open > maxConns {
		t.Errorf("%d connections open, want at most %d", open, maxConns)
	}
	// The server closed all but the cap of the flood: their reads end, with
	// EOF, or with a reset where it closed a connection with unread bytes.
	ended := 0
	for _, c := range held {
		_ = c.SetReadDeadline(time.Now().Add(time.Millisecond))
		var ne net.Error
		if _, err := c.Read(make([]byte, 1)); err != nil && !(errors.As(err, &ne) && ne.Timeout()) {
			ended++
		}
	}
	if ended < flood-maxConns {
		t.Errorf("%d of %d flood connections closed by the server, want at least %d", ended, flood, flood-maxConns)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = hs.Shutdown(ctx)
}

func TestDefaultMaxConns(t *testing.T) {
	if n := defaultMaxConns(); n < maxConnsFloor || n > maxConnsCeiling {
		t.Errorf("defaultMaxConns() = %d, want %d to %d", n, maxConnsFloor, maxConnsCeiling)
	}
}

// TestConnCapQuietAfterFlood: onQuiet runs once when the open connections
// fall to max/8 after reaching max/2, and not for ordinary traffic.
func TestConnCapQuietAfterFlood(t *testing.T) {
	var mu sync.Mutex
	var closed []int
	quiet := make(chan struct{}, 10)
	c := newConnCap(16)
	c.onQuiet = func() { quiet <- struct{}{} }
	conns := make([]net.Conn, 16)
	for i := range conns {
		conns[i] = fakeConn{id: i, closed: &closed, mu: &mu}
	}
	for _, conn := range conns[:4] { // ordinary traffic: under max/2
		c.track(conn, http.StateNew)
	}
	for _, conn := range conns[:4] {
		c.track(conn, http.StateClosed)
	}
	for _, conn := range conns[:8] { // a flood: max/2 reached
		c.track(conn, http.StateNew)
	}
	for _, conn := range conns[:6] { // 2 left = max/8
		c.track(conn, http.StateClosed)
	}
	select {
	case <-quiet:
	case <-time.After(5 * time.Second):
		t.Fatal("onQuiet did not run after the flood")
	}
	for _, conn := range conns[6:8] {
		c.track(conn, http.StateClosed)
	}
	time.Sleep(10 * time.Millisecond) // a second call, if any, would be under way
	if n := len(quiet); n != 0 {
		t.Errorf("onQuiet ran %d more times, want once", n)
	}
}
