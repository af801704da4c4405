package lab

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// signal sends sig to the pgquorum process itself: with Options.WrapQuorum,
// the wrapper's descendant that runs the binary, since a wrapper such as
// bwrap forwards no signal.
func (p *quorumProc) signal(sig syscall.Signal) error {
	if p.bin == "" {
		return p.cmd.Process.Signal(sig)
	}
	select {
	case <-p.done:
		return nil // gone: its PID may be another process's by now
	default:
	}
	pid := p.pid
	if pid == p.cmd.Process.Pid {
		// Not found at start (it never answered): look again.
		if found, err := findBinary(pid, p.bin); err == nil {
			pid = found
		}
	}
	return syscall.Kill(pid, sig)
}

// findBinary returns the PID of the first process below root (root
// included) whose executable is the file bin, or an error if none runs it
// yet.
func findBinary(root int, bin string) (int, error) {
	want, err := os.Stat(bin)
	if err != nil {
		return 0, fmt.Errorf("lab: %w", err)
	}
	queue := []int{root}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		// /proc/PID/exe resolves in the process's own mount namespace: the
		// same file as bin when a sandbox binds it in place.
		if exe, err := os.Stat(fmt.Sprintf("/proc/%d/exe", pid)); err == nil && os.SameFile(exe, want) {
			return pid, nil
		}
		children, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
		if err != nil {
			continue // gone meanwhile
		}
		for _, f := range strings.Fields(string(children)) {
			if c, err := strconv.Atoi(f); err == nil {
				queue = append(queue, c)
			}
		}
	}
	return 0, fmt.Errorf("no process below %d runs %s yet", root, bin)
}
