package auth

import (
	"bytes"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// Upper bounds of what each side of the token handshake reads before it
// decides: a listener the dialer's opening and MAC, a dialer the listener's
// nonce, name length, longest name and MAC.
const (
	maxListenerRead = len(streamMagic) + streamNonce + macSize
	maxDialerRead   = streamNonce + 1 + maxNameLen + macSize
)

// FuzzStreamHandshake feeds arbitrary bytes, such as anyone who reaches the
// Raft port can send before authenticating, to each side of the token
// handshake: to the listener as the dialer's messages, to the dialer as the
// listener's. Neither side may panic, block, read more than its handshake
// holds, or authenticate: without the token no MAC verifies, and a handshake
// recorded with the token does not verify again under fresh nonces. The
// seeds include such a recorded handshake, so the fuzzer starts from bytes
// that reach the MAC checks.
func FuzzStreamHandshake(f *testing.F) {
	toListener, toDialer := recordHandshake(f)
	f.Add(toListener, toDialer)
	f.Add([]byte{}, []byte{})
	f.Add([]byte(streamMagic), toDialer[:streamNonce])
	f.Add(toListener[:len(streamMagic)+streamNonce], append(toDialer[:streamNonce:streamNonce], 255))
	f.Add([]byte("GET / HTTP/1.1\r\nHost: node2\r\n\r\n"), append(bytes.Repeat([]byte{0}, streamNonce), 0))
	f.Add([]byte{0x16, 0x03, 0x01, 0x00, 0xa5, 0x01}, bytes.Repeat([]byte{0xff}, maxDialerRead+1)) // a TLS ClientHello; the longest name
	f.Add([]byte(strings.Replace(string(toListener), "/1\n", "/2\n", 1)), toDialer)

	// crypto/rand nonces, as in production: the recorded seed is a replay.
	token := NewPeerToken("peer-token-000001", nil, nil)
	f.Fuzz(func(t *testing.T, toListener, toDialer []byte) {
		listener := Stream{Token: token, Self: "node2"}
		in := &scriptedConn{r: bytes.NewReader(toListener)}
		if err := within(t, func() error { _, err := listener.Server(in); return err }); err == nil {
			t.Fatalf("listener authenticated a dialer from %q", toListener)
		}
		if in.read > maxListenerRead {
			t.Errorf("listener read %d bytes, more than the %d of a handshake", in.read, maxListenerRead)
		}

		dialer := Stream{Token: token, Self: "node1"}
		in = &scriptedConn{r: bytes.NewReader(toDialer)}
		if err := within(t, func() error { _, err := dialer.Client(in, "node2"); return err }); err == nil {
			t.Fatalf("dialer authenticated a listener from %q", toDialer)
		}
		if in.read > maxDialerRead {
			t.Errorf("dialer read %d bytes, more than the %d of a handshake", in.read, maxDialerRead)
		}
	})
}

// within runs handshake and fails t unless it returns within 5 s, ample on
// a loaded machine: its conn never blocks (reads end in io.EOF), so more is
// a loop.
func within(t *testing.T, handshake func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- handshake() }()
	select {
	case err := <-done:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("handshake still running after 5 s on a conn that never blocks")
		return nil
	}
}

// recordHandshake runs a real token handshake over a pipe and returns what
// each side read: the dialer's messages, then the listener's.
func recordHandshake(f *testing.F) (toListener, toDialer []byte) {
	f.Helper()
	a, b := net.Pipe()
	dialer := &recordingConn{Conn: a}
	listener := &recordingConn{Conn: b}
	token := NewPeerToken("peer-token-000001", nil, nil)
	done := make(chan error, 1)
	go func() {
		_, err := Stream{Token: token, Self: "node2"}.Server(listener)
		done <- err
	}()
	_ = a.SetDeadline(time.Now().Add(5 * time.Second))
	_ = b.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := (Stream{Token: token, Self: "node1"}).Client(dialer, "node2"); err != nil {
		f.Fatalf("record a handshake: dialer: %v", err)
	}
	if err := <-done; err != nil {
		f.Fatalf("record a handshake: listener: %v", err)
	}
	_ = a.Close()
	_ = b.Close()
	return listener.got.Bytes(), dialer.got.Bytes()
}

// recordingConn keeps what was read through it.
type recordingConn struct {
	net.Conn
	got bytes.Buffer
}

func (c *recordingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.got.Write(p[:n])
	return n, err
}

// scriptedConn reads from r, then io.EOF, swallows writes, and counts the
// bytes read.
type scriptedConn struct {
	r    io.Reader
	read int
}

func (c *scriptedConn) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.read += n
	return n, err
}

func (c *scriptedConn) Write(p []byte) (int, error) { return len(p), nil }
func (c *scriptedConn) Close() error                { return nil }
func (c *scriptedConn) LocalAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 7000}
}
func (c *scriptedConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2), Port: 40000}
}
func (c *scriptedConn) SetDeadline(time.Time) error      { return nil }
func (c *scriptedConn) SetReadDeadline(time.Time) error  { return nil }
func (c *scriptedConn) SetWriteDeadline(time.Time) error { return nil }
