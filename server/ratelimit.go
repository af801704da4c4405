package server

import (
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"
)

// The operator views (/cluster, /realPrimary, /events) cost more than a
// check: a survey of every node, a read of repmgr.events, a larger body.
// Each client may ask them viewRate times a second, in bursts of viewBurst;
// `pgquorum status`, keepalived's check and a dashboard stay far below.
// Checks (/state, /primary, the Patroni checks) are never limited: HAProxy
// polls them, and a 429 there would take a node out of service.
const (
	viewRate  = 10.0
	viewBurst = 20
	// maxViewClients bounds the memory of the limiter: a client seen more
	// recently than its bucket takes to refill is remembered, up to this
	// many; beyond them new clients are refused until some refill.
	maxViewClients = 4096
)

// viewLimiter is a token bucket per client address. IPv6 clients are
// counted by /64, the block one host usually has, so that a host cannot
// dodge its limit by changing addresses.
type viewLimiter struct {
	now     func() time.Time
	rate    float64 // tokens a second
	burst   float64
	clients int

	mu        sync.Mutex
	buckets   map[netip.Addr]*bucket
	lastSweep time.Time
}

type bucket struct {
	tokens float64
	at     time.Time // when tokens was computed
}

func newViewLimiter(now func() time.Time) *viewLimiter {
	return &viewLimiter{now: now, rate: viewRate, burst: viewBurst, clients: maxViewClients, buckets: map[netip.Addr]*bucket{}}
}

// allow takes a token of client's bucket, or says how long until one is
// there.
func (l *viewLimiter) allow(client netip.Addr) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b, ok := l.buckets[client]
	if !ok {
		if len(l.buckets) >= l.clients && !l.sweepLocked(now) {
			return false, l.fill()
		}
		b = &bucket{tokens: l.burst, at: now}
		l.buckets[client] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.at).Seconds()*l.rate)
	b.at = now
	if b.tokens < 1 {
		return false, time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
	}
	b.tokens--
	return true, 0
}

// sweepLocked forgets the clients whose buckets are full again, which is
// what a client never seen gets, and tells whether that made room. It runs
// at most once per fill time, so that a crowd of new clients cannot make
// every request scan the map.
func (l *viewLimiter) sweepLocked(now time.Time) bool {
	if now.Sub(l.lastSweep) < l.fill() {
		return false
	}
	l.lastSweep = now
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.at).Seconds()*l.rate >= l.burst {
			delete(l.buckets, k)
		}
	}
	return len(l.buckets) < l.clients
}

// fill is how long an empty bucket takes to fill.
func (l *viewLimiter) fill() time.Duration {
	return time.Duration(l.burst / l.rate * float64(time.Second))
}

// clientKey is the address a request is counted under: its remote IP (no
// forwarding header is trusted), an IPv6 one cut to its /64. A RemoteAddr
// that does not parse, which net/http never gives, shares the zero key.
func clientKey(remoteAddr string) netip.Addr {
	ap, err := netip.ParseAddrPort(remoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	ip := ap.Addr().Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.Addr()
	}
	return ip
}

// limited answers 429 with Retry-After (whole seconds, rounded up) to a
// client over its rate, and passes the others to next.
func (s *Server) limited(path string, next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ok, wait := s.viewLimit.allow(clientKey(r.RemoteAddr))
		if !ok {
			s.metrics.rateLimited(path)
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
			writeJSON(w, http.StatusTooManyRequests, map[string]string{"error": "too many requests for " + path + " from this client: " +
				strconv.FormatFloat(viewRate, 'f', -1, 64) + " a second allowed"})
			return
		}
		next(w, r)
	}
}
