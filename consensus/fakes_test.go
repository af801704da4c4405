package consensus

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/repmgr"
)

// fakeClock is the Checker's injected clock; it moves only when told.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fakeProber answers with facts it is given, counts its calls and, when gate
// is set, blocks each probe until gate is closed.
type fakeProber struct {
	mu     sync.Mutex
	facts  repmgr.Facts
	err    error
	calls  int
	gate   chan struct{}
	during func() // runs inside each probe, e.g. to advance the clock
}

func (p *fakeProber) Probe(ctx context.Context) (repmgr.Facts, error) {
	p.mu.Lock()
	p.calls++
	facts, err, gate, during := p.facts, p.err, p.gate, p.during
	p.mu.Unlock()
	if gate != nil {
		<-gate
	}
	if during != nil {
		during()
	}
	return facts, err
}

func (p *fakeProber) set(facts repmgr.Facts, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.facts, p.err = facts, err
}

func (p *fakeProber) Calls() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls
}

// peerAnswer is how a fake peer answers; hang makes it wait for its ctx.
type peerAnswer struct {
	primary string
	status  int
	err     error
	hang    bool
	deaf    chan struct{} // when set: ignore ctx and answer only once closed
	body    *api.StateBody
}

// fakePeers answers /primary and /state per address and counts the calls.
type fakePeers struct {
	mu           sync.Mutex
	answers      map[string]peerAnswer // addr → answer
	primaryCalls map[string]int
	stateCalls   map[string]int
}

func newFakePeers(answers map[string]peerAnswer) *fakePeers {
	return &fakePeers{answers: answers, primaryCalls: map[string]int{}, stateCalls: map[string]int{}}
}

func (f *fakePeers) answer(ctx context.Context, addr string, calls map[string]int) (peerAnswer, error) {
	f.mu.Lock()
	calls[addr]++
	a, ok := f.answers[addr]
	f.mu.Unlock()
	if !ok {
		return a, errUnknownPeer
	}
	if a.hang {
		<-ctx.Done()
		return a, ctx.Err()
	}
	if a.deaf != nil {
		<-a.deaf
		return a, errors.New("deaf peer answered late")
	}
	return a, a.err
}

func (f *fakePeers) Primary(ctx context.Context, addr string) (string, error) {
	a, err := f.answer(ctx, addr, f.primaryCalls)
	if err != nil {
		return "", err
	}
	return a.primary, nil
}

func (f *fakePeers) State(ctx context.Context, addr string) (int, *api.StateBody, error) {
	a, err := f.answer(ctx, addr, f.stateCalls)
	if err != nil {
		return 0, nil, err
	}
	return a.status, a.body, nil
}

// calls returns the total calls and those to each address.
func (f *fakePeers) calls() (primary, state map[string]int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	primary, state = map[string]int{}, map[string]int{}
	for k, v := range f.primaryCalls {
		primary[k] = v
	}
	for k, v := range f.stateCalls {
		state[k] = v
	}
	return primary, state
}

var errUnknownPeer = errors.New("fake peer: no answer configured for this address")

// addr is where the Checker's Addresses put node name: its conninfo host and
// port 5999.
func addr(name string) string { return name + ":5999" }

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// goroutinesIn counts the goroutines whose stack holds fn, to learn that
// callers are parked inside singleflight before a gate is opened.
func goroutinesIn(fn string) int {
	buf := make([]byte, 1<<20)
	n := runtime.Stack(buf, true)
	return strings.Count(string(buf[:n]), fn)
}
