package repmgr

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// ParseConninfo parses a libpq connection string, either in keyword/value form
// ("host=db1 port=5432 user='a b'") or as a postgres:// URI, into its
// keywords. repmgr stores each node's conninfo in this form.
func ParseConninfo(s string) (map[string]string, error) {
	trimmed := strings.TrimSpace(s)
	if strings.HasPrefix(trimmed, "postgres://") || strings.HasPrefix(trimmed, "postgresql://") {
		return parseConninfoURI(trimmed)
	}
	return parseConninfoKV(trimmed)
}

func parseConninfoURI(s string) (map[string]string, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("parse conninfo URI: %w", err)
	}
	kv := map[string]string{}
	if h := u.Hostname(); h != "" {
		kv["host"] = h
	}
	if p := u.Port(); p != "" {
		kv["port"] = p
	}
	if u.User != nil {
		kv["user"] = u.User.Username()
		if pw, ok := u.User.Password(); ok {
			kv["password"] = pw
		}
	}
	if db := strings.TrimPrefix(u.Path, "/"); db != "" {
		kv["dbname"] = db
	}
	for k, v := range u.Query() {
		if len(v) > 0 {
			kv[k] = v[len(v)-1]
		}
	}
	return kv, nil
}

// parseConninfoKV follows libpq's conninfo_parse: keywords, optional spaces
// around '=', values single-quoted or bare, backslash escaping in both.
func parseConninfoKV(s string) (map[string]string, error) {
	kv := map[string]string{}
	i := 0
	skipSpace := func() {
		for i < len(s) && isSpace(s[i]) {
			i++
		}
	}
	for {
		skipSpace()
		if i >= len(s) {
			return kv, nil
		}
		start := i
		for i < len(s) && s[i] != '=' && !isSpace(s[i]) {
			i++
		}
		key := s[start:i]
		skipSpace()
		if i >= len(s) || s[i] != '=' {
			return nil, fmt.Errorf("conninfo: missing \"=\" after %q", key)
		}
		i++
		skipSpace()
		val, next, err := conninfoValue(s, i)
		if err != nil {
			return nil, fmt.Errorf("conninfo: value of %q: %w", key, err)
		}
		i = next
		kv[key] = val
	}
}

func conninfoValue(s string, i int) (string, int, error) {
	var b strings.Builder
	if i < len(s) && s[i] == '\'' {
		i++
		for i < len(s) {
			switch c := s[i]; {
			case c == '\\' && i+1 < len(s):
				b.WriteByte(s[i+1])
				i += 2
			case c == '\'':
				return b.String(), i + 1, nil
			default:
				b.WriteByte(c)
				i++
			}
		}
		return "", i, errors.New("unterminated quoted string")
	}
	for i < len(s) && !isSpace(s[i]) {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
		i++
	}
	return b.String(), i, nil
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

// ConninfoHost returns the first host of a conninfo (libpq allows a comma
// separated list), falling back to hostaddr. A Unix socket directory is not a
// host that a peer can be reached at, and is reported as an error.
func ConninfoHost(conninfo string) (string, error) {
	kv, err := ParseConninfo(conninfo)
	if err != nil {
		return "", err
	}
	host := kv["host"]
	if host == "" {
		host = kv["hostaddr"]
	}
	host, _, _ = strings.Cut(host, ",")
	switch {
	case host == "":
		return "", errors.New("conninfo names no host")
	case strings.HasPrefix(host, "/"):
		return "", fmt.Errorf("conninfo host %q is a Unix socket directory", host)
	case !IsHostName(host):
		// Peers are asked at http://<host>:<port>/…: a host holding '/',
		// '?', '@' and the like would send the request elsewhere.
		return "", fmt.Errorf("conninfo host %q is neither a host name nor an IP address", host)
	}
	return host, nil
}

// IsHostName tells whether host is an IP address or made of the characters
// of DNS names (letters, digits, '-', '.', and '_', which some resolvers
// allow).
func IsHostName(host string) bool {
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	for _, c := range []byte(host) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '.', c == '_':
		default:
			return false
		}
	}
	return host != ""
}

// ConninfoPort returns the first port of a conninfo, libpq's 5432 by default.
func ConninfoPort(conninfo string) (int, error) {
	kv, err := ParseConninfo(conninfo)
	if err != nil {
		return 0, err
	}
	s, _, _ := strings.Cut(kv["port"], ",")
	if s == "" {
		return 5432, nil
	}
	p, err := strconv.Atoi(s)
	if err != nil || p < 1 || p > 65535 {
		return 0, fmt.Errorf("conninfo port %q is not a port", s)
	}
	return p, nil
}

// DSN is a connection string that may hold a password. It prints redacted, so
// the effective configuration can be shown and logged safely.
type DSN string

// String returns the DSN with its password replaced by "xxxxx".
func (d DSN) String() string { return RedactDSN(string(d)) }

// LogValue keeps slog from printing the password.
func (d DSN) LogValue() slog.Value { return slog.StringValue(d.String()) }

// secretKeys are the conninfo keywords whose values are secrets: the
// password, and the passphrase of the client's SSL key.
var secretKeys = map[string]bool{"password": true, "sslpassword": true}

// RedactDSN hides the passwords of a conninfo or URI. A string it cannot parse
// is hidden whole: it might be a password with a typo around it.
func RedactDSN(s string) string {
	kv, err := ParseConninfo(s)
	if err != nil {
		return "<unparseable DSN hidden>"
	}
	if !hasSecret(kv) {
		return s
	}
	if u, err := url.Parse(strings.TrimSpace(s)); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
		q := u.Query()
		for k := range secretKeys {
			if q.Has(k) {
				q.Set(k, "xxxxx")
				u.RawQuery = q.Encode()
			}
		}
		return u.String()
	}
	keys := make([]string, 0, len(kv))
	for k := range kv {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		v := kv[k]
		if secretKeys[k] {
			v = "xxxxx"
		}
		parts = append(parts, k+"="+quoteConninfo(v))
	}
	return strings.Join(parts, " ")
}

func hasSecret(kv map[string]string) bool {
	for k := range secretKeys {
		if _, ok := kv[k]; ok {
			return true
		}
	}
	return false
}

// quoteConninfo quotes v when it holds a quote, a backslash or any byte that
// isSpace splits on, so that ParseConninfo reads it back whole.
func quoteConninfo(v string) string {
	if v != "" && !strings.ContainsAny(v, " \t\n\r\f\v'\\") {
		return v
	}
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`)
	return "'" + r.Replace(v) + "'"
}
