package chaos

import (
	"fmt"
	"strings"
	"time"

	"github.com/pgquorum/pgquorum/api"
)

// Table renders rows as a Markdown table, as docs/testing.md shows it.
// With synchronous replication (mode on or strict) a column after the
// lost writes counts those the mode promised to keep, its header naming
// the mode.
func Table(rows []Row, mode api.SyncMode) string {
	sync := mode == api.SyncOn || mode == api.SyncStrict
	var b strings.Builder
	b.WriteString("| fault class | faults (alone + in pairs) | acked writes lost |")
	if sync {
		fmt.Fprintf(&b, " of them promised by synchronous %s |", mode)
	}
	b.WriteString(" acked by two servers | two 200s | two RW UP in HAProxy | false failovers | not converged in 60 s | other violations | converge median | converge max |\n")
	b.WriteString("|---|---|---|")
	if sync {
		b.WriteString("---|")
	}
	b.WriteString("---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %d (%d + %d) | %d |", r.Class, r.Alone+r.InPairs, r.Alone, r.InPairs, r.Lost)
		if sync {
			fmt.Fprintf(&b, " %d |", r.LostProtected)
		}
		fmt.Fprintf(&b, " %d | %d | %d | %d | %d | %d | %s | %s |\n", r.DoubleAcks, r.TwoPrimaries, r.TwoWriters,
			r.False, r.NotConverged, r.Other, seconds(Median(r.Converge)), seconds(Max(r.Converge)))
	}
	return b.String()
}

func seconds(d time.Duration) string {
	return fmt.Sprintf("%.1f s", d.Seconds())
}
