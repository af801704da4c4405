// Package sdnotify speaks systemd's notify protocol (sd_notify(3)) without
// libsystemd: READY=1 when the service is ready, WATCHDOG=1 to feed the
// watchdog, STOPPING=1 on the way out. Each message is one datagram to the
// unix socket that $NOTIFY_SOCKET names, "@name" for the abstract namespace.
// Without $NOTIFY_SOCKET (not run by systemd, or Type= is not notify) every
// call is a no-op.
package sdnotify

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"
)

// Messages of the protocol that pgquorum sends.
const (
	Ready    = "READY=1"
	Stopping = "STOPPING=1"
	Watchdog = "WATCHDOG=1"
)

// Notifier sends to the service manager's socket; the zero value, or one made
// without $NOTIFY_SOCKET, sends nothing.
type Notifier struct {
	addr *net.UnixAddr
}

// New reads $NOTIFY_SOCKET through getenv (os.Getenv).
func New(getenv func(string) string) (*Notifier, error) {
	name := getenv("NOTIFY_SOCKET")
	switch {
	case name == "":
		return &Notifier{}, nil
	case name[0] != '/' && name[0] != '@':
		// vsock: addresses are systemd's to VMs; not ours to speak.
		return nil, fmt.Errorf("NOTIFY_SOCKET %q: want an absolute path or @abstract name", name)
	}
	// Go's net package maps a leading '@' to the abstract namespace's NUL.
	return &Notifier{addr: &net.UnixAddr{Name: name, Net: "unixgram"}}, nil
}

// Enabled tells whether a service manager listens.
func (n *Notifier) Enabled() bool { return n != nil && n.addr != nil }

// Notify sends one message: newline-separated VAR=value assignments, e.g.
// Ready+"\nSTATUS=serving". It returns nil at once when not Enabled.
func (n *Notifier) Notify(state string) error {
	if !n.Enabled() {
		return nil
	}
	conn, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	defer func() { _ = conn.Close() }() // a datagram was sent or failed already
	if _, err := conn.Write([]byte(state)); err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	return nil
}

// WatchdogInterval returns WatchdogSec= as systemd passes it
// ($WATCHDOG_USEC), or 0 when the watchdog is off or meant for another
// process ($WATCHDOG_PID is set and is not pid).
func WatchdogInterval(getenv func(string) string, pid int) (time.Duration, error) {
	usec := getenv("WATCHDOG_USEC")
	if usec == "" {
		return 0, nil
	}
	if p := getenv("WATCHDOG_PID"); p != "" {
		want, err := strconv.Atoi(p)
		if err != nil {
			return 0, fmt.Errorf("WATCHDOG_PID %q: %w", p, err)
		}
		if want != pid {
			return 0, nil
		}
	}
	n, err := strconv.ParseUint(usec, 10, 63)
	if err != nil {
		return 0, fmt.Errorf("WATCHDOG_USEC %q: %w", usec, err)
	}
	if n == 0 {
		return 0, errors.New("WATCHDOG_USEC: want a positive number of microseconds")
	}
	return time.Duration(n) * time.Microsecond, nil
}
