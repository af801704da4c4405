package chaos

import (
	"fmt"
	"strings"
	"time"
)

// Table renders rows as a Markdown table, as docs/testing.md shows it.
func Table(rows []Row) string {
	var b strings.Builder
	b.WriteString("| fault class | faults (alone + in pairs) | acked writes lost | acked by two servers | two 200s | two RW UP in HAProxy | false failovers | not converged in 60 s | converge median | converge max |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %d (%d + %d) | %d | %d | %d | %d | %d | %d | %s | %s |\n",
			r.Class, r.Alone+r.InPairs, r.Alone, r.InPairs, r.Lost, r.DoubleAcks, r.TwoPrimaries, r.TwoWriters,
			r.False, r.NotConverged, seconds(Median(r.Converge)), seconds(Max(r.Converge)))
	}
	return b.String()
}

func seconds(d time.Duration) string {
	return fmt.Sprintf("%.1f s", d.Seconds())
}
