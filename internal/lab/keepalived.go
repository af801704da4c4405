package lab

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// VRRPHost is one side of a two-host VRRP lab: a network namespace of its
// own whose only interface is one end of a veth pair, with a 127/8 address.
type VRRPHost struct {
	NS    string // network namespace name
	Iface string // the veth end inside NS
	Addr  string // its address, e.g. 127.0.0.2
}

// VRRPPair is two VRRPHosts joined by a veth pair: two "hosts" that can
// exchange unicast VRRP without any address outside 127.0.0.0/8.
//
// keepalived refuses to run VRRP on lo, hence the veth pair; and lo stays
// down in both namespaces: were it up, all of 127.0.0.0/8 would be local
// there and the peer's address would never leave the namespace.
// route_localnet lets 127/8 packets cross the veth instead of being dropped
// as martians.
type VRRPPair struct {
	A, B    VRRPHost
	created []string
}

// NewVRRPPair creates the namespaces pgqka-<random>-a and -b. The caller
// must Close it; on error, whatever was created is already removed.
func NewVRRPPair(ctx context.Context) (p *VRRPPair, err error) {
	suffix := make([]byte, 4)
	if _, err := rand.Read(suffix); err != nil {
		return nil, fmt.Errorf("lab: random netns name: %w", err)
	}
	base := "pgqka-" + hex.EncodeToString(suffix)
	p = &VRRPPair{
		A: VRRPHost{NS: base + "-a", Iface: "vrrpa", Addr: "127.0.0.2"},
		B: VRRPHost{NS: base + "-b", Iface: "vrrpb", Addr: "127.0.0.3"},
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, p.Close())
		}
	}()
	for _, h := range []VRRPHost{p.A, p.B} {
		if err := ipCmd(ctx, "netns", "add", h.NS); err != nil {
			return nil, err
		}
		p.created = append(p.created, h.NS)
	}
	if err := ipCmd(ctx, "link", "add", p.A.Iface, "netns", p.A.NS, "type", "veth", "peer", "name", p.B.Iface, "netns", p.B.NS); err != nil {
		return nil, err
	}
	if err := p.A.configure(ctx, p.B.Addr); err != nil {
		return nil, err
	}
	if err := p.B.configure(ctx, p.A.Addr); err != nil {
		return nil, err
	}
	return p, nil
}

func (h VRRPHost) configure(ctx context.Context, peer string) error {
	for _, kv := range []string{"all.route_localnet=1", h.Iface + ".route_localnet=1", "all.rp_filter=0", h.Iface + ".rp_filter=0"} {
		if err := ipCmd(ctx, "netns", "exec", h.NS, "sysctl", "-qw", "net.ipv4.conf."+kv); err != nil {
			return err
		}
	}
	if err := ipCmd(ctx, "-n", h.NS, "addr", "add", h.Addr+"/32", "peer", peer+"/32", "dev", h.Iface); err != nil {
		return err
	}
	return ipCmd(ctx, "-n", h.NS, "link", "set", h.Iface, "up")
}

// Close deletes the namespaces this pair created; the veth pair goes with
// them.
func (p *VRRPPair) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var errs []error
	for _, ns := range p.created {
		errs = append(errs, ipCmd(ctx, "netns", "del", ns))
	}
	p.created = nil
	return errors.Join(errs...)
}

// HasAddr tells whether addr is on the host's interface now.
func (h VRRPHost) HasAddr(ctx context.Context, addr string) (bool, error) {
	out, err := exec.CommandContext(ctx, "ip", "-n", h.NS, "-4", "-o", "addr", "show", "dev", h.Iface).CombinedOutput()
	if err != nil {
		return false, fmt.Errorf("lab: ip -n %s addr show: %w: %s", h.NS, err, out)
	}
	return strings.Contains(string(out), " "+addr+"/"), nil
}

func ipCmd(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("lab: ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Proc is a long-running helper process (keepalived, HAProxy) whose output
// goes to Logf and which is stopped by its PID.
type Proc struct {
	Name string
	cmd  *exec.Cmd
	done chan struct{}
}

// StartProc starts cmd and copies its output, line by line, to logf.
func StartProc(name string, cmd *exec.Cmd, logf func(string, ...any)) (*Proc, error) {
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("lab: %s: %w", name, err)
	}
	cmd.Stderr = cmd.Stdout
	// Its own process group, so that Stop's SIGKILL also reaches children
	// that hold its output (repmgrd's validation or follow commands).
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("lab: start %s: %w", name, err)
	}
	p := &Proc{Name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			logf("%s: %s", name, sc.Text())
		}
		_, _ = io.Copy(io.Discard, out)
		_ = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// PID is the process's PID.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Exited tells whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM, then SIGKILL to its process group after grace, and
// waits for the end (and for its output to close) at most grace more.
func (p *Proc) Stop(grace time.Duration) error {
	if p.Exited() {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(grace):
	}
	// The group this process leads: it and the children it started.
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-p.done:
		return fmt.Errorf("lab: %s ignored SIGTERM for %s", p.Name, grace)
	case <-time.After(grace):
		return fmt.Errorf("lab: %s (PID %d) or a child holding its output still runs after SIGKILL", p.Name, p.PID())
	}
}

// KeepalivedCmd is keepalived, VRRP only, in the foreground, logging to its
// output rather than syslog, run inside ns with its own pid files under dir
// so that several can run at once.
func KeepalivedCmd(ns, conf, dir string) *exec.Cmd {
	return exec.Command("ip", "netns", "exec", ns, "keepalived",
		"--dont-fork", "--log-console", "--log-detail", "--no-syslog", "--vrrp",
		"--use-file", conf,
		"--pid", filepath.Join(dir, "keepalived.pid"),
		"--vrrp_pid", filepath.Join(dir, "vrrp.pid"))
}

// KillVRRPChild kills keepalived's VRRP child by the PID in dir/vrrp.pid if
// it outlived its parent, checking first that the PID is still keepalived.
func KillVRRPChild(dir string) {
	b, err := os.ReadFile(filepath.Join(dir, "vrrp.pid"))
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return
	}
	// A recycled PID would not carry our pid file's path on its command line.
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !strings.Contains(string(cmdline), dir) {
		return
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
}

const haproxyConf = `global
    log stderr local0 notice
defaults
    mode tcp
    timeout connect 1s
    timeout client 10s
    timeout server 10s
listen unused
    bind 127.0.0.1:%d
    server nowhere 127.0.0.1:1
`

// StartHAProxy runs a real HAProxy the way Debian's systemd unit does
// (-Ws: master-worker in the foreground, -p: the master's PID in a pid
// file) and waits until the pid file names it. Only its liveness matters
// to the tests that use it, so it proxies nothing useful.
func StartHAProxy(ctx context.Context, dir string, logf func(string, ...any)) (p *Proc, pidfile string, err error) {
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	conf := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(haproxyConf, port)), 0o644); err != nil {
		return nil, "", fmt.Errorf("lab: %w", err)
	}
	pidfile = filepath.Join(dir, "haproxy.pid")
	p, err = StartProc("haproxy "+filepath.Base(dir), exec.Command("haproxy", "-Ws", "-f", conf, "-p", pidfile), logf)
	if err != nil {
		return nil, "", err
	}
	err = WaitFor(ctx, 10*time.Second, "haproxy pid file", func(context.Context) error {
		if p.Exited() {
			return errors.New("haproxy exited")
		}
		b, err := os.ReadFile(pidfile)
		if err != nil {
			return err
		}
		if strings.TrimSpace(string(b)) != strconv.Itoa(p.PID()) {
			return fmt.Errorf("pid file holds %q, want %d", b, p.PID())
		}
		return nil
	})
	if err != nil {
		return nil, "", errors.Join(err, p.Stop(5*time.Second))
	}
	return p, pidfile, nil
}
