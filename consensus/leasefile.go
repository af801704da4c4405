package consensus

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// SystemMonotonic reads CLOCK_MONOTONIC: it never jumps with the wall clock
// and, unlike Go's own monotonic readings, counts from the machine's boot,
// so a lease recorded by one process can be honoured by the next.
func SystemMonotonic() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		panic(fmt.Sprintf("clock_gettime(CLOCK_MONOTONIC): %v", err)) // cannot fail on Linux
	}
	return time.Duration(ts.Nano())
}

// bootIDFile changes at every boot; CLOCK_MONOTONIC readings of another boot
// mean nothing.
const bootIDFile = "/proc/sys/kernel/random/boot_id"

// LeaseFile is a LeaseStore in one small JSON file, replaced atomically.
type LeaseFile struct {
	Path string
	// Owner is the node whose vote the file records. A record of another
	// owner is refused (ErrNotOurLease): two instances sharing a state_dir
	// would otherwise honour, and overwrite, each other's votes.
	Owner  LeaseOwner
	BootID func() (string, error) // optional; reads bootIDFile
}

// LeaseOwner names the node a lease record belongs to.
type LeaseOwner struct {
	Node    string `json:"node"`
	NodeID  int    `json:"node_id"`
	DataDir string `json:"data_directory,omitempty"`
}

// ErrNotOurLease is the error of a lease record written by another node.
var ErrNotOurLease = errors.New("the vote lease file belongs to another node")

type leaseRecord struct {
	Holder   string      `json:"holder"`
	HolderID int         `json:"holder_id"`
	UntilNS  int64       `json:"until_monotonic_ns"`
	SavedNS  int64       `json:"saved_monotonic_ns"`
	LeaseNS  int64       `json:"lease_ns,omitempty"`
	BootID   string      `json:"boot_id"`
	Owner    *LeaseOwner `json:"owner,omitempty"` // absent in records of older versions
}

func (f LeaseFile) bootID() (string, error) {
	if f.BootID != nil {
		return f.BootID()
	}
	b, err := os.ReadFile(bootIDFile)
	if err != nil {
		return "", fmt.Errorf("read boot id: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// Load implements LeaseStore.
func (f LeaseFile) Load() (Lease, bool, error) {
	b, err := os.ReadFile(f.Path)
	if os.IsNotExist(err) {
		return Lease{}, false, nil
	}
	if err != nil {
		return Lease{}, false, err
	}
	var r leaseRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return Lease{}, false, fmt.Errorf("decode %s: %w", f.Path, err)
	}
	if r.Owner != nil && *r.Owner != f.Owner {
		return Lease{}, false, fmt.Errorf("%s: %w: %s (node_id %d, %s), not %s (node_id %d, %s); give each node a consensus.state_dir of its own",
			f.Path, ErrNotOurLease, r.Owner.Node, r.Owner.NodeID, r.Owner.DataDir, f.Owner.Node, f.Owner.NodeID, f.Owner.DataDir)
	}
	boot, err := f.bootID()
	if err != nil {
		return Lease{}, false, err
	}
	if r.BootID != boot {
		return Lease{}, false, nil
	}
	return Lease{Holder: r.Holder, HolderID: r.HolderID, Until: time.Duration(r.UntilNS), Saved: time.Duration(r.SavedNS),
		Length: time.Duration(r.LeaseNS)}, true, nil
}

// Save implements LeaseStore: write a temporary file, then rename it over
// the old one. No fsync: the file matters only while the machine stays up,
// and a reboot changes the boot id anyway.
func (f LeaseFile) Save(l Lease) error {
	boot, err := f.bootID()
	if err != nil {
		return err
	}
	owner := f.Owner
	b, err := json.Marshal(leaseRecord{Holder: l.Holder, HolderID: l.HolderID, UntilNS: int64(l.Until), SavedNS: int64(l.Saved),
		LeaseNS: int64(l.Length), BootID: boot, Owner: &owner})
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(f.Path), ".lease-*")
	if err != nil {
		return err
	}
	defer func() { _ = os.Remove(tmp.Name()) }() // fails harmlessly once renamed
	if _, err := tmp.Write(b); err != nil {
		_ = tmp.Close() // the write's error is the one to report
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), f.Path)
}
