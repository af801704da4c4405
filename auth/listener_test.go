package auth_test

import (
	"net"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/auth"
)

// TestListenerHandsOnOnlyAuthenticatedConnections: a silent client and one
// with the wrong token never reach Accept, and do not hold up a good one.
func TestListenerHandsOnOnlyAuthenticatedConnections(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	server := auth.Stream{Token: auth.NewPeerToken("peer-token-000001", nil, nil), Self: "node2"}
	ln := auth.NewListener(inner, server.Server, 300*time.Millisecond, nil)
	defer func() { _ = ln.Close() }()
	addr := ln.Addr().String()

	silent, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	dial := func(token auth.Secret) error {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return err
		}
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		_, err = auth.Stream{Token: auth.NewPeerToken(token, nil, nil)}.Client(c, "node2")
		if err != nil {
			c.Close()
		}
		return err
	}
	if err := dial("not-the-token-0001"); err == nil {
		t.Error("a dialer with another token got through")
	}
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	start := time.Now()
	if err := dial("peer-token-000001"); err != nil {
		t.Fatalf("good dialer: %v", err)
	}
	select {
	case c := <-accepted:
		c.Close()
		if d := time.Since(start); d > 200*time.Millisecond {
			t.Errorf("the good connection waited %s behind the silent one", d)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the good connection was never accepted")
	}
	select {
	case c := <-accepted:
		t.Errorf("a second connection was accepted: %v", c.RemoteAddr())
	case <-time.After(500 * time.Millisecond): // past the silent client's timeout
	}
}
