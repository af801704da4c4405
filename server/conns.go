package server

import (
	"container/list"
	"net"
	"net/http"
	"sync"
	"syscall"
)

// connCap keeps at most max connections open on the HTTP server. When a new
// connection would go over, it closes the oldest one that has not sent a
// whole request yet (http.StateNew), failing that the oldest idle one, and
// only when every connection is busy the new one itself. A flood of
// half-open connections then merely cycles through the cap: a client that
// sends its request as soon as it connects (HAProxy, a peer) is served,
// where refusing newcomers would lock it out until the flood stops.
// ReadHeaderTimeout still ends every half-open connection on its own.
type connCap struct {
	max     int
	onCount func(open int) // optional: the number of open connections
	onEvict func()         // optional: a connection closed to make room

	mu    sync.Mutex
	conns map[net.Conn]*list.Element // open connections; nil element: active
	fresh list.List                  // StateNew, oldest first
	idle  list.List                  // StateIdle, oldest first
}

func newConnCap(max int) *connCap {
	return &connCap{max: max, conns: map[net.Conn]*list.Element{}}
}

// track is the http.Server's ConnState hook. net/http calls it with StateNew
// in its accept loop, before the connection's goroutine starts, so a
// connection over the cap is never read from.
func (c *connCap) track(conn net.Conn, state http.ConnState) {
	c.mu.Lock()
	var victim net.Conn
	switch state {
	case http.StateNew:
		if len(c.conns) >= c.max {
			if victim = c.evictLocked(); victim == nil {
				victim = conn // every slot is busy with a request: refuse this one
				break
			}
		}
		c.conns[conn] = c.fresh.PushBack(conn)
	case http.StateActive, http.StateIdle:
		el, open := c.conns[conn]
		if !open {
			break // evicted already; its close is under way
		}
		c.unlist(el)
		c.conns[conn] = nil
		if state == http.StateIdle {
			c.conns[conn] = c.idle.PushBack(conn)
		}
	case http.StateClosed, http.StateHijacked:
		if el, open := c.conns[conn]; open {
			c.unlist(el)
			delete(c.conns, conn)
		}
	}
	open := len(c.conns)
	c.mu.Unlock()
	if c.onCount != nil {
		c.onCount(open)
	}
	if victim != nil {
		victim.Close() // outside the lock: Close may block on a TLS alert
		if c.onEvict != nil {
			c.onEvict()
		}
	}
}

// evictLocked forgets and returns the oldest connection waiting for a
// request, nil when every one is active.
func (c *connCap) evictLocked() net.Conn {
	for _, l := range []*list.List{&c.fresh, &c.idle} {
		if el := l.Front(); el != nil {
			conn := l.Remove(el).(net.Conn)
			delete(c.conns, conn)
			return conn
		}
	}
	return nil
}

// unlist removes el from whichever list holds it; a nil el (an active
// connection) is in none.
func (c *connCap) unlist(el *list.Element) {
	if el == nil {
		return
	}
	// list.Remove ignores an element of another list, so trying both is safe.
	c.fresh.Remove(el)
	c.idle.Remove(el)
}

// open returns the number of connections tracked as open.
func (c *connCap) open() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.conns)
}

// Bounds of the default connection cap: enough for every HAProxy, peer and
// operator of a cluster many times over, and well inside the file
// descriptors the process has, which the database pool, Raft and the agent
// port need too.
const (
	maxConnsCeiling = 1024
	maxConnsFloor   = 64
)

// defaultMaxConns is a quarter of the process's file descriptor limit
// (which the Go runtime raises to the hard limit at start), between
// maxConnsFloor and maxConnsCeiling.
func defaultMaxConns() int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return maxConnsFloor
	}
	return int(min(max(lim.Cur/4, maxConnsFloor), maxConnsCeiling))
}
