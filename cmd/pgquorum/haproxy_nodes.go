package main

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/pgquorum/pgquorum/haproxy"
	"github.com/pgquorum/pgquorum/repmgr"
)

// serversFromNodes turns repmgr.nodes rows into servers: every node but
// witnesses, inactive ones included (their checks keep them out until they
// rejoin), at the host and port of their conninfo.
func serversFromNodes(nodes []repmgr.Node, location string, checkPort int, checkPorts map[string]int) ([]haproxy.Server, error) {
	var servers []haproxy.Server
	var errs []error
	used := map[string]bool{}
	for _, n := range nodes {
		if n.Type == repmgr.TypeWitness || location != "" && n.Location != location {
			continue
		}
		host, err := repmgr.ConninfoHost(n.Conninfo)
		if err != nil {
			errs = append(errs, fmt.Errorf("node %s: %w (list the nodes with --node instead)", n.Name, err))
			continue
		}
		port, err := repmgr.ConninfoPort(n.Conninfo)
		if err != nil {
			errs = append(errs, fmt.Errorf("node %s: %w", n.Name, err))
			continue
		}
		s := haproxy.Server{Name: n.Name, Host: host, Port: port, CheckPort: checkPort}
		if p, ok := checkPorts[n.Name]; ok {
			s.CheckPort, used[n.Name] = p, true
		}
		servers = append(servers, s)
	}
	errs = append(errs, unusedNames("--node-check-port", checkPorts, used))
	if len(servers) == 0 && errors.Join(errs...) == nil {
		errs = append(errs, fmt.Errorf("repmgr.nodes has no non-witness node%s", inLocation(location)))
	}
	sort.Slice(servers, func(i, j int) bool { return servers[i].Name < servers[j].Name })
	return servers, errors.Join(errs...)
}

func inLocation(l string) string {
	if l == "" {
		return ""
	}
	return " in location " + strconv.Quote(l)
}

// unusedNames catches a misspelt node name, which would otherwise leave that
// node checked on the wrong port.
func unusedNames(flag string, m map[string]int, used map[string]bool) error {
	var bad []string
	for name := range m {
		if !used[name] {
			bad = append(bad, name)
		}
	}
	if len(bad) == 0 {
		return nil
	}
	sort.Strings(bad)
	return fmt.Errorf("%s: no node named %s", flag, strings.Join(bad, ", "))
}

// parseNodeFlags reads --node name=host:pgport[:checkport] values; an IPv6
// host is written in brackets.
func parseNodeFlags(values []string, checkPort int, checkPorts map[string]int) ([]haproxy.Server, error) {
	var servers []haproxy.Server
	var errs []error
	used := map[string]bool{}
	for _, v := range values {
		s, err := parseNodeFlag(v, checkPort)
		if err != nil {
			errs = append(errs, fmt.Errorf("--node %q: want name=host:pgport[:checkport]: %w", v, err))
			continue
		}
		if p, ok := checkPorts[s.Name]; ok {
			s.CheckPort, used[s.Name] = p, true
		}
		servers = append(servers, s)
	}
	errs = append(errs, unusedNames("--node-check-port", checkPorts, used))
	return servers, errors.Join(errs...)
}

func parseNodeFlag(v string, checkPort int) (haproxy.Server, error) {
	name, rest, ok := strings.Cut(v, "=")
	if !ok || name == "" {
		return haproxy.Server{}, errors.New("no name")
	}
	s := haproxy.Server{Name: name, CheckPort: checkPort}
	ports := rest
	if strings.HasPrefix(rest, "[") { // [IPv6]:pgport[:checkport]
		end := strings.Index(rest, "]")
		if end < 0 {
			return s, errors.New("unclosed [")
		}
		s.Host, ports = rest[1:end], strings.TrimPrefix(rest[end+1:], ":")
	} else {
		s.Host, ports, _ = strings.Cut(rest, ":")
	}
	pg, check, hasCheck := strings.Cut(ports, ":")
	var err error
	if s.Port, err = strconv.Atoi(pg); err != nil {
		return s, fmt.Errorf("pgport %q is not a number", pg)
	}
	if hasCheck {
		if s.CheckPort, err = strconv.Atoi(check); err != nil {
			return s, fmt.Errorf("checkport %q is not a number", check)
		}
	}
	return s, nil
}
