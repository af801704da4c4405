package consensus

import (
	"fmt"
	"sync"
	"time"
)

// LeaseFor is how long a vote binds its voter, for a given consensus.cache_ttl:
// the TTL plus a tenth. The tenth absorbs clock-rate drift between the voter
// (whose clock times the lease) and the candidate (whose clock times its
// cached verdict): the argument in docs/quorum.md holds while the two rates
// differ by less than 4.7%, thousands of times what real clocks drift.
func LeaseFor(cacheTTL time.Duration) time.Duration { return cacheTTL + cacheTTL/10 }

// Monotonic reads a clock that never jumps, as a duration since an arbitrary
// origin. The daemon's is CLOCK_MONOTONIC, which keeps counting across
// restarts of the process (not of the machine), so a persisted lease can be
// honoured by the next process.
type Monotonic func() time.Duration

// Lease is a vote granted: to whom, and until when on the Monotonic clock.
type Lease struct {
	Holder   string
	HolderID int
	Until    time.Duration
	// Saved is when a LeaseStore recorded it, on the Monotonic clock.
	Saved time.Duration
	// Length is the lease length of the ballot that recorded it: a process
	// restarted with a shorter one (another profile) must still honour the
	// votes its predecessor gave for the longer one. 0 in records written
	// before it was stored.
	Length time.Duration
}

// LeaseStore persists a ballot's lease across restarts of pgquorum. Load
// returns found = false when there is nothing valid to honour (no file, or a
// file from before the machine rebooted).
type LeaseStore interface {
	Load() (l Lease, found bool, err error)
	Save(Lease) error
}

// Ballot is this node's single vote. Whoever it vouches for holds a lease on
// it: until the lease runs out, the node vouches for nobody else, so every
// verdict built on its vote has expired before it can help build another
// node's. Renewing the lease for the same holder is always allowed.
type Ballot struct {
	mu     sync.Mutex
	lease  time.Duration
	hold   time.Duration // consensus.router_hold: see HoldForRouters
	now    Monotonic
	store  LeaseStore // nil: not persisted
	cur    Lease
	stored time.Duration // the Until last saved
	saved  time.Duration // when it was saved
	fresh  bool          // something was saved by this process
}

// NewBallot returns a ballot that honours any lease an earlier process may
// have granted: the one its store recorded less than a lease ago, or, with no
// such record to go by, a lease held by nobody for one whole lease period.
// An older record may predate votes given since by a process that ran
// without a store: that process's quiet period was over a lease after the
// record's writer stopped, and it recorded nothing.
//
// A record written with a longer lease is judged by its own length: the
// predecessor's last vote may run that long after it was recorded.
func NewBallot(lease time.Duration, now Monotonic, store LeaseStore) (*Ballot, error) {
	b := &Ballot{lease: lease, now: now, store: store}
	quiet := Lease{Until: now() + lease}
	if store == nil {
		b.cur = quiet
		return b, nil
	}
	l, found, err := store.Load()
	if l.Length == 0 && l.Until > l.Saved {
		// A record of an older version has no length, but its horizon
		// of two leases tells it.
		l.Length = (l.Until - l.Saved) / 2
	}
	recorded := max(lease, l.Length)
	switch {
	case err != nil:
		b.cur = quiet
		return b, fmt.Errorf("load vote lease: %w (vouching for nobody for %s)", err, lease)
	case !found:
		b.cur = quiet
	case now()-l.Saved >= recorded:
		b.cur = Lease{Until: now() + recorded}
	default:
		b.cur, b.stored = l, l.Until
	}
	return b, nil
}

// HoldForRouters makes the vote pass to another node only hold after the
// last lease ran out (consensus.router_hold). A router such as HAProxy keeps
// sending writes to a server for fall × inter after its last passed check,
// and that check may come just before the holder's verdict expires: the
// next primary must not be confirmed before the router has let go of the
// last one. Set it once, before the ballot is used.
func (b *Ballot) HoldForRouters(hold time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.hold = hold
}

// Grant gives the vote to candidate (node_id id) unless another node holds
// an unexpired lease on it, or held one less than the router hold ago. It returns whether the vote was granted, the
// holder of the lease afterwards and how long that lease has to run.
func (b *Ballot) Grant(candidate string, id int) (granted bool, l Lease, remaining time.Duration, err error) {
	return b.GrantIf(candidate, id, nil)
}

// GrantIf is Grant, asking allow first under the ballot's lock (nil: no
// question): a refusal by allow grants nothing and returns the zero lease.
// A condition checked under the lock cannot change between the check and
// the grant as seen by Binds: a reader that sees the condition turn false
// and then reads Binds sees any lease granted on the condition still true.
func (b *Ballot) GrantIf(candidate string, id int, allow func() bool) (granted bool, l Lease, remaining time.Duration, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if allow != nil && !allow() {
		return false, Lease{}, 0, nil
	}
	now := b.now()
	if other := b.cur.Holder != candidate || b.cur.HolderID != id; other && now < b.cur.Until+b.hold {
		return false, b.cur, b.cur.Until + b.hold - now, nil
	}
	// A renewal never shortens the lease: the one restored from a longer
	// predecessor's record may run longer than this ballot's own.
	next := Lease{Holder: candidate, HolderID: id, Until: max(now+b.lease, b.cur.Until)}
	if b.store != nil && (!b.fresh || now-b.saved >= b.lease/4 || next.Holder != b.cur.Holder || next.HolderID != b.cur.HolderID) {
		// Saved with a horizon of two leases, at least every quarter
		// lease while renewing, so that a process restarted within
		// about half a lease finds a record fresh enough to honour.
		saved := next
		saved.Until, saved.Saved, saved.Length = now+2*b.lease, now, b.lease
		if err := b.store.Save(saved); err != nil {
			// Unrecorded, the vote could be given again by a restarted
			// process before its lease ran out: refuse it.
			return false, b.cur, max(0, b.cur.Until-now), fmt.Errorf("record vote lease: %w", err)
		}
		b.stored, b.saved, b.fresh = saved.Until, now, true
	}
	b.cur = next
	return true, next, next.Until - now, nil
}

// Current returns the lease and how long it has to run (0 when expired),
// the router hold not included.
func (b *Ballot) Current() (Lease, time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cur, max(0, b.cur.Until-b.now())
}

// Release ends the lease of holder (node_id id) now, if it holds the vote:
// a primary that has stopped for a switchover gives its votes back so that
// its successor need not wait a lease for them. The caller must know the
// holder can no longer take writes; Release only checks who holds the vote.
func (b *Ballot) Release(holder string, id int) (bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	if b.cur.Holder != holder || b.cur.HolderID != id || now >= b.cur.Until {
		return false, nil
	}
	if b.store != nil {
		// Recorded, so that a restarted process does not honour the
		// released lease's longer horizon (which would only delay it).
		if err := b.store.Save(Lease{Until: now - b.hold, Saved: now, Length: b.lease}); err != nil {
			return false, fmt.Errorf("record released vote lease: %w", err)
		}
		b.stored, b.saved = now-b.hold, now
	}
	// The holder stopped and was stepped down (503) for the router's hold
	// before it stopped: no hold is owed after a release.
	b.cur = Lease{Until: now - b.hold}
	return true, nil
}

// Binds is how long the vote may still go to holder (node_id id) without a
// new grant: while holder holds the lease, or nobody does (the quiet period
// after a start binds to whoever the previous process vouched for), what is
// left of it plus the router hold; 0 when another node holds it, since it
// was granted only once holder's lease and hold had run out.
func (b *Ballot) Binds(holder string, id int) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cur.Holder != "" && (b.cur.Holder != holder || b.cur.HolderID != id) {
		return 0
	}
	return max(0, b.cur.Until+b.hold-b.now())
}
