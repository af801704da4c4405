package consensus

import (
	"container/heap"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/repmgr"
)

// A duel: C1 (n1) and C2 (n2) both run as primary in a 3-node cluster, and
// V (n3) decides. C1, on timeline 1, has been V's primary; C2 was promoted
// on timeline 2. At one instant V's WAL receiver switches from C1 to C2
// (before its repmgr metadata, which still names C1), so from then on V's
// Vouch holds for C2 and no longer for C1 (on an older timeline). Each of
// C1 and C2 refreshes like Checker.Run: facts probed at its clock S, its own
// vote through its own ballot, a request to each peer, Decide when every
// answer is in or at PeerTimeout, the verdict served while its clock reads
// less than S + CacheTTL. V answers from its facts at the very instant a
// request reaches it. The ballots and the core's rules are the real ones:
// its vote (answer: Vouch, then the ballot), its decide (Decide with the
// minimum lease, refuseStale), its expiry and its flux bookkeeping. The order
// of a refresh is the duel's own, so that it can refresh C2 at chosen
// instants; the voting simulation (sim_test.go) runs the core's own.

const (
	duelTTL         = 3 * time.Second // the defaults of consensus.*
	duelRefresh     = time.Second
	duelPeerTimeout = 500 * time.Millisecond
)

type duelNode struct {
	row       repmgr.Node
	clock     simClock
	core      *core
	facts     func() repmgr.Facts // what a probe of its database reads now
	lastProbe time.Time           // Run's
}

// duelWindow is a Primary verdict, unexpired in [from, until) of real time.
type duelWindow struct {
	from, until time.Duration
	probed      time.Duration // real instant of its facts
	voters      []string
}

// duelRefreshRecord is one refresh of C1: when it read its facts, sent its
// request to V, V granted it, it decided, and its verdict expires.
type duelRefreshRecord struct {
	read, send, grant, decided, expiry time.Duration
	primary                            bool
}

type duelEvent struct {
	at  time.Duration
	seq uint64
	fn  func()
}

type duelQueue []duelEvent

func (q duelQueue) Len() int { return len(q) }
func (q duelQueue) Less(i, j int) bool {
	return q[i].at < q[j].at || q[i].at == q[j].at && q[i].seq < q[j].seq
}
func (q duelQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *duelQueue) Push(x any)   { *q = append(*q, x.(duelEvent)) }
func (q *duelQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

// duelSetup is what a row varies besides the instant of the switch.
type duelSetup struct {
	c1PPM, c2PPM, vPPM int64
	probe              time.Duration // how long a candidate's probe takes, on its clock
	delay              time.Duration // one way, for every message
	cutC1              bool          // C1's requests to V are lost after the reference refresh
	lease              time.Duration // V's ballot's lease; LeaseFor(duelTTL) as built
	faults             coreFaults    // rules C1 and C2 break
}

type duel struct {
	setup     duelSetup
	now       time.Duration
	seq       uint64
	queue     duelQueue
	c1, c2, v *duelNode
	switchAt  time.Duration // V follows C2 from this real instant on
	cutAt     time.Duration // C1's requests to V sent after this are lost

	c1Refreshes   []duelRefreshRecord
	windows       map[string][]duelWindow // Primary verdicts, by node
	grantsToC1    []time.Duration         // real instants at which V granted C1
	grantsToC2    []time.Duration
	leaseRefusals int // V refused C2 for C1's lease
	c2Attempts    int // C2's refreshes begun while C1 held an unexpired verdict
}

const duelNever = time.Duration(1 << 62)

func newDuel(st duelSetup, switchAt time.Duration) *duel {
	d := &duel{setup: st, switchAt: switchAt, cutAt: duelNever, windows: map[string][]duelWindow{}}
	nodes := []repmgr.Node{node(1, "n1", repmgr.TypePrimary, "dc1", true), node(2, "n2", repmgr.TypeStandby, "dc1", true),
		node(3, "n3", repmgr.TypeStandby, "dc1", true)}
	naming := func(named int) []repmgr.Node { // the metadata as seen by a node: named is the active primary
		out := make([]repmgr.Node, len(nodes))
		for i, n := range nodes {
			n.Type = repmgr.TypeStandby
			if n.ID == named {
				n.Type = repmgr.TypePrimary
			}
			out[i] = n
		}
		return out
	}
	mk := func(row repmgr.Node, base time.Duration, ppm int64, lease time.Duration, facts func() repmgr.Facts) *duelNode {
		n := &duelNode{row: row, clock: simClock{base: base, ppm: ppm}, facts: facts}
		// pgquorum started long ago: its quiet period is over.
		d.now = -2 * lease
		b, err := NewBallot(lease, func() time.Duration { return n.clock.at(d.now) }, nil)
		d.now = 0
		if err != nil {
			panic(err)
		}
		n.core = simCore(row.Name, ScopeCluster, duelRefresh, duelTTL, duelPeerTimeout, b, func() time.Duration { return n.clock.at(d.now) })
		if row.ID != 3 {
			n.core.faults = st.faults
		}
		return n
	}
	d.c1 = mk(nodes[0], 100*time.Hour, st.c1PPM, LeaseFor(duelTTL), func() repmgr.Facts {
		return repmgr.Facts{Nodes: naming(1), Server: repmgr.Server{SystemID: testSystemID, Timeline: 1}}
	})
	d.c2 = mk(nodes[1], 5*time.Hour, st.c2PPM, LeaseFor(duelTTL), func() repmgr.Facts {
		return repmgr.Facts{Nodes: naming(2), Server: repmgr.Server{SystemID: testSystemID, Timeline: 2}}
	})
	d.v = mk(nodes[2], 1000*time.Hour, st.vPPM, st.lease, func() repmgr.Facts {
		f := repmgr.Facts{InRecovery: true, Nodes: naming(1), Server: repmgr.Server{SystemID: testSystemID, Timeline: 1}}
		f.WAL.SenderHost, f.WAL.SenderPort, f.WAL.ReceiverStatus = "n1", simPGPort, repmgr.StreamingState
		if d.now >= d.switchAt {
			f.WAL.SenderHost, f.Server.Timeline = "n2", 2
		}
		return f
	})
	d.at(0, func() { d.refresh(d.c1, true) })
	d.at(123*time.Millisecond, func() { d.refresh(d.c2, true) })
	return d
}

func (d *duel) at(t time.Duration, fn func()) {
	d.seq++
	heap.Push(&d.queue, duelEvent{at: max(t, d.now), seq: d.seq, fn: fn})
}

func (d *duel) local(n *duelNode) time.Duration { return n.clock.at(d.now) }
func (d *duel) nowOf(n *duelNode) time.Time     { return simEpoch.Add(d.local(n)) }

// after is the real instant at which n's clock has advanced by dt from now.
func (d *duel) after(n *duelNode, dt time.Duration) time.Duration {
	return n.clock.when(d.local(n) + dt)
}

func (d *duel) runUntil(end time.Duration) {
	for d.queue.Len() > 0 && d.queue[0].at <= end {
		e := heap.Pop(&d.queue).(duelEvent)
		d.now = e.at
		e.fn()
	}
	d.now = end
}

// holds tells whether n holds an unexpired Primary verdict now.
func (d *duel) holds(n *duelNode) bool {
	for _, w := range d.windows[n.row.Name] {
		if w.from <= d.now && d.now < w.until {
			return true
		}
	}
	return false
}

// refresh is one Checker.refresh of candidate x, then, when Run started it,
// Run's next timer. Every refresh probes: reusing facts, as Run may while in
// flux, only makes a verdict expire sooner.
func (d *duel) refresh(x *duelNode, byRun bool) {
	other := d.c2
	if x == d.c2 {
		other = d.c1
		if d.holds(d.c1) {
			d.c2Attempts++
		}
	}
	probed := d.local(x)
	rec := duelRefreshRecord{read: d.now, send: -1, grant: -1}
	d.at(d.after(x, d.setup.probe), func() {
		f := &Snapshot{Facts: x.facts(), probedBoot: probed}
		f.Facts.ProbedAt = simEpoch.Add(probed)
		snap := &Snapshot{Facts: f.Facts, probedBoot: probed}
		me, ok := x.core.candidate(snap)
		if !ok {
			panic(x.row.Name + " is no candidate")
		}
		req := api.VoteRequest{Protocol: api.VoteProtocol, Candidate: me.Name, CandidateID: me.ID,
			SystemID: snap.Facts.Server.SystemID, Timeline: snap.Facts.Server.Timeline}
		self, _ := x.core.answer(f, req)
		snap.SelfVote = PeerVote{Answer: &self}
		snap.Votes = map[int]PeerVote{d.v.row.ID: {Err: context.DeadlineExceeded}, other.row.ID: {Err: context.DeadlineExceeded}}
		rec.send = d.now
		deadline := d.after(x, duelPeerTimeout)
		pending, done := 2, false
		finish := func() {
			done = true
			snap = x.core.decide(d.nowOf(x), snap)
			until := x.clock.when(x.core.expiry(snap).Sub(simEpoch))
			if snap.Verdict.State == api.StatePrimary && d.now < until {
				d.windows[x.row.Name] = append(d.windows[x.row.Name],
					duelWindow{from: d.now, until: until, probed: rec.read, voters: snap.Verdict.Voters})
			}
			if x == d.c1 {
				rec.decided, rec.expiry, rec.primary = d.now, until, snap.Verdict.State == api.StatePrimary
				d.c1Refreshes = append(d.c1Refreshes, rec)
			}
			x.core.noteChange(d.nowOf(x), snap)
			if !byRun {
				return
			}
			if snap.Facts.ProbedAt.After(x.lastProbe) {
				x.lastProbe = snap.Facts.ProbedAt
			}
			next := duelRefresh - d.nowOf(x).Sub(x.lastProbe)
			if x.core.inFlux(d.nowOf(x), snap) {
				next = min(next, fluxInterval)
			}
			d.at(d.after(x, max(next, time.Millisecond)), func() { d.refresh(x, true) })
		}
		for _, peer := range []*duelNode{d.v, other} {
			if x == d.c1 && peer == d.v && d.now > d.cutAt {
				continue // lost
			}
			d.at(d.now+d.setup.delay, func() {
				a := d.vote(peer, req)
				if peer == d.v && x == d.c1 && a.Granted {
					rec.grant = d.now
				}
				d.at(d.now+d.setup.delay, func() {
					if done || d.now >= deadline {
						return
					}
					snap.Votes[peer.row.ID] = PeerVote{Answer: &a}
					if pending--; pending == 0 {
						finish()
					}
				})
			})
		}
		d.at(deadline, func() {
			if !done {
				finish()
			}
		})
	})
}

// vote is Checker.Vote at peer, on facts probed at this very instant.
func (d *duel) vote(peer *duelNode, req api.VoteRequest) api.VoteAnswer {
	f := &Snapshot{Facts: peer.facts(), probedBoot: d.local(peer)}
	f.Facts.ProbedAt = d.nowOf(peer)
	a, _ := peer.core.answer(f, req)
	if peer == d.v {
		switch {
		case a.Granted && req.Candidate == "n1":
			d.grantsToC1 = append(d.grantsToC1, d.now)
		case a.Granted:
			d.grantsToC2 = append(d.grantsToC2, d.now)
		case req.Candidate == "n2" && a.LeaseHolder == "n1":
			d.leaseRefusals++
		}
	}
	return a
}

// duelInstant names an instant of V's switch relative to C1's reference
// refresh ref, whose lease on V runs out at leaseEnd.
type duelInstant struct {
	name string
	at   func(ref duelRefreshRecord, leaseEnd time.Duration) time.Duration
}

var duelInstants = []duelInstant{
	{"before C1 reads its facts", func(r duelRefreshRecord, _ time.Duration) time.Duration { return r.read - 100*time.Millisecond }},
	{"as C1 reads its facts", func(r duelRefreshRecord, _ time.Duration) time.Duration { return r.read }},
	{"between C1's fact read and its request to V", func(r duelRefreshRecord, _ time.Duration) time.Duration {
		return (r.read + r.send) / 2
	}},
	{"as C1 sends its request", func(r duelRefreshRecord, _ time.Duration) time.Duration { return r.send }},
	{"just before V grants C1", func(r duelRefreshRecord, _ time.Duration) time.Duration { return r.grant - 1 }},
	{"just after V grants C1", func(r duelRefreshRecord, _ time.Duration) time.Duration { return r.grant + 1 }},
	{"as C1 decides", func(r duelRefreshRecord, _ time.Duration) time.Duration { return r.decided }},
	{"a quarter into C1's verdict", func(r duelRefreshRecord, _ time.Duration) time.Duration {
		return r.decided + (r.expiry-r.decided)/4
	}},
	{"half way into C1's verdict", func(r duelRefreshRecord, _ time.Duration) time.Duration {
		return r.decided + (r.expiry-r.decided)/2
	}},
	{"three quarters into C1's verdict", func(r duelRefreshRecord, _ time.Duration) time.Duration {
		return r.decided + 3*(r.expiry-r.decided)/4
	}},
	{"just before C1's verdict expires", func(r duelRefreshRecord, _ time.Duration) time.Duration { return r.expiry - 1 }},
	{"as C1's verdict expires", func(r duelRefreshRecord, _ time.Duration) time.Duration { return r.expiry }},
	{"just before V's lease for C1 runs out", func(_ duelRefreshRecord, e time.Duration) time.Duration { return e - 1 }},
	{"as V's lease for C1 runs out", func(_ duelRefreshRecord, e time.Duration) time.Duration { return e }},
	{"just after V's lease for C1 runs out", func(_ duelRefreshRecord, e time.Duration) time.Duration { return e + 1 }},
	{"long after V's lease for C1 ran out", func(_ duelRefreshRecord, e time.Duration) time.Duration { return e + 2*duelTTL }},
}

// duelRef runs setup without a switch and returns C1's reference refresh
// (its third: two before it have bound V) and the end of the lease V granted
// in it.
func duelRef(t *testing.T, st duelSetup) (duelRefreshRecord, time.Duration) {
	t.Helper()
	d := newDuel(st, duelNever)
	d.runUntil(3*duelRefresh + duelTTL)
	ref := d.c1Refreshes[2]
	if !ref.primary || ref.grant < 0 {
		t.Fatalf("C1's reference refresh is not Primary on V's vote: %+v", ref)
	}
	return ref, d.v.clock.when(d.v.clock.at(ref.grant) + st.lease)
}

// duelOutcome is one duel, switch at switchAt, run long enough to decide.
type duelOutcome struct {
	d         *duel
	lastGrant time.Duration // V's last grant to C1
	leaseEnd  time.Duration // when that lease runs out, on V's clock
	c2Primary time.Duration // C2's first Primary verdict; duelNever if none
}

func runDuel(st duelSetup, ref duelRefreshRecord, switchAt time.Duration) duelOutcome {
	d := newDuel(st, switchAt)
	if st.cutC1 {
		d.cutAt = ref.send
	}
	// At the switch, and where V's lease for C1 runs out, C2 also
	// refreshes at once, so that its request reaches V on both sides of
	// those instants: more often than the daemon's singleflight allows.
	d.at(switchAt, func() {
		d.refresh(d.c2, false)
		if len(d.grantsToC1) == 0 {
			return
		}
		end := d.v.clock.when(d.v.clock.at(d.grantsToC1[len(d.grantsToC1)-1]) + st.lease)
		reach := d.c2.clock.when(d.c2.clock.at(end-st.delay) - st.probe) // C2's start whose request reaches V at end
		for _, dt := range []time.Duration{-1, 0, 1} {
			d.at(reach+dt, func() { d.refresh(d.c2, false) })
		}
	})
	d.runUntil(max(switchAt, ref.grant) + 2*st.lease + 2*duelRefresh + duelTTL)
	o := duelOutcome{d: d, lastGrant: -1, leaseEnd: -1, c2Primary: duelNever}
	if n := len(d.grantsToC1); n > 0 {
		o.lastGrant = d.grantsToC1[n-1]
		o.leaseEnd = d.v.clock.when(d.v.clock.at(o.lastGrant) + st.lease)
	}
	if ws := d.windows["n2"]; len(ws) > 0 {
		o.c2Primary = ws[0].from
	}
	return o
}

// overlap returns C1's and C2's Primary verdicts unexpired at one instant.
func (o duelOutcome) overlap() (c1, c2 duelWindow, found bool) {
	for _, a := range o.d.windows["n1"] {
		for _, b := range o.d.windows["n2"] {
			if a.from < b.until && b.from < a.until {
				return a, b, true
			}
		}
	}
	return duelWindow{}, duelWindow{}, false
}

func (o duelOutcome) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "switch at %s; V granted C1 at %v, C2 at %v; V's last lease for C1 ran out at %s\n",
		o.d.switchAt, o.d.grantsToC1, o.d.grantsToC2, o.leaseEnd)
	for _, name := range []string{"n1", "n2"} {
		for _, w := range o.d.windows[name] {
			fmt.Fprintf(&b, "  %s Primary [%s, %s) on facts of %s, voters %v\n", name, w.from, w.until, w.probed, w.voters)
		}
	}
	return b.String()
}

var duelClocks = []struct {
	name               string
	c1PPM, c2PPM, vPPM int64
}{
	{"every clock exact", 0, 0, 0},
	{"V 4% fast, C1 4% slow", -40_000, 0, 40_000}, // V's lease shortest, C1's verdict longest
	{"V 4% slow, C1 4% fast, C2 4% slow", 40_000, -40_000, -40_000},
}

var duelTimings = []struct {
	name         string
	probe, delay time.Duration
}{
	{"instant probes and messages", 0, 0},
	{"20ms probes, 30ms messages", 20 * time.Millisecond, 30 * time.Millisecond},
}

// TestVoterSwitchingCandidatesAtEveryInstant switches V from C1 to C2 at
// every instant of interest relative to C1's reference refresh, with C1
// either polling on (V refuses it after the switch) or cut off from V after
// that refresh, with drifting clocks and with delays. It asserts that C2
// never holds a Primary verdict while C1 still holds one, nor before V's
// last lease for C1 has run out; that V grants C2 only once that lease has
// run out on its own clock; that, when the lease still ran after the switch,
// V refused C2 for it (the lease, not Vouch, is what kept them apart then);
// and that C2 does become Primary within one refresh (plus its probe and
// the round trip) of the later of the switch and the end of that lease.
func TestVoterSwitchingCandidatesAtEveryInstant(t *testing.T) {
	for _, cut := range []bool{false, true} {
		mode := "C1 polls on"
		if cut {
			mode = "C1 cut off from V after the reference refresh"
		}
		for _, clocks := range duelClocks {
			for _, timing := range duelTimings {
				st := duelSetup{c1PPM: clocks.c1PPM, c2PPM: clocks.c2PPM, vPPM: clocks.vPPM, probe: timing.probe,
					delay: timing.delay, cutC1: cut, lease: LeaseFor(duelTTL)}
				ref, refLeaseEnd := duelRef(t, st)
				for _, in := range duelInstants {
					name := fmt.Sprintf("%s/%s/%s/V switches %s", mode, clocks.name, timing.name, in.name)
					t.Run(name, func(t *testing.T) {
						switchAt := in.at(ref, refLeaseEnd)
						o := runDuel(st, ref, switchAt)
						if c1, c2, found := o.overlap(); found {
							t.Fatalf("C2 Primary [%s, %s) while C1 Primary [%s, %s)\n%s", c2.from, c2.until, c1.from, c1.until, o)
						}
						if o.c2Primary < o.leaseEnd {
							t.Errorf("C2 Primary at %s, before V's lease for C1 ran out at %s\n%s", o.c2Primary, o.leaseEnd, o)
						}
						for _, g2 := range o.d.grantsToC2 {
							for _, g1 := range o.d.grantsToC1 {
								if g1 < g2 && o.d.v.clock.at(g2) < o.d.v.clock.at(g1)+st.lease {
									t.Errorf("V granted C2 at %s, within its lease for C1 of %s\n%s", g2, g1, o)
								}
							}
						}
						if len(o.d.windows["n1"]) == 0 || o.lastGrant < 0 {
							t.Fatalf("C1 was never Primary on V's vote: nothing was tested\n%s", o)
						}
						if o.leaseEnd > switchAt+st.probe+st.delay && o.d.leaseRefusals == 0 {
							t.Errorf("V's lease for C1 ran until %s, past the switch at %s, yet V never refused C2 for it\n%s",
								o.leaseEnd, switchAt, o)
						}
						if o.d.c2Attempts == 0 {
							t.Errorf("C2 never tried while C1 held a verdict\n%s", o)
						}
						from := max(switchAt, o.leaseEnd)
						deadline := o.d.c2.clock.when(o.d.c2.clock.at(from)+duelRefresh+st.probe) + 2*st.delay
						if o.c2Primary == duelNever || o.c2Primary > deadline {
							t.Errorf("C2 first Primary at %s, want by %s: one refresh after the switch and V's lease\n%s",
								o.c2Primary, deadline, o)
						}
					})
				}
			}
		}
	}
}

// TestVoterSwitchingCandidatesCatchesShortLease is the duel's negative
// control: with V's lease half the cache TTL, and candidates that count it
// all the same (a rule of the core broken), some switch instant lets C2 be
// Primary while C1 still is, and the test above would see it.
func TestVoterSwitchingCandidatesCatchesShortLease(t *testing.T) {
	st := duelSetup{probe: 20 * time.Millisecond, delay: 30 * time.Millisecond, cutC1: true, lease: duelTTL / 2,
		faults: coreFaults{acceptShortLease: true}}
	ref, refLeaseEnd := duelRef(t, st)
	var caught []string
	for _, in := range duelInstants {
		o := runDuel(st, ref, in.at(ref, refLeaseEnd))
		if _, _, found := o.overlap(); found {
			caught = append(caught, in.name)
		}
	}
	if len(caught) == 0 {
		t.Fatalf("with a lease of %s, no switch instant gave two Primary verdicts at once: the duel's check is vacuous", st.lease)
	}
	t.Logf("with a lease of %s, two primaries at once when V switches: %s", st.lease, strings.Join(caught, "; "))
}
