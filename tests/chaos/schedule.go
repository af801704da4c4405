// Package chaos holds the pure parts of the fault harness (make chaos,
// tests/chaos_test.go): the seeded schedule of faults and the checks of the
// history a run records. Nothing here starts a process or opens a socket.
package chaos

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Class is a kind of fault.
type Class string

// The fault classes. Each is injected on one node (its target), except
// CPUHog and HAProxyRestart, which hit the machine or the router.
const (
	KillPostmaster Class = "kill-9-postmaster"  // SIGKILL of the target's postmaster
	StallShort     Class = "sigstop-node-short" // SIGSTOP of postgres and pgquorum, shorter than failover.grace
	StallLong      Class = "sigstop-node-long"  // the same, longer than failover.grace
	StopQuorum     Class = "sigstop-pgquorum"   // SIGSTOP of the target's pgquorum alone
	RestartQuorum  Class = "restart-pgquorum"   // SIGKILL of the target's pgquorum, started again later
	// RestartNoState is RestartQuorum with the target's consensus.state_dir
	// emptied but for its Raft directory while it is down: the vote lease
	// record is gone, so the restarted node must vouch for nobody, itself
	// included, for one lease (docs/quorum.md, "Restarts").
	RestartNoState Class = "restart-pgquorum-no-state"
	// RestartProfile kills the target's pgquorum and starts it with
	// another timing profile (Fault.Profile), then, Duration later, kills
	// it again and starts it with the cluster's: the lease recorded under
	// the one profile must be honoured under the other, the longer of the
	// two (issue 13, item 3).
	RestartProfile  Class = "restart-pgquorum-profile"
	PartitionFull   Class = "partition"            // the target cut from every peer, both ways
	PartitionToward Class = "one-way-partition-in" // what the peers send to the target is dropped
	PartitionFrom   Class = "one-way-partition-out"
	// PacketLoss drops a share (Fault.Loss) of the packets between the
	// target and its peers, both ways, each packet drawn at random.
	PacketLoss     Class = "packet-loss"
	CPUHog         Class = "cpu-starvation" // busy processes, more than the cores
	HAProxyRestart Class = "haproxy-restart"
	Switchover     Class = "switchover" // pgquorum switchover to a standby
	// WipeRaft stops a standby's pgquorum, removes its failover.raft_dir
	// and starts it again: it must refuse to start, naming the recovery,
	// which the harness then does as docs/operations.md says.
	WipeRaft Class = "wipe-raft-dir"
	// PartitionLocation cuts the second location from the first, both
	// ways (a cluster in two locations only).
	PartitionLocation Class = "partition-location"
	// WALDiskFull fills the filesystem of the target's pg_wal (a tmpfs of
	// its own, lab.Options.WALDisk) and makes PostgreSQL need a new WAL
	// segment: a primary PANICs and cannot finish its crash recovery, a
	// standby's WAL receiver stops. The heal frees the disk.
	WALDiskFull Class = "wal-disk-full"
)

// Classes are every class, in the order of the table.
var Classes = []Class{KillPostmaster, StallShort, StallLong, StopQuorum, RestartQuorum, RestartNoState, RestartProfile,
	PartitionFull, PartitionToward, PartitionFrom, PacketLoss, CPUHog, HAProxyRestart, Switchover, WipeRaft, PartitionLocation, WALDiskFull}

// twoLocationsOnly are the classes that need a cluster in two locations.
var twoLocationsOnly = map[Class]bool{PartitionLocation: true}

// DefaultClasses are the classes a run draws from unless told: every one
// the cluster's layout allows.
func DefaultClasses(twoLocations bool) []Class {
	var out []Class
	for _, c := range Classes {
		if twoLocations || !twoLocationsOnly[c] {
			out = append(out, c)
		}
	}
	return out
}

// Role is which node a fault hits, resolved when it is injected.
type Role int

const (
	Primary Role = iota // the primary the last convergence found
	Standby             // one of its standbys: Pick modulo their number
	Machine             // no single node (CPUHog, HAProxyRestart, PartitionLocation)
)

func (r Role) String() string {
	switch r {
	case Primary:
		return "primary"
	case Standby:
		return "standby"
	}
	return "machine"
}

// Fault is one fault of an event.
type Fault struct {
	Class    Class
	Role     Role
	Pick     int           // which standby, for Role Standby
	Duration time.Duration // how long it lasts before it heals
	// Down is how long RestartProfile's pgquorum stays down at each of
	// its two restarts.
	Down time.Duration
	// Profile is the failover.profile RestartProfile's target runs with
	// for Duration: ProfileDefault or ProfileFast.
	Profile string
	// Loss is the percentage of packets PacketLoss drops.
	Loss int
}

// The profiles RestartProfile switches to (config.Profiles).
const (
	ProfileDefault = "default"
	ProfileFast    = "fast"
)

// LossRange is PacketLoss's default share of dropped packets, in percent:
// from LossRange[0] to LossRange[1], both included. The bound of what the
// promise "no failover unless the primary is lost" is tried against
// (docs/testing.md, "Packet loss"); CHAOS_LOSS tries others.
var LossRange = [2]int{5, 30}

// ParseLoss reads CHAOS_LOSS: "lo-hi" or "n" percent, 1 to 99; empty is
// LossRange.
func ParseLoss(s string) ([2]int, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return LossRange, nil
	}
	lo, hi, ok := strings.Cut(s, "-")
	if !ok {
		hi = lo
	}
	a, errA := strconv.Atoi(strings.TrimSpace(lo))
	b, errB := strconv.Atoi(strings.TrimSpace(hi))
	if errA != nil || errB != nil || a < 1 || b > 99 || a > b {
		return [2]int{}, fmt.Errorf("chaos: CHAOS_LOSS=%q: want percent lo-hi (or one n), from 1 to 99", s)
	}
	return [2]int{a, b}, nil
}

func (f Fault) String() string {
	var what string
	switch f.Class {
	case RestartProfile:
		what = fmt.Sprintf(" (profile %s, down %s)", f.Profile, f.Down.Round(10*time.Millisecond))
	case PacketLoss:
		what = fmt.Sprintf(" (%d %%)", f.Loss)
	}
	if f.Role == Machine {
		return fmt.Sprintf("%s %s", f.Class, f.Duration.Round(10*time.Millisecond))
	}
	return fmt.Sprintf("%s%s on the %s%s %s", f.Class, what, f.Role, pickSuffix(f), f.Duration.Round(10*time.Millisecond))
}

func pickSuffix(f Fault) string {
	if f.Role == Standby {
		return fmt.Sprintf(" #%d", f.Pick)
	}
	return ""
}

// Event is one step of a schedule: one fault, or two, the second starting
// Offset after the first.
type Event struct {
	N      int // 1, 2, … in the schedule
	Faults []Fault
	Offset time.Duration
}

func (e Event) String() string {
	parts := make([]string, len(e.Faults))
	for i, f := range e.Faults {
		parts[i] = f.String()
	}
	s := strings.Join(parts, " + ")
	if len(e.Faults) > 1 {
		s += fmt.Sprintf(" (offset %s)", e.Offset.Round(10*time.Millisecond))
	}
	return fmt.Sprintf("#%d %s", e.N, s)
}

// Profile bounds the faults a schedule draws.
type Profile struct {
	Classes   []Class       // the classes to draw from; default Classes
	PairShare float64       // the share of events with two faults
	Grace     time.Duration // failover.grace: StallShort stays under it, StallLong over it
	Loss      [2]int        // PacketLoss's percent, from Loss[0] to Loss[1]; zero: LossRange
}

// losesPrimary are the classes that may make the primary lost, when they
// hit it: a failover after them is expected, not false. A full WAL disk
// takes the primary's database down for good, however short: PostgreSQL
// 15's crash recovery needs a new segment too, fails, and the postmaster
// exits (docs/testing.md, "A full WAL disk"). PacketLoss is not one:
// within LossRange the primary's database and pgquorum stay reachable, if
// slower, and a decision is a false failover.
var losesPrimary = map[Class]bool{KillPostmaster: true, StallLong: true, PartitionFull: true, PartitionToward: true, WALDiskFull: true}

// touchesQuorum are the classes that stop or restart the target's pgquorum
// process: two of them on one node at once would race on it.
var touchesQuorum = map[Class]bool{StallShort: true, StallLong: true, StopQuorum: true, RestartQuorum: true,
	RestartNoState: true, RestartProfile: true}

// network are the classes that change the firewall; its heal lifts every
// rule, so a pair has at most one.
var network = map[Class]bool{PartitionFull: true, PartitionToward: true, PartitionFrom: true, PacketLoss: true, PartitionLocation: true}

// alone are the classes never paired: WipeRaft's recovery stops and
// starts every pgquorum, which no other fault may race.
var alone = map[Class]bool{WipeRaft: true}

// MayDecide tells whether a committed decision during e is expected: a
// switchover, or a fault that can lose the primary hitting it. Any other
// decision is a false failover.
func (e Event) MayDecide() bool {
	for _, f := range e.Faults {
		if f.Class == Switchover || f.Role == Primary && losesPrimary[f.Class] {
			return true
		}
	}
	return false
}

// Schedule draws events from a seed: the same seed and profile give the
// same events, in the same order.
type Schedule struct {
	p   Profile
	rng *rand.Rand
	n   int
}

// NewSchedule returns the schedule of seed.
func NewSchedule(seed uint64, p Profile) *Schedule {
	if len(p.Classes) == 0 {
		p.Classes = DefaultClasses(false)
	}
	if p.Grace <= 0 {
		p.Grace = time.Second
	}
	if p.Loss == [2]int{} {
		p.Loss = LossRange
	}
	return &Schedule{p: p, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// between draws a duration in [lo, hi).
func (s *Schedule) between(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(s.rng.Int64N(int64(hi-lo)))
}

// fault draws one fault.
func (s *Schedule) fault() Fault {
	f := Fault{Class: s.p.Classes[s.rng.IntN(len(s.p.Classes))], Role: Primary, Pick: s.rng.IntN(8)}
	switch f.Class {
	case CPUHog, HAProxyRestart, PartitionLocation:
		f.Role = Machine
	case Switchover, WipeRaft:
		f.Role = Standby // the target
	default:
		if s.rng.IntN(2) == 1 {
			f.Role = Standby
		}
	}
	switch f.Class {
	case KillPostmaster:
		// How long a killed standby stays down before the harness starts
		// it again; a killed primary is replaced, and rejoins by itself.
		f.Duration = s.between(time.Second, 5*time.Second)
	case StallShort:
		// Under the grace by a margin: the stall of a whole machine that
		// the failover must ride out.
		f.Duration = s.between(300*time.Millisecond, s.p.Grace*7/10)
	case StallLong:
		f.Duration = s.between(s.p.Grace*3/2, 5*time.Second)
	case StopQuorum, RestartQuorum, RestartNoState:
		f.Duration = s.between(300*time.Millisecond, 5*time.Second)
	case RestartProfile:
		// Long enough under the other profile for its votes to be
		// recorded with its lease; down at each restart past the
		// cluster's own lease (1.1 s) at times, so that a record is
		// found older than the shorter lease but younger than the longer.
		f.Duration = s.between(2*time.Second, 8*time.Second)
		f.Down = s.between(300*time.Millisecond, 3*time.Second)
		f.Profile = ProfileDefault
		if s.rng.IntN(2) == 1 {
			f.Profile = ProfileFast
		}
	case PartitionFull, PartitionToward, PartitionFrom, PartitionLocation:
		f.Duration = s.between(time.Second, 8*time.Second)
	case WALDiskFull:
		// From the fill to the heal: how long a standby's receiver is
		// held, and whether the heal comes before or after a failover.
		f.Duration = s.between(time.Second, 8*time.Second)
	case PacketLoss:
		f.Duration = s.between(2*time.Second, 10*time.Second)
		f.Loss = s.p.Loss[0] + s.rng.IntN(s.p.Loss[1]-s.p.Loss[0]+1)
	case WipeRaft:
		// How long the node's pgquorum stays down, its directory gone,
		// before the start that must be refused.
		f.Duration = s.between(300*time.Millisecond, 3*time.Second)
	case CPUHog:
		f.Duration = s.between(2*time.Second, 10*time.Second)
	case HAProxyRestart:
		f.Duration = s.between(100*time.Millisecond, 2*time.Second)
	}
	return f
}

// compatible tells whether b may join a in one event: one firewall change
// at most, one switchover at most, never two pgquorum process faults or
// two full WAL disks on one node, two standby faults on different
// standbys, and never a class that runs alone.
func compatible(a, b Fault) bool {
	switch {
	case alone[a.Class] || alone[b.Class]:
		return false
	case network[a.Class] && network[b.Class]:
		return false
	case a.Class == b.Class && (a.Role == Machine || a.Class == Switchover):
		return false
	case a.Role == Primary && b.Role == Primary && touchesQuorum[a.Class] && touchesQuorum[b.Class]:
		return false
	case a.Class == WALDiskFull && b.Class == WALDiskFull && a.Role == b.Role && a.Role == Primary:
		return false // one disk, one ballast: the first heal would free the second's
	}
	return true
}

// Next draws the next event.
func (s *Schedule) Next() Event {
	s.n++
	e := Event{N: s.n, Faults: []Fault{s.fault()}}
	if s.rng.Float64() < s.p.PairShare && !alone[e.Faults[0].Class] {
		for range 20 { // draws until a compatible second fault: bounded, the rules leave most pairs
			b := s.fault()
			if !compatible(e.Faults[0], b) {
				continue
			}
			if a := e.Faults[0]; a.Role == Standby && b.Role == Standby {
				b.Pick = a.Pick + 1 // the other standby
			}
			e.Faults = append(e.Faults, b)
			e.Offset = s.between(0, time.Second)
			break
		}
	}
	return e
}

// ParseClasses reads a comma-separated list of class names; empty means
// every class the layout allows (DefaultClasses). A class that needs two
// locations is refused for a cluster in one.
func ParseClasses(s string, twoLocations bool) ([]Class, error) {
	if strings.TrimSpace(s) == "" {
		return DefaultClasses(twoLocations), nil
	}
	var out []Class
	for name := range strings.SplitSeq(s, ",") {
		c := Class(strings.TrimSpace(name))
		if !slices.Contains(Classes, c) {
			return nil, fmt.Errorf("chaos: unknown fault class %q (known: %v)", c, Classes)
		}
		if twoLocationsOnly[c] && !twoLocations {
			return nil, fmt.Errorf("chaos: fault class %q needs a cluster in two locations (CHAOS_LOCATIONS)", c)
		}
		out = append(out, c)
	}
	return out, nil
}

// Layout is how many nodes each location holds: [3] for one location of
// three, [3 2] for three in dc1 and two in dc2. The first location holds
// the primary.
type Layout []int

// ParseLayout reads CHAOS_LOCATIONS: "3" (the default, when empty) or
// "3+2", nodes per location; the first location must hold a majority of
// the nodes, so that losing any other location loses no quorum.
func ParseLayout(s string) (Layout, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Layout{3}, nil
	}
	var l Layout
	total := 0
	for part := range strings.SplitSeq(s, "+") {
		n, err := strconv.Atoi(strings.TrimSpace(part))
		if err != nil || n < 1 || n > 5 {
			return nil, fmt.Errorf("chaos: CHAOS_LOCATIONS=%q: want nodes per location such as 3+2, each from 1 to 5", s)
		}
		l = append(l, n)
		total += n
	}
	if len(l) > 2 || total > 7 {
		return nil, fmt.Errorf("chaos: CHAOS_LOCATIONS=%q: at most two locations and 7 nodes", s)
	}
	if 2*l[0] <= total || l[0] < 3 {
		return nil, fmt.Errorf("chaos: CHAOS_LOCATIONS=%q: the first location must hold a majority of the nodes and at least 3", s)
	}
	return l, nil
}

// Locations is how many locations the layout has.
func (l Layout) Locations() int { return len(l) }

// Nodes names the layout's nodes node1, node2, … with their locations
// dc1, dc2, … in order.
func (l Layout) Nodes() (names, locations []string) {
	for i, n := range l {
		for range n {
			names = append(names, fmt.Sprintf("node%d", len(names)+1))
			locations = append(locations, fmt.Sprintf("dc%d", i+1))
		}
	}
	return names, locations
}

// Spec is the layout as CHAOS_LOCATIONS gives it: "3+2".
func (l Layout) Spec() string {
	parts := make([]string, len(l))
	for i, n := range l {
		parts[i] = strconv.Itoa(n)
	}
	return strings.Join(parts, "+")
}

func (l Layout) String() string {
	parts := make([]string, len(l))
	for i, n := range l {
		parts[i] = fmt.Sprintf("dc%d %d", i+1, n)
	}
	return strings.Join(parts, " + ")
}
