package haproxy

import (
	"net"
	"strconv"
	"text/template"
	"time"
)

// renderData is what the template sees.
type renderData struct {
	Options
	Servers   []Server
	CheckPath string
}

// AgentRW and AgentRO return the agent-check options of s on each listener.
func (d renderData) AgentRW(s Server) string { return d.agent(s, RoleRW) }
func (d renderData) AgentRO(s Server) string { return d.agent(s, RoleRO) }

// agent returns the agent-check options of s for a listener of role, or ""
// when no agent port is configured.
func (d renderData) agent(s Server, role string) string {
	port := s.AgentPort
	if port == 0 {
		port = d.AgentPort
	}
	if port == 0 {
		return ""
	}
	inter := d.AgentInter
	if inter == 0 {
		inter = d.Inter
	}
	return " agent-check agent-port " + strconv.Itoa(port) + ` agent-send "` + role + `\n" agent-inter ` + haproxyTime(inter)
}

// haproxyTime writes d in HAProxy's time format, in the largest unit that is exact.
// Render has checked d is a whole number of milliseconds.
func haproxyTime(d time.Duration) string {
	for _, u := range []struct {
		d    time.Duration
		name string
	}{{time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}} {
		if d%u.d == 0 {
			return strconv.FormatInt(int64(d/u.d), 10) + u.name
		}
	}
	return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
}

// CheckTLS returns the TLS options of s's health check, or "" when checks
// are plain HTTP. verifyhost is the node's name: pgquorum's certificates
// name nodes, and a certificate of another node on s's address fails.
func (d renderData) CheckTLS(s Server) string {
	if !d.CheckSSL {
		return ""
	}
	out := " check-ssl verify required ca-file " + d.CAFile
	if d.CrtFile != "" {
		out += " crt " + d.CrtFile
	}
	return out + " verifyhost " + s.Name
}

func addr(s Server) string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// Why each line is there:
//   - "http-check expect status" is always explicit: with none, any 2xx/3xx
//     passes, and a standby's 202 would open the write listener to it.
//   - "on-marked-down shutdown-sessions" cuts the clients of a primary that
//     lost its majority (or was demoted), instead of letting them write on.
//   - "weight 100" gives the agent's percentages room: 50% of HAProxy's
//     default weight 1 would round to 0, a silent drain.
//   - "init-addr libc,none" lets HAProxy start when one node's name does not
//     resolve (that server stays in MAINT until a reload) rather than take
//     every listener down with it.
//   - option httpchk sends HTTP/1.0 without Host, which pgquorum accepts.
//   - "check-ssl" (with CheckSSL) encrypts the check alone: the server's
//     own traffic is PostgreSQL's, which HAProxy passes through untouched.
//   - "option tcpka" keeps idle PostgreSQL sessions alive through firewalls
//     and lets dead peers be noticed.
//   - The read-only listener balances by least connections, HAProxy's advice
//     for long sessions such as SQL ones.
//   - "server-state-file" + "load-server-state-from-file global" (with
//     ServerStateFile) start each server in the state the previous HAProxy
//     saw, matched by listener and server name, instead of UP until its first
//     check. A missing file only logs a warning. "init-addr" has no "last",
//     so addresses still come from this config; ports do not (see
//     scripts/haproxy/README.md).
var cfgTemplate = template.Must(template.New("haproxy.cfg").Funcs(template.FuncMap{"haproxyTime": haproxyTime, "addr": addr}).Parse(
	`# Rendered by "pgquorum haproxy-config". Each server is checked on its
# pgquorum port: the read-write listener passes only /state 200 (Primary with
# a majority of its site), the read-only listener only 202 (Standby).
# A server stays UP for up to fall x 2 x inter after its last passed check
# (checks that get no answer time out after inter): every node's
# consensus.router_hold must be at least {{haproxyTime .RouterHold}} ((2 x fall + 1) x inter).
global
    maxconn {{.MaxConn}}
    hard-stop-after {{haproxyTime .HardStopAfter}}
{{- if .StatsSocket}}
    stats socket {{.StatsSocket}} mode 600 level admin
{{- end}}
{{- if .ServerStateFile}}
    server-state-file {{.ServerStateFile}}
{{- end}}

defaults
    mode tcp
{{- if .ServerStateFile}}
    load-server-state-from-file global
{{- end}}
    option tcpka
    timeout connect {{haproxyTime .TimeoutConnect}}
    timeout client {{haproxyTime .TimeoutClient}}
    timeout server {{haproxyTime .TimeoutServer}}

listen stats
    mode http
    bind {{.StatsListen}}
    timeout client 30s
    stats enable
    stats uri /
    stats refresh 5s

listen postgres_rw
    bind {{.RWListen}}
    option httpchk GET {{.CheckPath}}
    http-check expect status 200
    default-server inter {{haproxyTime .Inter}} fall {{.Fall}} rise {{.Rise}} on-marked-down shutdown-sessions weight 100 init-addr libc,none
{{- range .Servers}}
    server {{.Name}} {{addr .}} check port {{.CheckPort}}{{$.CheckTLS .}}{{$.AgentRW .}}
{{- end}}

listen postgres_ro
    bind {{.ROListen}}
    balance leastconn
    option httpchk GET {{.CheckPath}}
    http-check expect status 202
    default-server inter {{haproxyTime .Inter}} fall {{.Fall}} rise {{.Rise}} on-marked-down shutdown-sessions weight 100 init-addr libc,none
{{- range .Servers}}
    server {{.Name}} {{addr .}} check port {{.CheckPort}}{{$.CheckTLS .}}{{$.AgentRO .}}
{{- end}}
`))
