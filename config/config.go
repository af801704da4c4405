// Package config reads and validates pgquorum's configuration: every key from
// a YAML file, PGQUORUM_* variables and flags, with all problems reported at
// once, each naming its key and the form expected.
package config

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/spf13/viper"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/auth"
	"github.com/pgquorum/pgquorum/repmgr"
)

// Config is the validated configuration of "pgquorum serve".
type Config struct {
	// ClusterName labels every metric and titles /ui: one Prometheus may
	// scrape several clusters.
	ClusterName string
	NodeName    string
	Listen      string
	// AgentListen is the optional TCP address of the HAProxy agent-check port.
	AgentListen string

	Security Security

	DSN       repmgr.DSN
	MaxConns  int
	DBTimeout time.Duration

	RepmgrConfigFile string
	RepmgrBin        string
	// From repmgr.conf, when it is read: what proves the database reached
	// is this node's.
	NodeID  int
	DataDir string
	// Repmgr is the whole of repmgr.conf as read: how to stop and start
	// the instance, for fencing and switchover.
	Repmgr repmgr.Config

	RefreshInterval time.Duration
	CacheTTL        time.Duration
	RouterHold      time.Duration // consensus.router_hold
	PeerTimeout     time.Duration
	PeerPort        int
	Peers           map[string]string
	Scope           api.Scope
	StateDir        string

	Failover Failover
	Hooks    Hooks

	LogLevel  string
	LogFormat string
}

// Security is what proves clients and peers: the server.tls_*, admin and
// consensus.peer_* keys.
type Security struct {
	TLSCert, TLSKey   string
	TLSClientCA       string
	TLSClientAuth     auth.ClientAuth
	AdminToken        auth.Secret
	AdminClients      []string
	RequireAuthChecks bool
	PeerCA            string
	PeerCert, PeerKey string
	PeerToken         auth.Secret
}

// ServerTLS tells whether server.listen serves HTTPS.
func (s Security) ServerTLS() bool { return s.TLSCert != "" }

// PeerTLS tells whether peers poll each other over mutual TLS.
func (s Security) PeerTLS() bool { return s.PeerCA != "" }

// AdminAuth tells whether operator commands need a credential rather than loopback.
func (s Security) AdminAuth() bool { return s.AdminToken != "" || len(s.AdminClients) > 0 }

// Files are the PEM files of node's TLS material.
func (s Security) Files(node string) auth.Files {
	return auth.Files{ServerCert: s.TLSCert, ServerKey: s.TLSKey, ClientCA: s.TLSClientCA,
		PeerCA: s.PeerCA, PeerCert: s.PeerCert, PeerKey: s.PeerKey, Node: node}
}

// Failover is the failover.* section.
type Failover struct {
	Mode             api.FailoverMode
	Profile          string
	RaftListen       string
	RaftDir          string
	RaftPeers        map[string]string
	HeartbeatTimeout time.Duration
	ElectionTimeout  time.Duration
	Grace            time.Duration
	Cooldown         time.Duration
	Locations        []string
	PromoteCommand   string // "": repmgr standby promote
	FollowCommand    string // "": repmgr standby follow
	CommandTimeout   time.Duration
	SwitchoverMaxLag int64
	SwitchoverDrain  time.Duration
	Fence            string // api.FenceOff, api.FenceStop or a command
	FenceAfter       time.Duration
	StatusInterval   time.Duration // the standbys' wal_receiver_status_interval
	AutoRejoin       bool
	RejoinCommand    string // "": repmgr node rejoin --force-rewind
	// Synchronous is failover.synchronous; SynchronousCount its k.
	Synchronous          api.SyncMode
	SynchronousCount     int
	SynchronousLocations []string
}

// Hooks is the hooks.* section: operators' commands run on events; ""
// is none.
type Hooks struct {
	OnRoleChange string
	PrePromote   string
	OnFailover   string
	OnFence      string
	Timeout      time.Duration
}

// Enabled tells whether pgquorum acts, beyond reporting.
func (f Failover) Enabled() bool { return f.Mode != api.ModeOff && f.Mode != "" }

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
	profile := oneOf(p, "failover.profile", "default", "fast")
	p.profile = Profiles[profile]
	if p.profile == nil {
		p.profile = Profiles["default"] // already reported; read the rest anyway
	}
	c := Config{
		ClusterName: p.name("cluster.name"),
		NodeName:    p.str("node.name"),
		Listen:      p.hostPort("server.listen", false),
		AgentListen: p.hostPort("server.agent_listen", true),
		Security: Security{
			TLSCert:           p.str("server.tls_cert"),
			TLSKey:            p.str("server.tls_key"),
			TLSClientCA:       p.str("server.tls_client_ca"),
			TLSClientAuth:     auth.ClientAuth(oneOf(p, "server.tls_client_auth", "none", "optional", "required")),
			AdminToken:        p.secret("server.admin_token"),
			AdminClients:      p.list("server.admin_clients"),
			RequireAuthChecks: p.boolean("server.require_auth_for_checks"),
			PeerCA:            p.str("consensus.peer_tls.ca"),
			PeerCert:          p.str("consensus.peer_tls.cert"),
			PeerKey:           p.str("consensus.peer_tls.key"),
			PeerToken:         p.secret("consensus.peer_token"),
		},
		DSN:              repmgr.DSN(p.str("database.dsn")),
		MaxConns:         p.intRange("database.max_conns", 1, 3),
		DBTimeout:        p.positiveDuration("database.timeout"),
		RepmgrConfigFile: p.str("repmgr.config_file"),
		RepmgrBin:        p.str("repmgr.bin"),
		RefreshInterval:  p.positiveDuration("consensus.refresh_interval"),
		CacheTTL:         p.positiveDuration("consensus.cache_ttl"),
		RouterHold:       p.duration("consensus.router_hold"),
		PeerTimeout:      p.positiveDuration("consensus.peer_timeout"),
		PeerPort:         p.intRange("consensus.peer_port", 1, 65535),
		Peers:            p.peers("consensus.peers"),
		Scope:            oneOf(p, "consensus.scope", api.Scopes...),
		StateDir:         p.dir("consensus.state_dir"),
		Failover: Failover{
			Mode:                 oneOf(p, "failover.mode", api.FailoverModes...),
			Profile:              profile,
			RaftListen:           p.hostPort("failover.raft_listen", false),
			RaftDir:              p.str("failover.raft_dir"),
			RaftPeers:            p.peers("failover.raft_peers"),
			HeartbeatTimeout:     p.positiveDuration("failover.raft_heartbeat_timeout"),
			ElectionTimeout:      p.positiveDuration("failover.raft_election_timeout"),
			Grace:                p.positiveDuration("failover.grace"),
			Cooldown:             p.positiveDuration("failover.cooldown"),
			Locations:            p.list("failover.locations"),
			PromoteCommand:       p.str("failover.promote_command"),
			FollowCommand:        p.str("failover.follow_command"),
			CommandTimeout:       p.positiveDuration("failover.command_timeout"),
			SwitchoverDrain:      p.duration("failover.switchover_drain"),
			SwitchoverMaxLag:     p.bytes("failover.switchover_max_lag"),
			Fence:                p.str("failover.fence"),
			FenceAfter:           p.positiveDuration("failover.fence_after"),
			StatusInterval:       p.positiveDuration("failover.standby_status_interval"),
			AutoRejoin:           p.boolean("failover.auto_rejoin"),
			RejoinCommand:        p.str("failover.rejoin_command"),
			Synchronous:          oneOf(p, "failover.synchronous", api.SyncModes...),
			SynchronousCount:     p.intRange("failover.synchronous_count", 1, 255),
			SynchronousLocations: p.list("failover.synchronous_locations"),
		},
		Hooks: Hooks{
			OnRoleChange: p.str("hooks.on_role_change"),
			PrePromote:   p.str("hooks.pre_promote"),
			OnFailover:   p.str("hooks.on_failover"),
			OnFence:      p.str("hooks.on_fence"),
			Timeout:      p.positiveDuration("hooks.timeout"),
		},
		LogLevel:  oneOf(p, "log.level", "debug", "info", "warn", "error"),
		LogFormat: oneOf(p, "log.format", "text", "json"),
	}
	errs = append(errs, p.errs...)
	errs = append(errs, c.fillFromRepmgr()...)
	errs = append(errs, c.checkTimings()...)
	errs = append(errs, c.checkFailover()...)
	errs = append(errs, c.checkSynchronous()...)
	errs = append(errs, c.checkHooks()...)
	errs = append(errs, c.Security.check(c.NodeName)...)
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
	c.NodeID, c.DataDir, c.Repmgr = rc.NodeID, rc.DataDirectory, rc
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

// checkFailover needs, when pgquorum acts, somewhere to keep the Raft log
// and a repmgr.conf for the default commands, and a grace that lets the
// primary's own pgquorum see its database at least twice.
func (c *Config) checkFailover() []error {
	f := &c.Failover
	if f.RaftDir == "" && c.StateDir != "" {
		f.RaftDir = filepath.Join(c.StateDir, "raft")
	}
	if !f.Enabled() {
		return nil
	}
	var errs []error
	if f.RaftDir == "" {
		errs = append(errs, fmt.Errorf("failover.raft_dir: required with failover.mode %s (or set consensus.state_dir)", f.Mode))
	}
	if c.RepmgrConfigFile == "" && f.Mode == api.ModePgquorum && (f.PromoteCommand == "" || f.FollowCommand == "") {
		errs = append(errs, fmt.Errorf("repmgr.config_file: required with failover.mode %s for the default promote and follow commands", f.Mode))
	}
	if c.RepmgrConfigFile == "" && f.AutoRejoin && f.RejoinCommand == "" {
		errs = append(errs, fmt.Errorf("repmgr.config_file: required with failover.auto_rejoin for the default rejoin command"))
	}
	if f.Fence == api.FenceStop && c.DataDir == "" {
		errs = append(errs, fmt.Errorf("failover.fence: stop needs the data_directory of repmgr.config_file"))
	}
	if f.Fence == "" {
		errs = append(errs, fmt.Errorf("failover.fence: want off, stop or a command, got \"\""))
	}
	if f.Grace > 0 && c.RefreshInterval > 0 && f.Grace < 2*c.RefreshInterval {
		errs = append(errs, fmt.Errorf("failover.grace: want at least two refresh intervals (%s), got %s", 2*c.RefreshInterval, f.Grace))
	}
	return errs
}

// checkHooks refuses hooks that would never run: they run from the
// failover actor, and pre_promote only where pgquorum promotes. A
// pre_promote must end within the promotion's own bound.
func (c *Config) checkHooks() []error {
	h, f := c.Hooks, c.Failover
	var errs []error
	for _, k := range []struct{ key, cmd string }{{"hooks.on_role_change", h.OnRoleChange}, {"hooks.pre_promote", h.PrePromote},
		{"hooks.on_failover", h.OnFailover}, {"hooks.on_fence", h.OnFence}} {
		if k.cmd != "" && !f.Enabled() {
			errs = append(errs, fmt.Errorf("%s: runs only with failover.mode pgquorum or repmgrd, got failover.mode %s", k.key, f.Mode))
		}
	}
	if h.PrePromote == "" || !f.Enabled() {
		return errs
	}
	if f.Mode != api.ModePgquorum {
		errs = append(errs, fmt.Errorf("hooks.pre_promote: runs only with failover.mode pgquorum (with repmgrd, use repmgr's failover_validation_command), got %s", f.Mode))
	}
	if h.Timeout > 0 && f.CommandTimeout > 0 && h.Timeout >= f.CommandTimeout {
		errs = append(errs, fmt.Errorf("hooks.timeout: want less than failover.command_timeout (%s) with hooks.pre_promote, which runs within the promotion's bound, got %s", f.CommandTimeout, h.Timeout))
	}
	return errs
}

// Print writes the effective configuration, password redacted, one key a
// line in the order of Keys.
func (c Config) Print(w io.Writer) {
	f, sec := c.Failover, c.Security
	values := map[string]any{
		"cluster.name": c.ClusterName, "node.name": c.NodeName, "server.listen": c.Listen, "server.agent_listen": c.AgentListen,
		"server.tls_cert": sec.TLSCert, "server.tls_key": sec.TLSKey, "server.tls_client_ca": sec.TLSClientCA,
		"server.tls_client_auth": sec.TLSClientAuth, "server.admin_token": sec.AdminToken,
		"server.admin_clients": strings.Join(sec.AdminClients, ","), "server.require_auth_for_checks": sec.RequireAuthChecks,
		"consensus.peer_tls.ca": sec.PeerCA, "consensus.peer_tls.cert": sec.PeerCert, "consensus.peer_tls.key": sec.PeerKey,
		"consensus.peer_token": sec.PeerToken,
		"database.dsn":         c.DSN, "database.max_conns": c.MaxConns, "database.timeout": c.DBTimeout,
		"repmgr.config_file": c.RepmgrConfigFile, "repmgr.bin": c.RepmgrBin,
		"consensus.refresh_interval": c.RefreshInterval, "consensus.cache_ttl": c.CacheTTL, "consensus.router_hold": c.RouterHold,
		"consensus.peer_timeout": c.PeerTimeout, "consensus.peer_port": c.PeerPort, "consensus.peers": addressList(c.Peers),
		"consensus.scope": c.Scope, "consensus.state_dir": c.StateDir,
		"failover.mode": f.Mode, "failover.profile": f.Profile, "failover.raft_listen": f.RaftListen,
		"failover.raft_dir": f.RaftDir, "failover.raft_peers": addressList(f.RaftPeers),
		"failover.raft_heartbeat_timeout": f.HeartbeatTimeout, "failover.raft_election_timeout": f.ElectionTimeout,
		"failover.grace": f.Grace, "failover.cooldown": f.Cooldown, "failover.locations": strings.Join(f.Locations, ","),
		"failover.promote_command": f.PromoteCommand, "failover.follow_command": f.FollowCommand,
		"failover.command_timeout": f.CommandTimeout, "failover.switchover_max_lag": f.SwitchoverMaxLag,
		"failover.switchover_drain": f.SwitchoverDrain,
		"failover.fence":            f.Fence, "failover.fence_after": f.FenceAfter, "failover.auto_rejoin": f.AutoRejoin,
		"failover.standby_status_interval": f.StatusInterval,
		"failover.rejoin_command":          f.RejoinCommand, "failover.synchronous": f.Synchronous,
		"failover.synchronous_count": f.SynchronousCount, "failover.synchronous_locations": strings.Join(f.SynchronousLocations, ","),
		"hooks.on_role_change": c.Hooks.OnRoleChange, "hooks.pre_promote": c.Hooks.PrePromote,
		"hooks.on_failover": c.Hooks.OnFailover, "hooks.on_fence": c.Hooks.OnFence, "hooks.timeout": c.Hooks.Timeout,
		"log.level": c.LogLevel, "log.format": c.LogFormat,
	}
	for _, k := range Keys {
		fmt.Fprintf(w, "%s: %v\n", k.name, values[k.name])
	}
}

func addressList(m map[string]string) string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

// checkSynchronous refuses a synchronous mode pgquorum could not run: the
// committed set needs pgquorum's own failover; strict with k standbys or
// more of the known nodes blocks every write as soon as one is down; a
// synchronous standby must be promotable, so its location must be this
// node's or among failover.locations.
func (c *Config) checkSynchronous() []error {
	f := c.Failover
	if f.Synchronous == api.SyncOff || f.Synchronous == "" {
		return nil
	}
	var errs []error
	if f.Mode != api.ModePgquorum {
		errs = append(errs, fmt.Errorf("failover.synchronous: %s needs failover.mode pgquorum, got failover.mode %s", f.Synchronous, f.Mode))
	}
	nodes := max(len(c.Peers), len(f.RaftPeers))
	if _, ok := c.Peers[c.NodeName]; !ok && len(c.Peers) == nodes && nodes > 0 {
		nodes++ // consensus.peers may leave this node out
	}
	if f.Synchronous == api.SyncStrict && nodes > 0 && f.SynchronousCount >= nodes-1 {
		errs = append(errs, fmt.Errorf("failover.synchronous_count: want fewer than the %d standbys of the %d nodes named with failover.synchronous strict, got %d: one standby down would stop every write",
			nodes-1, nodes, f.SynchronousCount))
	}
	known := append([]string{c.Repmgr.Location}, f.Locations...)
	for _, l := range f.SynchronousLocations {
		if c.Repmgr.Location != "" && !slices.Contains(known, l) {
			errs = append(errs, fmt.Errorf("failover.synchronous_locations: unknown location %q: want this node's (%s) or one of failover.locations %q", l, c.Repmgr.Location, f.Locations))
		}
	}
	return errs
}
