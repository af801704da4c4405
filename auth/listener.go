package auth

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"
)

// Listener hands on only the connections whose handshake passed within a
// timeout. Handshakes run concurrently, at most maxPending at once, so a
// client that connects and says nothing holds neither the others nor more
// than one slot until its timeout; a connection that fails never reaches
// the protocol behind (Raft), and each remote host's failure is logged once
// until one of its handshakes passes again.
type Listener struct {
	inner     net.Listener
	handshake func(net.Conn) (net.Conn, error)
	timeout   time.Duration
	log       *slog.Logger
	ready     chan net.Conn
	done      chan struct{}
	closeOnce sync.Once
	slots     chan struct{}
	notes     *LogOnce // by remote host
}

// maxPending bounds the handshakes under way; more connections are closed
// at once.
const maxPending = 64

// NewListener authenticates the connections of inner with handshake, each
// within timeout, and starts accepting.
func NewListener(inner net.Listener, handshake func(net.Conn) (net.Conn, error), timeout time.Duration, log *slog.Logger) *Listener {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l := &Listener{inner: inner, handshake: handshake, timeout: timeout, log: log, ready: make(chan net.Conn),
		done: make(chan struct{}), slots: make(chan struct{}, maxPending), notes: &LogOnce{Log: log}}
	go l.acceptLoop()
	return l
}

// Accept returns the next authenticated connection.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ready:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops accepting; handshakes under way end with their timeout.
func (l *Listener) Close() error {
	var err error
	l.closeOnce.Do(func() {
		close(l.done)
		err = l.inner.Close()
	})
	return err
}

// Addr is the inner listener's address.
func (l *Listener) Addr() net.Addr { return l.inner.Addr() }

func (l *Listener) acceptLoop() {
	var backoff time.Duration
	for {
		conn, err := l.inner.Accept()
		if err != nil {
			select {
			case <-l.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				_ = l.Close() // the inner listener is closed already; this ends Accept
				return
			}
			// Out of file descriptors and the like: wait and retry.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			l.log.Warn("accept failed, retrying", "error", err, "in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		select {
		case l.slots <- struct{}{}:
			go l.authenticate(conn)
		default:
			l.log.Warn("too many handshakes under way, refusing a connection", "remote", conn.RemoteAddr().String())
			conn.Close()
		}
	}
}

func (l *Listener) authenticate(conn net.Conn) {
	defer func() { <-l.slots }()
	_ = conn.SetDeadline(time.Now().Add(l.timeout))
	c, err := l.handshake(conn)
	host, _, _ := net.SplitHostPort(conn.RemoteAddr().String())
	if err != nil {
		conn.Close()
		l.notes.Failed(host, "unauthenticated connection refused (logged once per host until one passes)", "remote", host, "error", err)
		return
	}
	_ = c.SetDeadline(time.Time{})
	l.notes.Passed(host, "connection authenticated again", "remote", host)
	select {
	case l.ready <- c:
	case <-l.done:
		c.Close()
	}
}
