package failover

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/consensus"
	"github.com/pgquorum/pgquorum/repmgr"
)

// Fakes of Local, Actions and Reporters, for the shells' tests. Each
// records what it was asked, under a lock: the shells call them from
// several goroutines.

// fakeLocal is the local node: its facts and verdict, as set by the test.
type fakeLocal struct {
	mu       sync.Mutex
	facts    consensus.Snapshot
	verdict  api.State
	nodes    []repmgr.Node
	stepping string
	steps    []string // every StepDown, in order
	released []string
	binds    time.Duration // what Binds answers for any holder
}

func (l *fakeLocal) Binds(string, int) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.binds
}

func (l *fakeLocal) Facts(context.Context) *consensus.Snapshot {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.facts
	return &s
}

func (l *fakeLocal) Snapshot(context.Context) *consensus.Snapshot {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.facts
	s.Verdict.State = l.verdict
	return &s
}

func (l *fakeLocal) DownFor() time.Duration { return 0 }

func (l *fakeLocal) KnownNodes() []repmgr.Node {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.nodes
}

func (l *fakeLocal) StepDown(reason string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stepping = reason
	l.steps = append(l.steps, reason)
}

func (l *fakeLocal) SteppingDown() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stepping
}

func (l *fakeLocal) Release(holder string, _ int) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.released = append(l.released, holder)
	return true, nil
}

// fakeActions records every call; run, when set, is what every action
// that changes PostgreSQL does (its error is the action's).
type fakeActions struct {
	mu         sync.Mutex
	calls      []string
	run        func(ctx context.Context, what string) error
	inRecovery map[string]bool // by node name; a node not in it does not answer
	probeTakes time.Duration   // how long InRecovery takes to answer, within its ctx
	control    repmgr.Control
	running    bool
	postmaster repmgr.RunningServer // what the data directory says
	// timelines are the primaries' timeline histories, by node name;
	// standbyEnd, where the local WAL ends. Neither set: no fork is seen.
	timelines  map[string]repmgr.Timelines
	standbyEnd repmgr.StandbyEnd
	// lookup, when set, is what reading a primary's timelines does
	// first (its error is the read's): a host that does not answer.
	lookup func(ctx context.Context, node string) error
}

func (x *fakeActions) do(ctx context.Context, what string) error {
	x.mu.Lock()
	x.calls = append(x.calls, what)
	run := x.run
	x.mu.Unlock()
	if run == nil {
		return nil
	}
	return run(ctx, what)
}

func (x *fakeActions) called() []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	return append([]string(nil), x.calls...)
}

func (x *fakeActions) Promote(ctx context.Context, d api.Decision) (string, error) {
	return "", x.do(ctx, fmt.Sprintf("promote %d", d.Epoch))
}

func (x *fakeActions) Repoint(ctx context.Context, upstream repmgr.Node) error {
	return x.do(ctx, "repoint "+upstream.Name)
}

func (x *fakeActions) Follow(ctx context.Context, d api.Decision, upstream repmgr.Node) (string, error) {
	return "", x.do(ctx, "follow "+upstream.Name)
}

func (x *fakeActions) InRecovery(ctx context.Context, n repmgr.Node) (bool, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.calls = append(x.calls, "probe "+n.Name)
	if x.probeTakes > 0 {
		select {
		case <-time.After(x.probeTakes):
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
	r, ok := x.inRecovery[n.Name]
	if !ok {
		return false, errors.New("connection refused")
	}
	return r, nil
}

func (x *fakeActions) Checkpoint(ctx context.Context) error { return x.do(ctx, "checkpoint") }

func (x *fakeActions) Stop(ctx context.Context) (string, error) {
	err := x.do(ctx, "stop")
	if err == nil {
		x.mu.Lock()
		x.running = false
		x.mu.Unlock()
	}
	return "", err
}

func (x *fakeActions) Start(ctx context.Context) (string, error) { return "", x.do(ctx, "start") }

func (x *fakeActions) Stopped(ctx context.Context) (repmgr.Control, bool, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.calls = append(x.calls, "control file")
	return x.control, x.running, nil
}

func (x *fakeActions) RunningServer(context.Context) (repmgr.RunningServer, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.postmaster, nil
}

func (x *fakeActions) Rejoin(ctx context.Context, d api.Decision, primary repmgr.Node) (string, error) {
	return "", x.do(ctx, "rejoin "+primary.Name)
}

func (x *fakeActions) Timelines(ctx context.Context, n repmgr.Node) (repmgr.Timelines, error) {
	x.mu.Lock()
	lookup := x.lookup
	x.mu.Unlock()
	if lookup != nil {
		if err := lookup(ctx, n.Name); err != nil {
			return repmgr.Timelines{}, err
		}
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.timelines[n.Name], nil
}

func (x *fakeActions) StandbyEnd(context.Context) (repmgr.StandbyEnd, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.standbyEnd, nil
}

func (x *fakeActions) Fence(ctx context.Context, reason string) (string, error) {
	return "", x.do(ctx, "fence")
}

// fakeReporters answers reports from a map by address; an address not in
// it does not answer. It records every request.
type fakeReporters struct {
	mu      sync.Mutex
	reports map[string]*api.Report
	deposed map[string]*api.DepositionAnswer // by address; one not in it does not answer
	asked   []api.ReportRequest
	posts   []string
}

func (p *fakeReporters) Deposition(_ context.Context, addr string, _ api.DepositionRequest) (*api.DepositionAnswer, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	a, ok := p.deposed[addr]
	if !ok {
		return nil, errors.New("connection refused")
	}
	cp := *a
	return &cp, nil
}

func (p *fakeReporters) Report(_ context.Context, addr string, req api.ReportRequest) (*api.Report, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.asked = append(p.asked, req)
	r, ok := p.reports[addr]
	if !ok {
		return nil, errors.New("connection refused")
	}
	cp := *r
	return &cp, nil
}

func (p *fakeReporters) Post(_ context.Context, addr, path string, req, out any) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.posts = append(p.posts, addr+path)
	return nil
}

var (
	_ Local     = (*fakeLocal)(nil)
	_ Actions   = (*fakeActions)(nil)
	_ Reporters = (*fakeReporters)(nil)
)
