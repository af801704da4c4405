package consensus

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// testLease is the lease of the ballot tests: LeaseFor(1s).
const testLease = 1100 * time.Millisecond

// grantStep is one call of Grant, at a time since the ballot was made, and
// what it must return.
type grantStep struct {
	at        time.Duration
	candidate string
	id        int
	granted   bool
	holder    string        // the lease's holder afterwards
	remaining time.Duration // how long that lease has to run
}

// openStore is a store whose record, saved just now, holds no lease that
// runs: the ballot it restores is open.
func openStore(clock *fakeClock) *memLeases {
	now := clock.Mono()
	return &memLeases{found: true, lease: Lease{Until: now, Saved: now}}
}

// failingLoad is a LeaseStore whose Load fails.
type failingLoad struct{ memLeases }

func (*failingLoad) Load() (Lease, bool, error) {
	return Lease{}, false, errors.New("permission denied")
}

func TestBallotGrant(t *testing.T) {
	const L = testLease
	// stored returns a store holding a lease for holder (node_id id),
	// recorded at the ballot's start, that runs until the start plus until
	// (negative: already expired).
	stored := func(holder string, id int, until time.Duration) func(start time.Duration) LeaseStore {
		return func(start time.Duration) LeaseStore {
			return &memLeases{lease: Lease{Holder: holder, HolderID: id, Until: start + until, Saved: start}, found: true}
		}
	}
	// recordedAgo is a store whose record, a lease for X with the horizon
	// of two leases the ballot writes, was saved ago before the start by a
	// version that did not record the length.
	recordedAgo := func(ago time.Duration) func(start time.Duration) LeaseStore {
		return func(start time.Duration) LeaseStore {
			return &memLeases{lease: Lease{Holder: "X", HolderID: 7, Until: start - ago + 2*L, Saved: start - ago}, found: true}
		}
	}
	noStore := func(time.Duration) LeaseStore { return nil }
	tests := []struct {
		name    string
		store   func(start time.Duration) LeaseStore
		wantErr bool // from NewBallot
		steps   []grantStep
	}{
		{name: "fresh ballot without store refuses itself for exactly one lease, then grants", store: noStore, steps: []grantStep{
			{at: 0, candidate: "n1", id: 1, remaining: L},
			{at: L / 2, candidate: "n1", id: 1, remaining: L / 2},
			{at: L - time.Nanosecond, candidate: "n1", id: 1, remaining: time.Nanosecond},
			{at: L, candidate: "n1", id: 1, granted: true, holder: "n1", remaining: L},
		}},
		{name: "fresh ballot without store refuses every candidate for one lease, then grants the first to ask", store: noStore, steps: []grantStep{
			{at: 0, candidate: "n2", id: 2, remaining: L},
			{at: L - time.Nanosecond, candidate: "n3", id: 3, remaining: time.Nanosecond},
			{at: L, candidate: "n3", id: 3, granted: true, holder: "n3", remaining: L},
			{at: L, candidate: "n2", id: 2, holder: "n3", remaining: L},
		}},
		{name: "store without a record refuses everyone for one lease", store: func(time.Duration) LeaseStore { return &memLeases{} },
			steps: []grantStep{
				{at: 0, candidate: "n1", id: 1, remaining: L},
				{at: L - time.Nanosecond, candidate: "n2", id: 2, remaining: time.Nanosecond},
				{at: L, candidate: "n2", id: 2, granted: true, holder: "n2", remaining: L},
			}},
		{name: "store that cannot be read refuses everyone for one lease and says so",
			store:   func(time.Duration) LeaseStore { return &failingLoad{} },
			wantErr: true,
			steps: []grantStep{
				{at: 0, candidate: "n1", id: 1, remaining: L},
				{at: L - time.Nanosecond, candidate: "n1", id: 1, remaining: time.Nanosecond},
				{at: L, candidate: "n1", id: 1, granted: true, holder: "n1", remaining: L},
			}},
		{name: "record saved just under a lease ago is honoured, and its holder's renewal keeps its horizon", store: recordedAgo(L - time.Nanosecond), steps: []grantStep{
			{at: 0, candidate: "Y", id: 8, holder: "X", remaining: L + time.Nanosecond},
			{at: 0, candidate: "X", id: 7, granted: true, holder: "X", remaining: L + time.Nanosecond},
			{at: L / 2, candidate: "X", id: 7, granted: true, holder: "X", remaining: L},
		}},
		{name: "record saved a lease ago may predate unrecorded votes: nobody for one lease", store: recordedAgo(L), steps: []grantStep{
			{at: 0, candidate: "X", id: 7, remaining: L},
			{at: L - time.Nanosecond, candidate: "Y", id: 8, remaining: time.Nanosecond},
			{at: L, candidate: "Y", id: 8, granted: true, holder: "Y", remaining: L},
		}},
		// A restart with a shorter lease (failover.profile default → fast)
		// must honour what its predecessor recorded with the longer one.
		{name: "record of a three times longer lease, saved two short leases ago, is honoured", store: func(start time.Duration) LeaseStore {
			return &memLeases{lease: Lease{Holder: "X", HolderID: 7, Until: start + 4*L, Saved: start - 2*L, Length: 3 * L}, found: true}
		}, steps: []grantStep{
			{at: 0, candidate: "Y", id: 8, holder: "X", remaining: 4 * L},
			{at: 4*L - time.Nanosecond, candidate: "Y", id: 8, holder: "X", remaining: time.Nanosecond},
			{at: 4 * L, candidate: "Y", id: 8, granted: true, holder: "Y", remaining: L},
		}},
		{name: "record of a three times longer lease, too old to honour, makes the quiet period that long", store: func(start time.Duration) LeaseStore {
			return &memLeases{lease: Lease{Holder: "X", HolderID: 7, Until: start - L, Saved: start - 3*L, Length: 3 * L}, found: true}
		}, steps: []grantStep{
			{at: 0, candidate: "X", id: 7, remaining: 3 * L},
			{at: 3*L - time.Nanosecond, candidate: "Y", id: 8, remaining: time.Nanosecond},
			{at: 3 * L, candidate: "Y", id: 8, granted: true, holder: "Y", remaining: L},
		}},
		{name: "recorded unexpired lease: its holder is granted at once, never shorter than recorded", store: stored("X", 7, 2*L), steps: []grantStep{
			{at: 0, candidate: "X", id: 7, granted: true, holder: "X", remaining: 2 * L},
		}},
		{name: "recorded unexpired lease: another candidate refused until it runs out", store: stored("X", 7, 500*time.Millisecond),
			steps: []grantStep{
				{at: 0, candidate: "Y", id: 8, holder: "X", remaining: 500 * time.Millisecond},
				{at: 500*time.Millisecond - time.Nanosecond, candidate: "Y", id: 8, holder: "X", remaining: time.Nanosecond},
				{at: 500 * time.Millisecond, candidate: "Y", id: 8, granted: true, holder: "Y", remaining: L},
			}},
		{name: "recorded expired lease: another candidate granted at once", store: stored("X", 7, -time.Nanosecond), steps: []grantStep{
			{at: 0, candidate: "Y", id: 8, granted: true, holder: "Y", remaining: L},
		}},
		{name: "recorded lease running out exactly now: another candidate granted at once", store: stored("X", 7, 0), steps: []grantStep{
			{at: 0, candidate: "Y", id: 8, granted: true, holder: "Y", remaining: L},
		}},
		{name: "renewal for the same holder is always allowed and extends the lease", store: stored("X", 7, -time.Second),
			steps: []grantStep{
				{at: 0, candidate: "X", id: 7, granted: true, holder: "X", remaining: L},
				{at: L / 2, candidate: "X", id: 7, granted: true, holder: "X", remaining: L},
				{at: L - time.Nanosecond, candidate: "X", id: 7, granted: true, holder: "X", remaining: L},
				{at: 3 * L / 2, candidate: "X", id: 7, granted: true, holder: "X", remaining: L},
				// Y would have had the vote at L without the renewals.
				{at: 2 * L, candidate: "Y", id: 8, holder: "X", remaining: L / 2},
				{at: 5*L/2 - time.Nanosecond, candidate: "Y", id: 8, holder: "X", remaining: time.Nanosecond},
				{at: 5 * L / 2, candidate: "Y", id: 8, granted: true, holder: "Y", remaining: L},
			}},
		{name: "another holder refused until the lease's end, granted exactly at it", store: stored("X", 7, -time.Second),
			steps: []grantStep{
				{at: 0, candidate: "X", id: 7, granted: true, holder: "X", remaining: L},
				{at: time.Nanosecond, candidate: "Y", id: 8, holder: "X", remaining: L - time.Nanosecond},
				{at: L - time.Nanosecond, candidate: "Y", id: 8, holder: "X", remaining: time.Nanosecond},
				{at: L, candidate: "Y", id: 8, granted: true, holder: "Y", remaining: L},
				{at: L, candidate: "X", id: 7, holder: "Y", remaining: L},
			}},
		{name: "after expiry the old holder is granted anew", store: stored("X", 7, -time.Second), steps: []grantStep{
			{at: 0, candidate: "X", id: 7, granted: true, holder: "X", remaining: L},
			{at: 5 * L, candidate: "X", id: 7, granted: true, holder: "X", remaining: L},
		}},
		{name: "same name with another node_id is another holder", store: stored("X", 7, -time.Second), steps: []grantStep{
			{at: 0, candidate: "X", id: 7, granted: true, holder: "X", remaining: L},
			{at: L / 2, candidate: "X", id: 9, holder: "X", remaining: L / 2},
			{at: L, candidate: "X", id: 9, granted: true, holder: "X", remaining: L},
			{at: L, candidate: "X", id: 7, holder: "X", remaining: L},
		}},
		{name: "same node_id under another name is another holder", store: stored("X", 7, -time.Second), steps: []grantStep{
			{at: 0, candidate: "X", id: 7, granted: true, holder: "X", remaining: L},
			{at: L / 2, candidate: "Z", id: 7, holder: "X", remaining: L / 2},
		}},
		{name: "a refusal takes no lease", store: stored("X", 7, 100*time.Millisecond), steps: []grantStep{
			{at: 0, candidate: "Y", id: 8, holder: "X", remaining: 100 * time.Millisecond},
			{at: 100 * time.Millisecond, candidate: "Z", id: 9, granted: true, holder: "Z", remaining: L},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			start := clock.Mono()
			b, err := NewBallot(L, clock.Mono, tt.store(start))
			if (err != nil) != tt.wantErr || b == nil {
				t.Fatalf("NewBallot = %v, %v; want a ballot, error %v", b, err, tt.wantErr)
			}
			elapsed := time.Duration(0)
			for i, s := range tt.steps {
				clock.Advance(s.at - elapsed)
				elapsed = s.at
				granted, l, remaining, err := b.Grant(s.candidate, s.id)
				if err != nil {
					t.Fatalf("step %d: Grant(%s, %d) error %v", i, s.candidate, s.id, err)
				}
				if granted != s.granted || l.Holder != s.holder || remaining != s.remaining {
					t.Fatalf("step %d at %s: Grant(%s, %d) = %v, holder %q, %s to run; want %v, %q, %s",
						i, s.at, s.candidate, s.id, granted, l.Holder, remaining, s.granted, s.holder, s.remaining)
				}
				if granted && (l.HolderID != s.id || l.Until != clock.Mono()+remaining || remaining < L) {
					t.Errorf("step %d: granted lease %+v, want held by node_id %d until now+%s, at least a lease", i, l, s.id, remaining)
				}
				if cur, left := b.Current(); cur != l || left != remaining {
					t.Errorf("step %d: Current = %+v, %s; want the lease Grant returned, %+v, %s", i, cur, left, l, remaining)
				}
			}
		})
	}
}

// TestBallotConcurrentCandidates: of candidates asking an open ballot at the
// same instant, exactly one is granted.
func TestBallotConcurrentCandidates(t *testing.T) {
	const candidates = 32
	clock := newFakeClock()
	b, err := NewBallot(testLease, clock.Mono, openStore(clock))
	if err != nil {
		t.Fatal(err)
	}
	grants := make([]bool, candidates)
	var wg sync.WaitGroup
	for i := range candidates {
		wg.Add(1)
		go func() {
			defer wg.Done()
			grants[i], _, _, _ = b.Grant(fmt.Sprintf("n%d", i), i+1)
		}()
	}
	wg.Wait()
	n, winner := 0, -1
	for i, g := range grants {
		if g {
			n, winner = n+1, i
		}
	}
	if cur, _ := b.Current(); n != 1 || cur.HolderID != winner+1 {
		t.Fatalf("%d of %d concurrent candidates granted, lease held by node_id %d; want exactly one, the holder", n, candidates, cur.HolderID)
	}
}

// TestBallotSaves: what reaches the store, and when.
func TestBallotSaves(t *testing.T) {
	const L = testLease
	tests := []struct {
		name string
		run  func(t *testing.T, clock *fakeClock, b *Ballot, store *memLeases)
	}{
		{name: "first grant is saved with a horizon of two leases, and when", run: func(t *testing.T, clock *fakeClock, b *Ballot, store *memLeases) {
			mustGrant(t, b, "X", 7)
			want := Lease{Holder: "X", HolderID: 7, Until: clock.Mono() + 2*L, Saved: clock.Mono(), Length: L}
			if store.saves != 1 || store.lease != want {
				t.Fatalf("%d saves, stored %+v; want 1, %+v", store.saves, store.lease, want)
			}
		}},
		{name: "renewals within a quarter lease of the last save are not saved", run: func(t *testing.T, clock *fakeClock, b *Ballot, store *memLeases) {
			mustGrant(t, b, "X", 7)
			for range 3 {
				clock.Advance(L / 16)
				mustGrant(t, b, "X", 7)
			}
			if store.saves != 1 {
				t.Fatalf("%d saves after 3 renewals within a quarter lease, want 1", store.saves)
			}
		}},
		{name: "a renewal a quarter lease after the last save is saved", run: func(t *testing.T, clock *fakeClock, b *Ballot, store *memLeases) {
			mustGrant(t, b, "X", 7)
			clock.Advance(L/4 - time.Nanosecond)
			mustGrant(t, b, "X", 7)
			if store.saves != 1 {
				t.Fatalf("%d saves a nanosecond before a quarter lease, want 1", store.saves)
			}
			clock.Advance(time.Nanosecond)
			mustGrant(t, b, "X", 7)
			if want := clock.Mono() + 2*L; store.saves != 2 || store.lease.Until != want || store.lease.Saved != clock.Mono() {
				t.Fatalf("%d saves, stored %+v; want 2, until %s, saved now", store.saves, store.lease, want)
			}
		}},
		{name: "many renewals save about every quarter lease, and the record always covers the lease", run: func(t *testing.T, clock *fakeClock, b *Ballot, store *memLeases) {
			const polls = 1000
			every := L / 11 // 100ms: ten polls per lease
			for range polls {
				l := mustGrant(t, b, "X", 7)
				if store.lease.Holder != "X" || store.lease.HolderID != 7 || store.lease.Until < l.Until || clock.Mono()-store.lease.Saved >= L/4 {
					t.Fatalf("stored %+v does not cover the lease %+v, or is older than a quarter lease", store.lease, l)
				}
				clock.Advance(every)
			}
			// A save every third poll: the first poll a quarter lease after
			// the last save.
			if want := (polls + 2) / 3; store.saves < want-1 || store.saves > want+1 {
				t.Fatalf("%d saves over %d renewals, a poll every %s; want about %d", store.saves, polls, every, want)
			}
		}},
		{name: "a new holder is always saved", run: func(t *testing.T, clock *fakeClock, b *Ballot, store *memLeases) {
			mustGrant(t, b, "X", 7)
			clock.Advance(L)
			mustGrant(t, b, "Y", 8) // within X's recorded horizon, but another holder
			want := Lease{Holder: "Y", HolderID: 8, Until: clock.Mono() + 2*L, Saved: clock.Mono(), Length: L}
			if store.saves != 2 || store.lease != want {
				t.Fatalf("%d saves, stored %+v; want 2, %+v", store.saves, store.lease, want)
			}
		}},
		{name: "a new node_id under the same name is saved", run: func(t *testing.T, clock *fakeClock, b *Ballot, store *memLeases) {
			mustGrant(t, b, "X", 7)
			clock.Advance(L)
			mustGrant(t, b, "X", 9)
			if store.saves != 2 || store.lease.HolderID != 9 {
				t.Fatalf("%d saves, stored %+v; want 2, node_id 9", store.saves, store.lease)
			}
		}},
		{name: "a refusal saves nothing", run: func(t *testing.T, clock *fakeClock, b *Ballot, store *memLeases) {
			mustGrant(t, b, "X", 7)
			if granted, _, _, err := b.Grant("Y", 8); granted || err != nil {
				t.Fatalf("Grant(Y) = %v, %v; want refused without error", granted, err)
			}
			if store.saves != 1 || store.lease.Holder != "X" {
				t.Fatalf("%d saves, stored %+v; want X's only", store.saves, store.lease)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			store := openStore(clock)
			b, err := NewBallot(L, clock.Mono, store)
			if err != nil {
				t.Fatal(err)
			}
			tt.run(t, clock, b, store)
		})
	}
}

// TestBallotRestartedSavesAtOnce: a restarted ballot renewing the lease it
// loaded records it at once, even though the record covers the renewal: the
// record must show that this process now votes.
func TestBallotRestartedSavesAtOnce(t *testing.T) {
	clock := newFakeClock()
	store := &memLeases{lease: Lease{Holder: "X", HolderID: 7, Until: clock.Mono() + 2*testLease, Saved: clock.Mono()}, found: true}
	clock.Advance(testLease / 8)
	b, err := NewBallot(testLease, clock.Mono, store)
	if err != nil {
		t.Fatal(err)
	}
	mustGrant(t, b, "X", 7)
	if store.saves != 1 || store.lease.Saved != clock.Mono() {
		t.Fatalf("%d saves, stored %+v; want the renewal saved now", store.saves, store.lease)
	}
}

func TestBallotSaveError(t *testing.T) {
	const L = testLease
	diskFull := errors.New("no space left on device")
	tests := []struct {
		name string
		run  func(t *testing.T, clock *fakeClock, b *Ballot, store *memLeases)
	}{
		{name: "first grant unrecorded is refused and leaves the ballot open", run: func(t *testing.T, clock *fakeClock, b *Ballot, store *memLeases) {
			before, _ := b.Current()
			store.err = diskFull
			granted, l, remaining, err := b.Grant("X", 7)
			if granted || !errors.Is(err, diskFull) || l != before || remaining != 0 {
				t.Fatalf("Grant = %v, %+v, %s, %v; want refused, the old lease %+v, 0, the store's error", granted, l, remaining, err, before)
			}
			if cur, _ := b.Current(); cur != before {
				t.Fatalf("Current = %+v, want the old lease %+v", cur, before)
			}
			store.err = nil
			if granted, _, _, err := b.Grant("X", 7); !granted || err != nil {
				t.Fatalf("Grant once the store works = %v, %v; want granted", granted, err)
			}
		}},
		{name: "new holder unrecorded is refused and the previous lease kept", run: func(t *testing.T, clock *fakeClock, b *Ballot, store *memLeases) {
			prev := mustGrant(t, b, "X", 7)
			clock.Advance(L)
			store.err = diskFull
			granted, l, remaining, err := b.Grant("Y", 8)
			if granted || !errors.Is(err, diskFull) || l != prev || remaining != 0 {
				t.Fatalf("Grant(Y) = %v, %+v, %s, %v; want refused, X's lease %+v, 0, the store's error", granted, l, remaining, err, prev)
			}
			if cur, _ := b.Current(); cur != prev || store.lease.Holder != "X" {
				t.Fatalf("Current = %+v, stored %+v; want X's lease kept", cur, store.lease)
			}
		}},
		{name: "renewal that needs recording is refused and the lease not extended", run: func(t *testing.T, clock *fakeClock, b *Ballot, store *memLeases) {
			prev := mustGrant(t, b, "X", 7)
			clock.Advance(L / 8)
			mustGrant(t, b, "X", 7) // within a quarter lease of the save: none needed
			clock.Advance(L / 8)
			cur, _ := b.Current()
			store.err = diskFull
			granted, l, remaining, err := b.Grant("X", 7)
			if granted || !errors.Is(err, diskFull) || l != cur || remaining != cur.Until-clock.Mono() {
				t.Fatalf("Grant(X) = %v, %+v, %s, %v; want refused, the lease %+v unchanged, the store's error", granted, l, remaining, err, cur)
			}
			if cur.Until != prev.Until+L/8 {
				t.Fatalf("lease before the failed save runs until %s, want %s", cur.Until, prev.Until+L/8)
			}
		}},
		{name: "renewal within a quarter lease of the save is granted while the store fails", run: func(t *testing.T, clock *fakeClock, b *Ballot, store *memLeases) {
			mustGrant(t, b, "X", 7)
			store.err = diskFull
			clock.Advance(L / 8)
			if granted, _, remaining, err := b.Grant("X", 7); !granted || err != nil || remaining != L {
				t.Fatalf("Grant(X) = %v, %s, %v; want granted for %s without a save", granted, remaining, err, L)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			store := openStore(clock)
			b, err := NewBallot(L, clock.Mono, store)
			if err != nil {
				t.Fatal(err)
			}
			tt.run(t, clock, b, store)
		})
	}
}

func TestBallotCurrent(t *testing.T) {
	const L = testLease
	tests := []struct {
		name          string
		after         time.Duration // since the grant to X
		wantRemaining time.Duration
	}{
		{name: "just granted: a whole lease", after: 0, wantRemaining: L},
		{name: "halfway: half a lease", after: L / 2, wantRemaining: L - L/2},
		{name: "a nanosecond before the end: a nanosecond", after: L - time.Nanosecond, wantRemaining: time.Nanosecond},
		{name: "at the end: 0", after: L, wantRemaining: 0},
		{name: "long expired: 0, not negative", after: 10 * L, wantRemaining: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			b, err := NewBallot(L, clock.Mono, openStore(clock))
			if err != nil {
				t.Fatal(err)
			}
			granted := mustGrant(t, b, "X", 7)
			clock.Advance(tt.after)
			l, remaining := b.Current()
			if l != granted || remaining != tt.wantRemaining {
				t.Fatalf("Current = %+v, %s; want %+v, %s", l, remaining, granted, tt.wantRemaining)
			}
		})
	}
	t.Run("fresh ballot without store: held by nobody for a lease", func(t *testing.T) {
		clock := newFakeClock()
		b, _ := NewBallot(L, clock.Mono, nil)
		if l, remaining := b.Current(); l.Holder != "" || l.HolderID != 0 || remaining != L {
			t.Fatalf("Current = %+v, %s; want nobody's lease for %s", l, remaining, L)
		}
	})
}

func TestLeaseFor(t *testing.T) {
	tests := []struct{ ttl, want time.Duration }{
		{3 * time.Second, 3300 * time.Millisecond},
		{time.Second, 1100 * time.Millisecond},
		{10 * time.Millisecond, 11 * time.Millisecond},
		{0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.ttl.String(), func(t *testing.T) {
			if got := LeaseFor(tt.ttl); got != tt.want {
				t.Errorf("LeaseFor(%s) = %s, want %s", tt.ttl, got, tt.want)
			}
		})
	}
}

// mustGrant grants candidate a vote that must be granted.
func mustGrant(t *testing.T, b *Ballot, candidate string, id int) Lease {
	t.Helper()
	granted, l, _, err := b.Grant(candidate, id)
	if !granted || err != nil {
		t.Fatalf("Grant(%s, %d) = %v, %+v, %v; want granted", candidate, id, granted, l, err)
	}
	return l
}

func TestBallotRelease(t *testing.T) {
	const L = testLease
	diskFull := errors.New("no space left on device")
	tests := []struct {
		name      string
		holder    string
		id        int
		advance   time.Duration
		storeErr  error
		released  bool
		wantErr   bool
		grantNext bool // Y may have the vote afterwards
	}{
		{name: "the holder's lease ends now", holder: "X", id: 7, released: true, grantNext: true},
		{name: "another node cannot release it", holder: "Y", id: 8},
		{name: "the same name with another node_id cannot", holder: "X", id: 8},
		{name: "an expired lease has nothing to release", holder: "X", id: 7, advance: L, grantNext: true},
		{name: "an unrecorded release is refused", holder: "X", id: 7, storeErr: diskFull, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			store := openStore(clock)
			b, err := NewBallot(L, clock.Mono, store)
			if err != nil {
				t.Fatal(err)
			}
			mustGrant(t, b, "X", 7)
			clock.Advance(tt.advance)
			store.err = tt.storeErr
			released, err := b.Release(tt.holder, tt.id)
			if released != tt.released || (err != nil) != tt.wantErr {
				t.Fatalf("Release(%s, %d) = %v, %v; want %v, error %v", tt.holder, tt.id, released, err, tt.released, tt.wantErr)
			}
			recorded := store.lease
			store.err = nil
			if granted, _, _, _ := b.Grant("Y", 8); granted != tt.grantNext {
				t.Fatalf("Y granted %v after the release, want %v", granted, tt.grantNext)
			}
			if tt.released {
				// A restarted process must find the lease released.
				b2, err := NewBallot(L, clock.Mono, &memLeases{found: true, lease: recorded})
				if err != nil {
					t.Fatal(err)
				}
				if granted, _, _, _ := b2.Grant("Z", 9); !granted {
					t.Fatal("a restarted ballot honours a released lease")
				}
			}
		})
	}
}

// TestBallotRouterHold: the vote passes to another node only
// consensus.router_hold after the last lease ran out, so that a router that
// still sends writes to the last holder has let go of it first. Its holder
// renews at any time, and a release owes no hold.
func TestBallotRouterHold(t *testing.T) {
	const L, hold = testLease, 400 * time.Millisecond
	tests := []struct {
		name  string
		steps []grantStep
		// release X at this time, if set
		release time.Duration
	}{
		{name: "another node waits out the lease and the hold", steps: []grantStep{
			{at: 0, candidate: "X", id: 7, granted: true, holder: "X", remaining: L},
			{at: L, candidate: "Y", id: 8, holder: "X", remaining: hold},
			{at: L + hold - time.Nanosecond, candidate: "Y", id: 8, holder: "X", remaining: time.Nanosecond},
			{at: L + hold, candidate: "Y", id: 8, granted: true, holder: "Y", remaining: L},
		}},
		{name: "the holder renews within the hold", steps: []grantStep{
			{at: 0, candidate: "X", id: 7, granted: true, holder: "X", remaining: L},
			{at: L + hold/2, candidate: "X", id: 7, granted: true, holder: "X", remaining: L},
			{at: L + hold/2 + L, candidate: "Y", id: 8, holder: "X", remaining: hold},
		}},
		{name: "a released lease owes no hold", release: L / 2, steps: []grantStep{
			{at: 0, candidate: "X", id: 7, granted: true, holder: "X", remaining: L},
			{at: L / 2, candidate: "Y", id: 8, granted: true, holder: "Y", remaining: L},
		}},
		{name: "the quiet period after a start is followed by the hold", steps: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			// An open record as a release writes it: its hold already over.
			var ls LeaseStore = &memLeases{found: true, lease: Lease{Until: clock.Mono() - hold, Saved: clock.Mono()}}
			if tt.steps == nil {
				ls = nil
			}
			b, err := NewBallot(L, clock.Mono, ls)
			if err != nil {
				t.Fatal(err)
			}
			b.HoldForRouters(hold)
			if tt.steps == nil {
				// No store: nobody for one lease, then the hold.
				tt.steps = []grantStep{
					{at: L, candidate: "Y", id: 8, remaining: hold},
					{at: L + hold, candidate: "Y", id: 8, granted: true, holder: "Y", remaining: L},
				}
			}
			start := clock.Mono()
			for _, st := range tt.steps {
				clock.Advance(start + st.at - clock.Mono())
				if tt.release != 0 && st.at == tt.release {
					if ok, err := b.Release("X", 7); !ok || err != nil {
						t.Fatalf("Release(X) = %v, %v", ok, err)
					}
				}
				granted, l, remaining, err := b.Grant(st.candidate, st.id)
				if err != nil || granted != st.granted || l.Holder != st.holder || remaining != st.remaining {
					t.Fatalf("at %s Grant(%s) = %v, holder %q, %s, %v; want %v, %q, %s",
						st.at, st.candidate, granted, l.Holder, remaining, err, st.granted, st.holder, st.remaining)
				}
			}
		})
	}
}
