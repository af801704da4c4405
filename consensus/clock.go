package consensus

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// SystemBoottime reads CLOCK_BOOTTIME: CLOCK_MONOTONIC plus the time the
// machine spent suspended. A verdict is timed on it as well as on Go's
// monotonic clock (CLOCK_MONOTONIC, which stops during a suspend), so that a
// machine resumed after a suspend longer than the cache TTL does not serve
// the verdict it cached before (docs/quorum.md, "Clocks").
func SystemBoottime() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		panic(fmt.Sprintf("clock_gettime(CLOCK_BOOTTIME): %v", err)) // cannot fail on Linux >= 2.6.39
	}
	return time.Duration(ts.Nano())
}

// age is how old facts read at probedAt (and at boot-clock reading
// probedBoot) are at now (and boot): the largest of what the monotonic
// clock, the boot clock and the wall clock say. Each clock can only make a
// verdict expire sooner, never later: the monotonic clock stops during a
// suspend, the boot clock counts it, and the wall clock, corrected by NTP
// after a hypervisor's pause that froze both, jumps ahead; a wall clock
// stepped back gives a negative age, which the others outweigh.
func age(now, probedAt time.Time, boot, probedBoot time.Duration) time.Duration {
	mono := now.Sub(probedAt)                   // monotonic readings when both carry one
	wall := now.Round(0).Sub(probedAt.Round(0)) // wall readings only
	return max(mono, wall, boot-probedBoot)
}
