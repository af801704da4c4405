package haproxy

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/pgquorum/pgquorum/api"
)

// Options shape the rendered haproxy.cfg. Start from DefaultOptions: Render
// rejects zero timings and counts instead of guessing them.
type Options struct {
	RWListen    string // bind address of the read-write listener, host:port (host may be empty: all addresses)
	ROListen    string // bind address of the read-only listener
	StatsListen string // bind address of the stats page
	StatsSocket string // optional path of an admin-level stats socket ("" renders none)

	// ServerStateFile is where HAProxy loads its servers' last known state
	// at start ("" loads none). Without it HAProxy 2.6 starts every server
	// UP until its first check: a standby or a 509 old primary would take
	// writes for up to Inter after each start or reload. The file must be
	// refreshed ("show servers state" on StatsSocket) just before each
	// reload or stop: scripts/haproxy/save-state.sh.
	ServerStateFile string

	Inter time.Duration // interval between two checks of a server
	Fall  int           // consecutive failed checks before a server is marked DOWN
	Rise  int           // consecutive passed checks before a server is marked UP

	AgentPort  int           // default agent-check port of every server; 0 renders no agent-check
	AgentInter time.Duration // interval between two agent checks; 0 means Inter

	// CheckSSL makes every health check HTTPS (pgquorum's server.tls_cert):
	// HAProxy verifies pgquorum's certificate against CAFile and that it
	// names the server's node (verifyhost), and shows CrtFile (its client
	// certificate and key in one PEM), when set, for server.tls_client_auth
	// required or server.require_auth_for_checks. Traffic to PostgreSQL is
	// not touched.
	CheckSSL bool
	CAFile   string
	CrtFile  string

	MaxConn int
	// HardStopAfter bounds how long an old worker keeps its sessions after
	// a reload: it runs no more checks, so "on-marked-down
	// shutdown-sessions" never cuts them, and they would go on writing to
	// a primary that was replaced meanwhile.
	HardStopAfter  time.Duration
	TimeoutConnect time.Duration
	TimeoutClient  time.Duration // long: PostgreSQL sessions sit idle between queries
	TimeoutServer  time.Duration
}

// DefaultOptions follow common Patroni/HAProxy practice: 5000 read-write,
// 5001 read-only, 7000 stats. A check every second with fall 2 marks a demoted
// primary DOWN within about two seconds of its first non-200 answer.
func DefaultOptions() Options {
	return Options{
		RWListen:       ":5000",
		ROListen:       ":5001",
		StatsListen:    ":7000",
		Inter:          time.Second,
		Fall:           2,
		Rise:           2,
		MaxConn:        1000,
		HardStopAfter:  5 * time.Second,
		TimeoutConnect: 4 * time.Second,
		TimeoutClient:  30 * time.Minute,
		TimeoutServer:  30 * time.Minute,
	}
}

// Server is one PostgreSQL node HAProxy may send clients to.
type Server struct {
	Name      string // repmgr node_name; HAProxy's server name
	Host      string // PostgreSQL host, as in the node's conninfo
	Port      int    // PostgreSQL port
	CheckPort int    // pgquorum HTTP port on Host
	AgentPort int    // pgquorum agent port on Host; 0 means Options.AgentPort
}

// Agent-send lines: each listener tells the one agent port which role it is
// asking about.
const (
	RoleRW = "rw"
	RoleRO = "ro"
)

// maxTimeout is the longest timer HAProxy accepts (2^31-1 ms).
const maxTimeout = (1<<31 - 1) * time.Millisecond

// serverName is what HAProxy accepts as a proxy or server name.
var serverName = regexp.MustCompile(`^[A-Za-z0-9_.:-]+$`)

// Render returns a complete haproxy.cfg for servers, or every problem with
// opts and servers at once.
func Render(opts Options, servers []Server) (string, error) {
	if err := errors.Join(opts.Validate(), validateServers(servers, opts.AgentPort)); err != nil {
		return "", err
	}
	var b bytes.Buffer
	if err := cfgTemplate.Execute(&b, renderData{Options: opts, Servers: servers, CheckPath: api.PathState}); err != nil {
		return "", fmt.Errorf("render haproxy.cfg: %w", err)
	}
	return b.String(), nil
}

// FieldError is a bad option, named by its Options field so that a caller
// can name its own flag or key instead.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// Validate reports every bad option as a *FieldError.
func (o Options) Validate() error {
	var errs []error
	listens := map[string]string{}
	for _, l := range []struct{ name, addr string }{{"RWListen", o.RWListen}, {"ROListen", o.ROListen}, {"StatsListen", o.StatsListen}} {
		if err := checkListen(l.addr); err != nil {
			errs = append(errs, fieldErr(l.name, "want host:port such as :5000 or 127.0.0.1:5000, got %q: %v", l.addr, err))
			continue
		}
		if other, dup := listens[l.addr]; dup {
			errs = append(errs, fieldErr(l.name, "%q is already the %s address", l.addr, other))
		}
		listens[l.addr] = l.name
	}
	switch {
	case o.CheckSSL && o.CAFile == "":
		errs = append(errs, fieldErr("CAFile", "required with CheckSSL: HAProxy must verify pgquorum's certificate"))
	case !o.CheckSSL && (o.CAFile != "" || o.CrtFile != ""):
		errs = append(errs, fieldErr("CheckSSL", "required with CAFile and CrtFile, which only serve TLS checks"))
	}
	for _, p := range []struct{ name, path string }{{"StatsSocket", o.StatsSocket}, {"ServerStateFile", o.ServerStateFile},
		{"CAFile", o.CAFile}, {"CrtFile", o.CrtFile}} {
		if p.path != "" && !cfgPath(p.path) {
			errs = append(errs, fieldErr(p.name, "want an absolute path without blanks or quotes, got %q", p.path))
		}
	}
	// A state file nobody can refresh goes stale: it is dumped through
	// the admin socket, the only one a rendered config has.
	switch {
	case o.ServerStateFile != "" && o.StatsSocket == "":
		errs = append(errs, fieldErr("ServerStateFile", "needs StatsSocket: the state is saved through it (show servers state)"))
	case o.ServerStateFile != "" && o.ServerStateFile == o.StatsSocket:
		errs = append(errs, fieldErr("ServerStateFile", "%q is already the StatsSocket path", o.ServerStateFile))
	}
	errs = append(errs, checkTimer("Inter", o.Inter, false), checkTimer("AgentInter", o.AgentInter, true),
		checkTimer("TimeoutConnect", o.TimeoutConnect, false), checkTimer("TimeoutClient", o.TimeoutClient, false),
		checkTimer("HardStopAfter", o.HardStopAfter, false),
		checkTimer("TimeoutServer", o.TimeoutServer, false))
	errs = append(errs, checkRange("Fall", o.Fall, 1, 100), checkRange("Rise", o.Rise, 1, 100),
		checkRange("MaxConn", o.MaxConn, 1, 1_000_000))
	if o.AgentPort != 0 {
		errs = append(errs, checkRange("AgentPort", o.AgentPort, 1, 65535))
	}
	return errors.Join(errs...)
}

func validateServers(servers []Server, defaultAgent int) error {
	if len(servers) == 0 {
		return errors.New("servers: none to render (witness nodes are never servers)")
	}
	var errs []error
	seen := map[string]bool{}
	withAgent := 0
	for i, s := range servers {
		where := fmt.Sprintf("server %d (%q)", i+1, s.Name)
		if !serverName.MatchString(s.Name) {
			errs = append(errs, fmt.Errorf("%s: name must be letters, digits, '_', '.', ':' or '-'", where))
		} else if seen[s.Name] {
			errs = append(errs, fmt.Errorf("%s: name used twice", where))
		}
		seen[s.Name] = true
		if s.Host == "" || strings.ContainsAny(s.Host, " \t\r\n\"'#,/") {
			errs = append(errs, fmt.Errorf("%s: want a host name or IP address, got %q", where, s.Host))
		}
		errs = append(errs, checkRange(where+": Port", s.Port, 1, 65535), checkRange(where+": CheckPort", s.CheckPort, 1, 65535))
		if s.AgentPort != 0 {
			errs = append(errs, checkRange(where+": AgentPort", s.AgentPort, 1, 65535))
		}
		if s.AgentPort != 0 {
			withAgent++
		}
	}
	// Without a default port, an agent-check on some servers only is a
	// half-done configuration: the others would never drain.
	if defaultAgent == 0 && withAgent > 0 && withAgent < len(servers) {
		errs = append(errs, fmt.Errorf("servers: AgentPort set on %d of %d servers and Options.AgentPort is 0", withAgent, len(servers)))
	}
	return errors.Join(errs...)
}

// cfgPath tells whether p can stand unquoted in haproxy.cfg as an absolute
// path.
func cfgPath(p string) bool {
	return strings.HasPrefix(p, "/") && !strings.ContainsAny(p, " \t\r\n\"'#\\")
}

func checkListen(addr string) error {
	if strings.ContainsAny(addr, " \t\r\n\"'#,") {
		return errors.New("contains a blank, quote, comma or '#'")
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("bad port %q", port)
	}
	return nil
}

func checkTimer(name string, d time.Duration, zeroOK bool) error {
	if d == 0 && zeroOK {
		return nil
	}
	if d < time.Millisecond || d > maxTimeout || d%time.Millisecond != 0 {
		return fieldErr(name, "want a whole number of milliseconds from 1ms to %s, got %s", maxTimeout, d)
	}
	return nil
}

func checkRange(name string, n, lo, hi int) error {
	if n < lo || n > hi {
		return fieldErr(name, "want %d to %d, got %d", lo, hi, n)
	}
	return nil
}

// RouterHold is the shortest consensus.router_hold these checks allow.
// After a server's last passed check HAProxy needs Fall failed checks to
// mark it DOWN; each starts Inter after the previous one ended and, when it
// gets no answer, fails only at its timeout, which is Inter without
// "timeout check" (measured on 2.6.12: 2.05 s with inter 500ms fall 2). One
// more Inter covers the check in flight when the verdict expires.
func (o Options) RouterHold() time.Duration { return time.Duration(2*o.Fall+1) * o.Inter }
