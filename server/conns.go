package server

import (
	"container/list"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"runtime/debug"
	"sync"
	"syscall"
	"time"
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
	// onQuiet (optional) runs, in a goroutine of its own, when the open
	// connections fall back under max/8 after reaching max/2: a flood is
	// over.
	onQuiet func()

	mu    sync.Mutex
	conns map[net.Conn]*list.Element // open connections; nil element: active
	fresh list.List                  // StateNew, oldest first
	idle  list.List                  // StateIdle, oldest first
	flood bool                       // max/2 reached, max/8 not since
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
	quiet := false
	switch {
	case open >= c.max/2:
		c.flood = true
	case c.flood && open <= c.max/8:
		c.flood, quiet = false, true
	}
	c.mu.Unlock()
	if quiet && c.onQuiet != nil {
		go c.onQuiet()
	}
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

// releaseEvery bounds how often memoryRelease gives memory back.
const releaseEvery = time.Minute

// memoryRelease returns what a connection cap calls once a flood is over:
// it gives the memory the flood's connections held back to the OS, at most
// once per releaseEvery. Left to itself the Go runtime keeps it for minutes:
// the heap goal set during the flood holds off the next collection while
// the daemon allocates little, and the scavenger keeps pages below that
// goal. Two collections, because sync.Pool (net/http's buffers) keeps its
// contents through one.
func memoryRelease(log *slog.Logger) func() {
	var mu sync.Mutex
	var last time.Time
	return func() {
		mu.Lock()
		defer mu.Unlock()
		if !last.IsZero() && time.Since(last) < releaseEvery {
			return
		}
		last = time.Now()
		before := heapSys()
		runtime.GC()
		debug.FreeOSMemory()
		log.Info("connection flood over: memory returned to the OS", "heap_before", before, "heap_after", heapSys())
	}
}

// heapSys is the heap memory the runtime holds from the OS and has not
// returned, in bytes.
func heapSys() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapSys - m.HeapReleased
}
