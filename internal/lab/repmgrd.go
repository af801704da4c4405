package lab

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/pgquorum/pgquorum/repmgr"
)

// RepmgrdOptions are repmgrd's failover settings, for the benchmarks that
// compare with it and the tests of pgquorum's gate for it.
type RepmgrdOptions struct {
	ReconnectAttempts int // repmgr's default: 6
	ReconnectInterval int // seconds; repmgr's default: 10
	// ValidationCommand, when set, is repmgrd's
	// failover_validation_command; %n is replaced by the node's id, %a by
	// its name (by repmgrd), {pgquorum} by the base URL of the node's
	// pgquorum and {pgquorum-bin} by the pgquorum binary its OS user can
	// run (by the lab).
	ValidationCommand string
}

// repmgrdConf is what repmgr.conf needs for repmgrd to fail over by itself.
func (n *Node) repmgrdConf() string {
	o := n.c.opts.Repmgrd
	if o == nil {
		return ""
	}
	conf := fmt.Sprintf(`failover='automatic'
promote_command='repmgr standby promote -f %[1]s'
follow_command='repmgr standby follow -f %[1]s --upstream-node-id=%%n'
reconnect_attempts=%[2]d
reconnect_interval=%[3]d
monitor_interval_secs=1
repmgrd_pid_file='%[4]s'
`, n.RepmgrConf(), o.ReconnectAttempts, o.ReconnectInterval, filepath.Join(n.Dir, "repmgrd.pid"))
	if o.ValidationCommand != "" {
		bin, err := n.c.quorumBinary()
		if err != nil {
			bin = err.Error() // the command fails, and says why
		}
		cmd := strings.NewReplacer("{pgquorum-bin}", bin, "{pgquorum}", n.QuorumURL()).Replace(o.ValidationCommand)
		conf += fmt.Sprintf("failover_validation_command='%s'\n", cmd)
	}
	return conf
}

// StartRepmgrd runs repmgrd for the node in the foreground, as its OS user,
// its output in the cluster's log.
func (n *Node) StartRepmgrd() error {
	if n.repmgrd != nil && !n.repmgrd.Exited() {
		return fmt.Errorf("lab: %s: repmgrd already running", n.Name)
	}
	cmd := exec.Command("repmgrd", "-f", n.RepmgrConf(), "--daemonize=false")
	cmd.Dir = n.Dir
	cmd.Env = []string{"PATH=" + n.c.opts.PGBin + ":/usr/bin:/bin", "LC_ALL=C", "HOME=" + n.Dir}
	if n.owner != nil {
		cred, err := repmgr.Credential(n.owner.Username)
		if err != nil {
			return err
		}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	p, err := StartProc(n.Name+" repmgrd", cmd, n.c.opts.Logf)
	if err != nil {
		return err
	}
	n.repmgrd = p
	return nil
}

// KillRepmgrd ends the node's repmgrd with SIGKILL, as when the whole node
// is lost.
func (n *Node) KillRepmgrd() {
	if p := n.repmgrd; p != nil && !p.Exited() {
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// StopRepmgrd stops the node's repmgrd, if it runs.
func (n *Node) StopRepmgrd() error {
	if n.repmgrd == nil {
		return nil
	}
	// repmgrd finishes the command it runs before it honours SIGTERM: a
	// "standby follow" restarts PostgreSQL, which takes seconds on a busy
	// machine.
	return n.repmgrd.Stop(20 * time.Second)
}
