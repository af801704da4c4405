package lab

import (
	"syscall"
)

// CrashInstance ends every process of the node's PostgreSQL with SIGKILL
// at once, as the loss of the machine would: the postmaster is stopped
// first so that it restarts nothing, then its children (the walsenders
// among them, so that no more WAL leaves) and it are killed.
func (n *Node) CrashInstance() error {
	pids, err := n.instancePIDs()
	if err != nil {
		return err
	}
	_ = syscall.Kill(pids[0], syscall.SIGSTOP)
	for i := len(pids) - 1; i >= 0; i-- {
		_ = syscall.Kill(pids[i], syscall.SIGKILL)
	}
	n.c.opts.Logf("lab: %s: killed %d PostgreSQL processes with SIGKILL", n.Name, len(pids))
	return nil
}
