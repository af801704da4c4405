package repmgr

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// Config is the part of repmgr.conf that pgquorum reads.
type Config struct {
	NodeID        int
	NodeName      string
	Conninfo      string
	Location      string
	DataDirectory string
	// How repmgr itself starts and stops the instance; Service does the same.
	PGBinDir            string
	PGCtlOptions        string
	ServiceStartCommand string
	ServiceStopCommand  string
	// UseReplicationSlots: a standby streams through a slot named for it
	// (SlotName) on its upstream.
	UseReplicationSlots bool
}

// ReadConfigFile reads and parses a repmgr.conf.
func ReadConfigFile(path string) (Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return Config{}, fmt.Errorf("read repmgr config: %w", err)
	}
	defer func() { _ = f.Close() }() // only read
	kv, err := ParseConfig(f)
	if err != nil {
		return Config{}, fmt.Errorf("parse repmgr config %s: %w", path, err)
	}
	c := Config{
		NodeName:      kv["node_name"],
		Conninfo:      kv["conninfo"],
		Location:      kv["location"],
		DataDirectory: kv["data_directory"],

		PGBinDir:            kv["pg_bindir"],
		PGCtlOptions:        kv["pg_ctl_options"],
		ServiceStartCommand: kv["service_start_command"],
		ServiceStopCommand:  kv["service_stop_command"],

		UseReplicationSlots: parseBool(kv["use_replication_slots"]),
	}
	if c.Location == "" {
		c.Location = "default" // repmgr's own default
	}
	if id, ok := kv["node_id"]; ok {
		if c.NodeID, err = strconv.Atoi(id); err != nil {
			return Config{}, fmt.Errorf("parse repmgr config %s: node_id %q is not an integer", path, id)
		}
	}
	return c, nil
}

// ParseConfig parses repmgr.conf syntax, which follows postgresql.conf:
// "key = value" or "key=value" per line, values bare or single-quoted (a quote
// inside doubled or backslash-escaped), "#" starting a comment outside quotes.
// Later settings win, as in repmgr.
func ParseConfig(r io.Reader) (map[string]string, error) {
	kv := map[string]string{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for n := 1; sc.Scan(); n++ {
		key, val, ok, err := parseConfigLine(sc.Text())
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if ok {
			kv[key] = val
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return kv, nil
}

func parseConfigLine(line string) (key, val string, ok bool, err error) {
	line = strings.TrimSpace(line)
	if line == "" || line[0] == '#' {
		return "", "", false, nil
	}
	i := strings.IndexAny(line, "= \t")
	if i <= 0 {
		return "", "", false, fmt.Errorf("expected key = value, got %q", line)
	}
	key = line[:i]
	rest := strings.TrimLeft(line[i:], " \t")
	rest = strings.TrimPrefix(rest, "=")
	rest = strings.TrimLeft(rest, " \t")
	if strings.HasPrefix(rest, "'") {
		val, rest, err = quotedConfigValue(rest[1:])
		if err != nil {
			return "", "", false, fmt.Errorf("%s: %w", key, err)
		}
	} else {
		val, _, _ = strings.Cut(rest, "#") // a bare value ends at a comment
		val = strings.TrimSpace(val)
		rest = ""
	}
	if rest = strings.TrimSpace(rest); rest != "" && rest[0] != '#' {
		return "", "", false, fmt.Errorf("%s: unexpected %q after value", key, rest)
	}
	return key, val, true, nil
}

func quotedConfigValue(s string) (val, rest string, err error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\' && i+1 < len(s):
			i++
			b.WriteByte(s[i])
		case s[i] == '\'' && i+1 < len(s) && s[i+1] == '\'':
			i++
			b.WriteByte('\'')
		case s[i] == '\'':
			return b.String(), s[i+1:], nil
		default:
			b.WriteByte(s[i])
		}
	}
	return "", "", fmt.Errorf("unterminated quoted value")
}

// parseBool reads a repmgr.conf boolean as repmgr does: "true", "on",
// "yes", "1" and their capitals are true.
func parseBool(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "true", "on", "yes", "1":
		return true
	}
	return false
}
