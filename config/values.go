package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/viper"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/auth"
	"github.com/pgquorum/pgquorum/repmgr"
)

// valueParser reads typed values out of viper, collecting one error per bad
// key that names the key, the expected form and what it got.
type valueParser struct {
	v       *viper.Viper
	profile map[string]string // defaults of the keys that have none of their own
	errs    []error
}

// get is the key's value: the explicit one, or its profile's default.
func (p *valueParser) get(key string) any {
	if d, ok := p.profile[key]; ok && !p.v.IsSet(key) {
		return d
	}
	return p.v.Get(key)
}

func (p *valueParser) fail(key, want string, got any) {
	p.errs = append(p.errs, fmt.Errorf("%s: want %s, got %q", key, want, fmt.Sprint(got)))
}

// str reads a scalar as text: YAML may well type "listen: 5999" as a number,
// which the key's own check then judges.
func (p *valueParser) str(key string) string {
	switch x := p.get(key).(type) {
	case string:
		return strings.TrimSpace(x)
	case nil:
		return ""
	case int, int64, float64, bool:
		return fmt.Sprint(x)
	default:
		p.fail(key, "a single value", x)
		return ""
	}
}

// clusterName is what cluster.name may be: a Prometheus label value and a
// title that needs no quoting anywhere.
var clusterName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// name reads a cluster name.
func (p *valueParser) name(key string) string {
	s := p.str(key)
	if !clusterName.MatchString(s) {
		p.fail(key, "1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit", s)
		return ""
	}
	return s
}

func (p *valueParser) intRange(key string, lo, hi int) int {
	raw := p.get(key)
	n, err := strconv.Atoi(strings.TrimSpace(fmt.Sprint(raw)))
	if err != nil || n < lo || n > hi {
		p.fail(key, fmt.Sprintf("an integer from %d to %d", lo, hi), raw)
		return 0
	}
	return n
}

func (p *valueParser) positiveDuration(key string) time.Duration {
	d, err := p.parseDuration(key)
	if err != nil || d <= 0 {
		p.fail(key, "a positive duration such as 1s or 500ms", p.get(key))
		return 0
	}
	return d
}

// duration reads a duration of zero or more.
func (p *valueParser) duration(key string) time.Duration {
	d, err := p.parseDuration(key)
	if err != nil || d < 0 {
		p.fail(key, "a duration of zero or more such as 0s or 500ms", p.get(key))
		return 0
	}
	return d
}

func (p *valueParser) parseDuration(key string) (time.Duration, error) {
	switch x := p.get(key).(type) {
	case time.Duration:
		return x, nil
	case string:
		return time.ParseDuration(strings.TrimSpace(x))
	}
	return 0, errors.New("not a string")
}

func oneOf[T ~string](p *valueParser, key string, allowed ...T) T {
	s := strings.ToLower(p.str(key))
	names := make([]string, 0, len(allowed))
	for _, a := range allowed {
		if s == string(a) {
			return a
		}
		names = append(names, string(a))
	}
	p.fail(key, "one of "+strings.Join(names, ", "), p.get(key))
	return ""
}

// dir reads an optional path that must name an existing directory.
func (p *valueParser) dir(key string) string {
	s := p.str(key)
	if s == "" {
		return ""
	}
	if fi, err := os.Stat(s); err != nil || !fi.IsDir() {
		p.fail(key, "an existing directory", s)
		return ""
	}
	return s
}

func (p *valueParser) hostPort(key string, optional bool) string {
	s := p.str(key)
	if s == "" && optional {
		return ""
	}
	if err := checkHostPort(s); err != nil {
		p.fail(key, "host:port, such as :5999 or 127.0.0.1:5999", s)
	}
	return s
}

// checkHostPort accepts host:port with a port of 1 to 65535 and a host that
// is empty (every address, to listen on), a host name or an IP address: the
// peers' addresses go into URLs, where '/', '?' or '@' would lead elsewhere.
func checkHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return err
	}
	if host != "" && !repmgr.IsHostName(host) {
		return fmt.Errorf("bad host %q", host)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("bad port %q", port)
	}
	return nil
}

// bytes reads a byte count: 16777216, 16MB, 512kB.
func (p *valueParser) bytes(key string) int64 {
	raw := p.get(key)
	n, err := api.ParseBytes(fmt.Sprint(raw))
	if err != nil {
		p.fail(key, "a byte count such as 16777216 or 16MB", raw)
		return 0
	}
	return n
}

// boolean reads true or false (YAML's, or the strings a flag or the
// environment give).
func (p *valueParser) boolean(key string) bool {
	switch x := p.get(key).(type) {
	case bool:
		return x
	case string:
		switch strings.ToLower(strings.TrimSpace(x)) {
		case "true", "yes", "on", "1":
			return true
		case "false", "no", "off", "0", "":
			return false
		}
	}
	p.fail(key, "true or false", p.get(key))
	return false
}

// list accepts a YAML list or a comma-separated string of names.
func (p *valueParser) list(key string) []string {
	var items []string
	switch x := p.get(key).(type) {
	case nil:
	case string:
		items = strings.Split(x, ",")
	case []any:
		for _, i := range x {
			items = append(items, fmt.Sprint(i))
		}
	case []string:
		items = x
	default:
		p.fail(key, "a list of names, or a,b,c", x)
	}
	var out []string
	for _, i := range items {
		if i = strings.TrimSpace(i); i != "" {
			out = append(out, i)
		}
	}
	return out
}

// peers accepts a YAML map, the map a --consensus.peers flag gives, or the
// "name=host:port,name=host:port" string an environment variable gives.
func (p *valueParser) peers(key string) map[string]string {
	out := map[string]string{}
	raw := p.get(key)
	add := func(name string, addr any) {
		a := strings.TrimSpace(fmt.Sprint(addr))
		if name == "" || checkHostPort(a) != nil {
			p.fail(key+"."+name, "host:port for each node name", a)
			return
		}
		out[name] = a
	}
	switch x := raw.(type) {
	case map[string]any:
		for k, a := range x {
			add(k, a)
		}
	case map[string]string:
		for k, a := range x {
			add(k, a)
		}
	case string:
		for _, item := range strings.Split(x, ",") {
			if item = strings.TrimSpace(item); item == "" {
				continue
			}
			name, addr, ok := strings.Cut(item, "=")
			if !ok {
				p.fail(key, "name=host:port,name=host:port", item)
				continue
			}
			add(strings.TrimSpace(name), addr)
		}
	case nil:
	default:
		p.fail(key, "a map of node name to host:port", raw)
	}
	return out
}

// minSecret is the shortest token accepted: a guessable token protects
// nothing. "openssl rand -hex 32" makes a good one.
const minSecret = 16

// secret reads a token. Its value never appears in an error.
func (p *valueParser) secret(key string) auth.Secret {
	s := p.str(key)
	if s != "" && len(s) < minSecret {
		p.errs = append(p.errs, fmt.Errorf("%s: want a secret of at least %d characters (such as the output of openssl rand -hex 32), got %d characters",
			key, minSecret, len(s)))
		return ""
	}
	return auth.Secret(s)
}
