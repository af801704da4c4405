package lab

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// RestartOnFailure runs the node's postmaster in the foreground, as a
// service manager does, and starts it again restartDelay (the unit's RestartSec) after each exit
// that is not a clean one, like systemd's Restart=on-failure: at most
// maxStarts times, and never once Stop was called. A clean stop (pg_ctl
// stop, exit 0) ends it, as it ends such a unit.
type RestartOnFailure struct {
	mu     sync.Mutex
	starts int
	exits  []string
	stop   chan struct{}
	done   chan struct{}
}

// StartRestartOnFailure starts the loop on n.
func (n *Node) StartRestartOnFailure(restartDelay time.Duration, maxStarts int) *RestartOnFailure {
	r := &RestartOnFailure{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		for i := 0; i < maxStarts; i++ {
			select {
			case <-r.stop:
				return
			default:
			}
			// Not bound by a context: the lab's Close stops this
			// postmaster as it stops any, and this loop then ends.
			out, err := n.run.Run(context.Background(), filepath.Join(n.c.opts.PGBin, "postgres"),
				append([]string{"-D", n.DataDir()}, strings.Fields(n.serverOptions())...)...)
			r.mu.Lock()
			r.starts++
			exit := "exit 0"
			if err != nil {
				exit = lastLine(out) + " (" + err.Error() + ")"
			}
			r.exits = append(r.exits, exit)
			r.mu.Unlock()
			if err == nil {
				return
			}
			select {
			case <-r.stop:
				return
			case <-time.After(restartDelay): // the unit's RestartSec
			}
		}
	}()
	return r
}

// Stop ends the loop: no start after this one.
func (r *RestartOnFailure) Stop() {
	select {
	case <-r.stop:
	default:
		close(r.stop)
	}
}

// Done is closed once the loop ended.
func (r *RestartOnFailure) Done() <-chan struct{} { return r.done }

// Starts is how many times the loop ran the postmaster, and how each ended.
func (r *RestartOnFailure) Starts() (int, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.starts, append([]string(nil), r.exits...)
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
