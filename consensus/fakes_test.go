package consensus

import (
	"context"
	"errors"
	"fmt"
	"maps"
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
	mu    sync.Mutex
	t     time.Time
	slept time.Duration // time suspended: counted by Boot only
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

// Suspend is the machine suspended for d: CLOCK_BOOTTIME counts it,
// CLOCK_MONOTONIC (Go's monotonic readings, the injected Now) does not.
func (c *fakeClock) Suspend(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.slept += d
}

// Boot reads the fake clock as CLOCK_BOOTTIME.
func (c *fakeClock) Boot() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t.Sub(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) + c.slept
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

// peerAnswer is how a fake peer answers: to a vote request (as itself, with
// a grant unless refuse is set, or exactly vote when set) and to /state
// (status, body). hang makes it wait for its ctx; deaf makes it ignore ctx
// and answer only once closed.
type peerAnswer struct {
	as     string // the node it answers as; default: the node at that address
	refuse string // refuse the vote with this reason
	vote   *api.VoteAnswer
	status int
	body   *api.StateBody
	err    error
	hang   bool
	deaf   chan struct{}
}

// grant answers as the node at its address, granting every vote.
var grant = peerAnswer{}

// fakePeers answers vote requests and /state per address and counts the calls.
type fakePeers struct {
	mu         sync.Mutex
	nodes      []repmgr.Node // to answer as a registered node: its node_id
	answers    map[string]peerAnswer
	voteCalls  map[string]int
	stateCalls map[string]int
	requests   []api.VoteRequest
}

func newFakePeers(nodes []repmgr.Node, answers map[string]peerAnswer) *fakePeers {
	return &fakePeers{nodes: nodes, answers: answers, voteCalls: map[string]int{}, stateCalls: map[string]int{}}
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

func (f *fakePeers) Vote(ctx context.Context, addr string, req api.VoteRequest) (*api.VoteAnswer, error) {
	a, err := f.answer(ctx, addr, f.voteCalls)
	f.mu.Lock()
	f.requests = append(f.requests, req)
	f.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if a.vote != nil {
		v := *a.vote
		return &v, nil
	}
	name := a.as
	if name == "" {
		name = strings.TrimSuffix(addr, ":5999")
	}
	me, _ := repmgr.ByName(f.nodes, name)
	v := &api.VoteAnswer{Protocol: api.VoteProtocol, Voter: name, VoterID: me.ID, VoterType: me.Type,
		SystemID: testSystemID, Timeline: 1, Candidate: req.Candidate, Granted: a.refuse == "", Reason: a.refuse}
	if v.Granted {
		v.LeaseMillis = LeaseFor(testTTL).Milliseconds()
	}
	return v, nil
}

func (f *fakePeers) State(ctx context.Context, addr string) (int, *api.StateBody, error) {
	a, err := f.answer(ctx, addr, f.stateCalls)
	if err != nil {
		return 0, nil, err
	}
	return a.status, a.body, nil
}

// calls returns the calls to each address.
func (f *fakePeers) calls() (vote, state map[string]int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.voteCalls), maps.Clone(f.stateCalls)
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

const testSystemID = "7712879221244077529"

// node returns a registered node whose conninfo host is its name.
func node(id int, name, typ, location string, active bool) repmgr.Node {
	return repmgr.Node{ID: id, Name: name, Type: typ, Location: location, Active: active, Priority: 100,
		Conninfo: "host=" + name + " user=repmgr dbname=repmgr"}
}

// site returns n1 as the active primary of dc1 and n2…n<size> as its
// standbys, node_id i for ni.
func site(size int) []repmgr.Node {
	nodes := []repmgr.Node{node(1, "n1", repmgr.TypePrimary, "dc1", true)}
	for i := 2; i <= size; i++ {
		nodes = append(nodes, node(i, fmt.Sprintf("n%d", i), repmgr.TypeStandby, "dc1", true))
	}
	return nodes
}

// primaryFacts are what n1 sees of itself as the primary of nodes, on
// timeline 1.
func primaryFacts(nodes []repmgr.Node) repmgr.Facts {
	return repmgr.Facts{Nodes: nodes, Server: repmgr.Server{SystemID: testSystemID, Timeline: 1}}
}

// Mono reads the fake clock as a Monotonic one.
func (c *fakeClock) Mono() time.Duration {
	return c.Now().Sub(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
}

// memLeases is a LeaseStore in memory; err makes every Save fail.
type memLeases struct {
	mu    sync.Mutex
	lease Lease
	found bool
	saves int
	err   error
}

func (m *memLeases) Load() (Lease, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lease, m.found, nil
}

func (m *memLeases) Save(l Lease) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return m.err
	}
	m.lease, m.found = l, true
	m.saves++
	return nil
}

// openBallot returns a ballot that holds no lease, as after a restart whose
// recorded lease, saved just before, has run out.
func openBallot(clock *fakeClock, ttl time.Duration) *Ballot {
	now := clock.Mono()
	b, err := NewBallot(LeaseFor(ttl), clock.Mono, &memLeases{found: true, lease: Lease{Until: now, Saved: now}})
	if err != nil {
		panic(err)
	}
	return b
}
