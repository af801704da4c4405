// Package config reads and validates pgquorum's configuration: every key from
// a YAML file, PGQUORUM_* variables and flags, with all problems reported at
// once, each naming its key and the form expected.
package config

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/pgquorum/pgquorum/repmgr"
)

// Config is the validated configuration of "pgquorum serve".
type Config struct {
	NodeName string
	Listen   string
	// AgentListen is the optional TCP address of the HAProxy agent-check port.
	AgentListen string

	DSN       repmgr.DSN
	MaxConns  int
	DBTimeout time.Duration

	RepmgrConfigFile string
	RepmgrBin        string
	// From repmgr.conf, when it is read: what proves the database reached
	// is this node's.
	NodeID  int
	DataDir string

	RefreshInterval time.Duration
	CacheTTL        time.Duration
	PeerTimeout     time.Duration
	PeerPort        int
	Peers           map[string]string
	Scope           string
	StateDir        string

	LogLevel  string
	LogFormat string
}

// Key is one configuration key: its default and what the flag help says.
type Key struct {
	name  string
	def   any
	usage string
}

// Keys lists every key "pgquorum serve" accepts. Each is read from the
// config file, from PGQUORUM_<SECTION>_<KEY> and from --<section>.<key>.
var Keys = []Key{
	{"node.name", "", "this node's repmgr node_name (default: node_name of repmgr.config_file)"},
	{"server.listen", ":5999", "HTTP listen address, host:port"},
	{"server.agent_listen", "", "HAProxy agent-check listen address, host:port (empty: off)"},
	{"database.dsn", "", "DSN of the local node (default: conninfo of repmgr.config_file)"},
	{"database.max_conns", 3, "pool size, 1 to 3"},
	{"database.timeout", "1s", "bound on connecting to and querying the local node"},
	{"repmgr.config_file", "", "path of this node's repmgr.conf"},
	{"repmgr.bin", "repmgr", "repmgr binary"},
	{"consensus.refresh_interval", "1s", "how often the verdict is refreshed"},
	{"consensus.cache_ttl", "3s", "a verdict older than this is never served"},
	{"consensus.peer_timeout", "500ms", "bound on each poll of a peer"},
	{"consensus.peer_port", 5999, "port of the peers' pgquorum"},
	{"consensus.peers", map[string]string{}, "peer addresses, name=host:port,… (default: conninfo host + peer_port)"},
	{"consensus.scope", "cluster", "cluster (a majority of the location and of the whole cluster) or site (of the location only)"},
	{"consensus.state_dir", "", "directory where the vote lease survives restarts (empty: a restarted pgquorum vouches for nobody for one lease)"},
	{"log.level", "info", "debug, info, warn or error"},
	{"log.format", "text", "text or json"},
}

const envPrefix = "PGQUORUM"

func envName(key string) string {
	return envPrefix + "_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// NewViper returns a viper that knows every key, reads the environment
// and is bound to flags registered on fs.
func NewViper(fs *pflag.FlagSet) *viper.Viper {
	v := viper.New()
	v.SetEnvPrefix(envPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	for _, k := range Keys {
		v.SetDefault(k.name, k.def)
		switch d := k.def.(type) {
		case int:
			fs.Int(k.name, d, k.usage)
		case map[string]string:
			fs.StringToString(k.name, nil, k.usage)
		default:
			fs.String(k.name, fmt.Sprint(d), k.usage)
		}
		_ = v.BindPFlag(k.name, fs.Lookup(k.name))
	}
	return v
}

// Load reads file (if any) into v, rejects unknown keys in the file and
// the environment, and validates every value. All problems are reported at
// once, each naming its key and the expected form.
func Load(v *viper.Viper, file string, environ []string) (Config, error) {
	var errs []error
	if file != "" {
		v.SetConfigFile(file)
		v.SetConfigType("yaml")
		if err := v.ReadInConfig(); err != nil {
			return Config{}, fmt.Errorf("read config file %s: %w", file, err)
		}
		errs = append(errs, unknownFileKeys(v, file)...)
	}
	errs = append(errs, unknownEnvKeys(environ)...)
	p := &valueParser{v: v}
	c := Config{
		NodeName:         p.str("node.name"),
		Listen:           p.hostPort("server.listen", false),
		AgentListen:      p.hostPort("server.agent_listen", true),
		DSN:              repmgr.DSN(p.str("database.dsn")),
		MaxConns:         p.intRange("database.max_conns", 1, 3),
		DBTimeout:        p.positiveDuration("database.timeout"),
		RepmgrConfigFile: p.str("repmgr.config_file"),
		RepmgrBin:        p.str("repmgr.bin"),
		RefreshInterval:  p.positiveDuration("consensus.refresh_interval"),
		CacheTTL:         p.positiveDuration("consensus.cache_ttl"),
		PeerTimeout:      p.positiveDuration("consensus.peer_timeout"),
		PeerPort:         p.intRange("consensus.peer_port", 1, 65535),
		Peers:            p.peers("consensus.peers"),
		Scope:            p.oneOf("consensus.scope", "cluster", "site"),
		StateDir:         p.dir("consensus.state_dir"),
		LogLevel:         p.oneOf("log.level", "debug", "info", "warn", "error"),
		LogFormat:        p.oneOf("log.format", "text", "json"),
	}
	errs = append(errs, p.errs...)
	errs = append(errs, c.fillFromRepmgr()...)
	errs = append(errs, c.checkTimings()...)
	if c.DSN != "" {
		if _, err := repmgr.PoolConfig(repmgr.Options{DSN: string(c.DSN)}); err != nil {
			errs = append(errs, fmt.Errorf("database.dsn: want a libpq conninfo or postgres:// URI: %v", err))
		}
	}
	return c, errors.Join(errs...)
}

// fillFromRepmgr takes node.name and database.dsn from repmgr.conf when they
// are not set, as repmgr itself knows them, and the node_id and data
// directory that prove the database reached is this node's.
func (c *Config) fillFromRepmgr() []error {
	if c.RepmgrConfigFile == "" {
		var errs []error
		if c.NodeName == "" {
			errs = append(errs, errors.New("node.name: required unless repmgr.config_file is set"))
		}
		if c.DSN == "" {
			errs = append(errs, errors.New("database.dsn: required unless repmgr.config_file is set"))
		}
		return errs
	}
	rc, err := repmgr.ReadConfigFile(c.RepmgrConfigFile)
	if err != nil {
		return []error{fmt.Errorf("repmgr.config_file: %w", err)}
	}
	var errs []error
	c.NodeID, c.DataDir = rc.NodeID, rc.DataDirectory
	switch {
	case c.NodeName == "" && rc.NodeName == "":
		errs = append(errs, fmt.Errorf("node.name: not set, and %s has no node_name", c.RepmgrConfigFile))
	case c.NodeName == "":
		c.NodeName = rc.NodeName
	case rc.NodeName != "" && rc.NodeName != c.NodeName:
		errs = append(errs, fmt.Errorf("node.name: want the node_name of %s (%q), got %q", c.RepmgrConfigFile, rc.NodeName, c.NodeName))
	}
	if c.DSN == "" {
		if c.DSN = repmgr.DSN(rc.Conninfo); c.DSN == "" {
			errs = append(errs, fmt.Errorf("database.dsn: not set, and %s has no conninfo", c.RepmgrConfigFile))
		}
	}
	return errs
}

// checkTimings keeps the cache from expiring between refreshes: a new verdict
// must be ready (probe timeout + peer timeout after the refresh starts) before
// the previous one, taken one refresh interval earlier, expires.
func (c *Config) checkTimings() []error {
	if c.RefreshInterval <= 0 || c.CacheTTL <= 0 || c.PeerTimeout <= 0 || c.DBTimeout <= 0 {
		return nil // already reported
	}
	if min := c.RefreshInterval + c.DBTimeout + c.PeerTimeout; c.CacheTTL <= min {
		return []error{fmt.Errorf("consensus.cache_ttl: want more than refresh_interval + database.timeout + peer_timeout (%s), got %s", min, c.CacheTTL)}
	}
	return nil
}

func KnownKey(key string) bool {
	for _, k := range Keys {
		if key == k.name || strings.HasPrefix(key, "consensus.peers.") {
			return true
		}
	}
	return false
}

func unknownFileKeys(v *viper.Viper, file string) []error {
	var errs []error
	keys := v.AllKeys()
	sort.Strings(keys)
	for _, k := range keys {
		if !KnownKey(k) {
			errs = append(errs, fmt.Errorf("%s: unknown key %q (known keys: %s)", file, k, knownKeyList()))
		}
	}
	return errs
}

// unknownEnvKeys catches misspelt PGQUORUM_ variables, which viper would
// silently ignore.
func unknownEnvKeys(environ []string) []error {
	known := map[string]bool{}
	for _, k := range Keys {
		known[envName(k.name)] = true
	}
	var errs []error
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, envPrefix+"_") && !known[name] {
			errs = append(errs, fmt.Errorf("environment: unknown variable %s", name))
		}
	}
	return errs
}

func knownKeyList() string {
	names := make([]string, len(Keys))
	for i, k := range Keys {
		names[i] = k.name
	}
	return strings.Join(names, ", ")
}

// Print writes the effective configuration, password redacted.
func (c Config) Print(w io.Writer) {
	peers := make([]string, 0, len(c.Peers))
	for k, v := range c.Peers {
		peers = append(peers, k+"="+v)
	}
	sort.Strings(peers)
	fmt.Fprintf(w, "node.name: %s\nserver.listen: %s\nserver.agent_listen: %s\n", c.NodeName, c.Listen, c.AgentListen)
	fmt.Fprintf(w, "database.dsn: %s\ndatabase.max_conns: %d\ndatabase.timeout: %s\n", c.DSN, c.MaxConns, c.DBTimeout)
	fmt.Fprintf(w, "repmgr.config_file: %s\nrepmgr.bin: %s\n", c.RepmgrConfigFile, c.RepmgrBin)
	fmt.Fprintf(w, "consensus.refresh_interval: %s\nconsensus.cache_ttl: %s\nconsensus.peer_timeout: %s\n", c.RefreshInterval, c.CacheTTL, c.PeerTimeout)
	fmt.Fprintf(w, "consensus.peer_port: %d\nconsensus.peers: %s\n", c.PeerPort, strings.Join(peers, ","))
	fmt.Fprintf(w, "consensus.scope: %s\nconsensus.state_dir: %s\n", c.Scope, c.StateDir)
	fmt.Fprintf(w, "log.level: %s\nlog.format: %s\n", c.LogLevel, c.LogFormat)
}
