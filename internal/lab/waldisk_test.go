package lab

import (
	"reflect"
	"strings"
	"testing"
)

func TestStaleWALDisks(t *testing.T) {
	mountinfo := strings.Join([]string{
		"22 1 0:21 / / rw,relatime - overlay overlay rw",
		// Ours (PID 100), a live test's (200), a dead one's (300), one
		// with a space in its path (400, dead), and a tmpfs of another
		// name whose number means nothing.
		"40 22 0:40 / /tmp/pgq-lab-1/node1/waldisk rw,nosuid,nodev,relatime - tmpfs pgq-lab-wal.100 rw,size=262144k,mode=700",
		"41 22 0:41 / /tmp/pgq-lab-2/node1/waldisk rw,nosuid,nodev,relatime - tmpfs pgq-lab-wal.200 rw,size=262144k,mode=700",
		"42 22 0:42 / /tmp/pgq-lab-3/node2/waldisk rw,nosuid,nodev,relatime - tmpfs pgq-lab-wal.300 rw,size=262144k,mode=700",
		`43 22 0:43 / /tmp/my\040lab/node3/waldisk rw,nosuid,nodev,relatime - tmpfs pgq-lab-wal.400 rw,size=262144k,mode=700`,
		"44 22 0:44 / /dev/shm rw,nosuid,nodev - tmpfs shm.300 rw",
		"45 22 0:45 / /mnt/x rw - ext4 pgq-lab-wal.300 rw", // not a tmpfs
		"46 22 0:46 / /tmp/y rw - tmpfs pgq-lab-wal.abc rw",
		"",
	}, "\n")
	alive := func(pid int) bool { return pid == 200 }
	got := staleWALDisks(mountinfo, 100, alive)
	want := []string{"/tmp/pgq-lab-3/node2/waldisk", "/tmp/my lab/node3/waldisk"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("stale WAL disks %q, want %q", got, want)
	}
}

func TestWALDiskConfFits(t *testing.T) {
	for _, tc := range []struct {
		size int64
		want string
	}{
		{256 << 20, "max_wal_size = 64MB\nmin_wal_size = 32MB\nwal_keep_size = 64MB\nmax_slot_wal_keep_size = 128MB\n"},
		{MinWALDisk, "max_wal_size = 32MB\nmin_wal_size = 16MB\nwal_keep_size = 32MB\nmax_slot_wal_keep_size = 64MB\n"}, // max_wal_size: two segments at least
	} {
		if got := walDiskConf(tc.size); got != tc.want {
			t.Errorf("walDiskConf(%d MB) = %q, want %q", tc.size>>20, got, tc.want)
		}
	}
}
