package lab

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/client"
)

// StatePoller asks every node's /state many times a second, the way a
// crowd of HAProxy checks would, and records every answer with the instants
// the request left and the answer came back.
type StatePoller struct {
	cancel context.CancelFunc
	done   sync.WaitGroup
	mu     sync.Mutex
	obs    []Observation
}

// Observation is one answer of one node's /state.
type Observation struct {
	Node       string
	Sent, Recv time.Time
	Status     int // 0: no answer
}

// StartStatePoller polls each of nodes every interval until Stop.
func StartStatePoller(nodes []*Node, interval time.Duration) *StatePoller {
	ctx, cancel := context.WithCancel(context.Background())
	p := &StatePoller{cancel: cancel}
	for _, n := range nodes {
		p.done.Add(1)
		go func() {
			defer p.done.Done()
			t := time.NewTicker(interval)
			defer t.Stop()
			for {
				p.poll(ctx, n)
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
		}()
	}
	return p
}

func (p *StatePoller) poll(ctx context.Context, n *Node) {
	o := Observation{Node: n.Name, Sent: time.Now()}
	// A second bounds each poll; the client keeps connections to every
	// pgquorum, so that a poll costs a request, not a handshake.
	pctx, cancel := context.WithTimeout(ctx, time.Second)
	o.Status, _, _ = n.Quorum().Get(pctx, api.PathState, client.MaxStateBody) // 0 without an answer
	cancel()
	o.Recv = time.Now()
	if ctx.Err() != nil {
		return
	}
	p.mu.Lock()
	p.obs = append(p.obs, o)
	p.mu.Unlock()
}

// Stop stops polling and waits for the pollers to return.
func (p *StatePoller) Stop() {
	p.cancel()
	p.done.Wait()
}

// Run is a span of consecutive 200 answers from one node: from when the
// first of them was asked to when the last came back.
type Run struct {
	Node        string
	First, Last time.Time
	Answers     int
	EndedBy     int // the status that ended it (0: no answer); -1 while it lasts
}

// PrimaryRuns returns every node's spans of consecutive 200s, in order.
func (p *StatePoller) PrimaryRuns() []Run {
	p.mu.Lock()
	obs := append([]Observation(nil), p.obs...)
	p.mu.Unlock()
	sort.SliceStable(obs, func(i, j int) bool { return obs[i].Sent.Before(obs[j].Sent) })
	open := map[string]*Run{}
	var runs []Run
	for _, o := range obs {
		r := open[o.Node]
		switch {
		case o.Status == 200 && r == nil:
			open[o.Node] = &Run{Node: o.Node, First: o.Sent, Last: o.Recv, Answers: 1, EndedBy: -1}
		case o.Status == 200:
			r.Last, r.Answers = o.Recv, r.Answers+1
		case r != nil:
			r.EndedBy = o.Status
			runs = append(runs, *r)
			delete(open, o.Node)
		}
	}
	for _, r := range open {
		runs = append(runs, *r)
	}
	sort.Slice(runs, func(i, j int) bool { return runs[i].First.Before(runs[j].First) })
	return runs
}

// Overlaps returns every pair of 200 spans of different nodes that overlap
// in time: two nodes seen answering 200 at once, or alternating. Spans are
// widened to the request and answer instants, so an overlap reported here
// is an overlap of at least the polling precision.
func (p *StatePoller) Overlaps() []string {
	runs := p.PrimaryRuns()
	var out []string
	for i, a := range runs {
		for _, b := range runs[i+1:] {
			if a.Node != b.Node && b.First.Before(a.Last) && a.First.Before(b.Last) {
				out = append(out, fmt.Sprintf("%s 200 from %s to %s (%d answers) overlaps %s 200 from %s to %s (%d answers)",
					a.Node, a.First.Format("15:04:05.000"), a.Last.Format("15:04:05.000"), a.Answers,
					b.Node, b.First.Format("15:04:05.000"), b.Last.Format("15:04:05.000"), b.Answers))
			}
		}
	}
	return out
}

// Count is how many answers were recorded, and how many of them were 200.
func (p *StatePoller) Count() (answers, primary int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, o := range p.obs {
		if o.Status == 200 {
			primary++
		}
	}
	return len(p.obs), primary
}

// Summary describes the runs of 200s, for the test log.
func (p *StatePoller) Summary() string {
	var b strings.Builder
	answers, primary := p.Count()
	fmt.Fprintf(&b, "%d answers, %d of them 200", answers, primary)
	for _, r := range p.PrimaryRuns() {
		fmt.Fprintf(&b, "; %s 200 %s–%s", r.Node, r.First.Format("15:04:05.000"), r.Last.Format("15:04:05.000"))
		if r.EndedBy >= 0 {
			fmt.Fprintf(&b, " then %d", r.EndedBy)
		}
	}
	return b.String()
}

// FirstPrimary is the first instant node was seen answering 200 after t.
func (p *StatePoller) FirstPrimary(node string, after time.Time) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var first time.Time
	for _, o := range p.obs {
		if o.Node == node && o.Status == 200 && o.Sent.After(after) && (first.IsZero() || o.Recv.Before(first)) {
			first = o.Recv
		}
	}
	return first, !first.IsZero()
}
