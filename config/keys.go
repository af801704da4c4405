package config

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/pgquorum/pgquorum/api"
)

// Key is one configuration key: its default and what the flag help says.
// A key whose default is nil takes it from failover.profile.
type Key struct {
	name  string
	def   any
	usage string
}

// Keys lists every key "pgquorum serve" accepts. Each is read from the
// config file, from PGQUORUM_<SECTION>_<KEY> and from --<section>.<key>.
var Keys = []Key{
	{"cluster.name", "pgquorum", "name of the cluster, the constant label cluster of every metric and the title of /ui (like Patroni's scope); the same on every node, letters, digits, '.', '_' or '-'"},
	{"node.name", "", "this node's repmgr node_name (default: node_name of repmgr.config_file)"},
	{"server.listen", ":5999", "HTTP listen address, host:port"},
	{"server.agent_listen", "", "HAProxy agent-check listen address, host:port (empty: off)"},
	{"server.tls_cert", "", "PEM certificate (chain) of server.listen: with server.tls_key, every endpoint is HTTPS (reloaded on SIGHUP)"},
	{"server.tls_key", "", "PEM private key of server.tls_cert"},
	{"server.tls_client_ca", "", "PEM CA certificates that sign HTTPS clients' certificates (HAProxy's, operators')"},
	{"server.tls_client_auth", "none", "none, optional or required: whether HTTPS clients show a certificate signed by server.tls_client_ca"},
	{"server.admin_token", "", "bearer token that every operator command (agent override, switchover…) requires; file or environment only"},
	{"server.admin_clients", "", "names of client certificates (signed by server.tls_client_ca) allowed to act, a,b,…"},
	{"server.require_auth_for_checks", "false", "checks and views too need the admin token or a verified client certificate"},
	{"database.dsn", "", "DSN of the local node (default: conninfo of repmgr.config_file)"},
	{"database.max_conns", 3, "connections to the local node, 1 to 3: one for the probe, the others for operator views"},
	{"database.timeout", nil, "bound on connecting to and querying the local node"},
	{"repmgr.config_file", "", "path of this node's repmgr.conf"},
	{"repmgr.bin", "repmgr", "repmgr binary"},
	{"consensus.refresh_interval", nil, "how often the verdict is refreshed"},
	{"consensus.cache_ttl", nil, "a verdict older than this is never served"},
	{"consensus.peer_timeout", nil, "bound on each poll of a peer"},
	{"consensus.router_hold", nil, "after a vote's lease for one node ran out, how long before it may go to another: at least HAProxy's (2 × fall + 1) × inter (the minimum pgquorum haproxy-config writes at the top of its file), so that no two servers take writes at once"},
	{"consensus.peer_port", 5999, "port of the peers' pgquorum"},
	{"consensus.peers", map[string]string{}, "peer addresses, name=host:port,… (default: conninfo host + peer_port)"},
	{"consensus.scope", string(api.ScopeCluster), "cluster (a majority of the location and of the whole cluster) or site (of the location only)"},
	{"consensus.state_dir", "", "directory where the vote lease survives restarts (empty: a restarted pgquorum vouches for nobody for one lease)"},
	{"consensus.peer_tls.ca", "", "PEM CA certificates that sign every node's certificate: peers poll each other over mutual TLS"},
	{"consensus.peer_tls.cert", "", "PEM certificate of this node, naming its node_name, shown to peers"},
	{"consensus.peer_tls.key", "", "PEM private key of consensus.peer_tls.cert"},
	{"consensus.peer_token", "", "shared secret that authenticates peers without a PKI (HMAC; never sent); file or environment only"},
	{"failover.mode", string(api.ModeOff), "off (report only), pgquorum (pgquorum fails over through repmgr), repmgrd (repmgrd fails over, pgquorum failover-check gates it)"},
	{"failover.profile", "default", "default or fast: the defaults of every timing"},
	{"failover.raft_listen", ":5997", "Raft address of this node's pgquorum, host:port"},
	{"failover.raft_dir", "", "Raft log and snapshots (default: <consensus.state_dir>/raft)"},
	{"failover.raft_peers", map[string]string{}, "Raft addresses, name=host:port,… (default: conninfo host + raft_listen port)"},
	{"failover.raft_heartbeat_timeout", nil, "Raft heartbeat timeout"},
	{"failover.raft_election_timeout", nil, "Raft election timeout"},
	{"failover.grace", nil, "how long the primary must be lost, continuously, before a failover"},
	{"failover.cooldown", "60s", "at least this long between two failover promotions (a planned switchover's does not count)"},
	{"failover.locations", "", "locations besides the lost primary's whose standbys may be promoted, a,b,…"},
	{"failover.promote_command", "", "command the chosen standby runs (default: repmgr -f <repmgr.config_file> standby promote)"},
	{"failover.follow_command", "", "command the other standbys run (default: repmgr -f <repmgr.config_file> standby follow --upstream-node-id=<id>)"},
	{"failover.command_timeout", "60s", "bound on each promote, follow or fence command, and on each rejoin attempt"},
	{"failover.switchover_drain", nil, "how long a primary stepping down for a switchover answers 503 before it stops: HAProxy's fall × inter, so that clients queue for the new primary instead of failing"},
	{"failover.switchover_max_lag", "16MB", "a switchover target may be at most this far behind (bytes, or kB/MB/GB)"},
	{"failover.fence", api.FenceOff, "what a primary that must take no more writes does: off, stop (pg_ctl stop -m fast) or a command"},
	{"failover.fence_after", "10s", "a primary that has heard no coordinator this long is fenced when it is not the committed primary or too few of its standbys stream live from it (rule 2); a deposed primary whose successor does not answer it waits at least this long (rule 1)"},
	{"failover.standby_status_interval", "10s", "the standbys' wal_receiver_status_interval: how often an idle standby replies to its primary; fencing's rule 2 counts a stream live only with a reply within 1.5 times this (raise it with theirs)"},
	{"failover.auto_rejoin", "false", "a stopped or fenced former primary rejoins the committed primary as a standby by itself, and a standby whose history forked off it is rewound"},
	{"failover.rejoin_command", "", "what a former primary runs to rewind and start as a standby, once pgquorum owns its stopped data directory (default: pgquorum's own crash recovery, pg_rewind, standby configuration and start, holding the data directory)"},
	{"failover.synchronous", string(api.SyncOff), "off (asynchronous), on (synchronous while at least synchronous_count eligible standbys stream, else asynchronous) or strict (commits wait for synchronous_count standbys); needs failover.mode pgquorum"},
	{"failover.synchronous_count", 1, "k of synchronous_standby_names = 'ANY k (…)': how many standbys confirm each commit"},
	{"failover.synchronous_locations", "", "only standbys of these locations may be synchronous, a,b,… (empty: any; each must be this node's location or among failover.locations)"},
	{"hooks.on_role_change", "", "command run on this node after its role changed, with the new role (primary, standby, fenced), the node and the epoch appended"},
	{"hooks.pre_promote", "", "command run on the chosen standby before it promotes, with the node and the epoch appended: a non-zero exit or a timeout vetoes its promotion, and the next candidate is chosen"},
	{"hooks.on_failover", "", "command run on every node once a new primary's promotion is committed, with the new primary, the old primary and the epoch appended"},
	{"hooks.on_fence", "", "command run on this node after it fenced its database, with the node, the epoch and the reason appended"},
	{"hooks.timeout", "30s", "bound on each hook; a hook past it is killed (and a pre_promote past it vetoes)"},
	{"log.level", "info", "debug, info, warn or error"},
	{"log.format", "text", "text or json"},
}

// Profiles give the timings that keys with a nil default take, by the value
// of failover.profile. An explicit key always wins.
var Profiles = map[string]map[string]string{
	"default": {
		"consensus.refresh_interval":      "1s",
		"consensus.cache_ttl":             "3s",
		"consensus.peer_timeout":          "500ms",
		"database.timeout":                "1s",
		"failover.grace":                  "2s",
		"failover.raft_heartbeat_timeout": "1s",
		"failover.raft_election_timeout":  "1s",
		"failover.switchover_drain":       "1s",
		"consensus.router_hold":           "2500ms",
	},
	"fast": {
		"consensus.refresh_interval":      "200ms",
		"consensus.cache_ttl":             "1s",
		"consensus.peer_timeout":          "200ms",
		"database.timeout":                "400ms",
		"failover.grace":                  "1s",
		"failover.raft_heartbeat_timeout": "300ms",
		"failover.raft_election_timeout":  "300ms",
		"failover.switchover_drain":       "400ms",
		"consensus.router_hold":           "1s",
	},
}

// mapKeys hold a map of node name to address: their subkeys are the map's.
var mapKeys = []string{"consensus.peers", "failover.raft_peers"}

// secretKeys are never flags: a command line shows in ps and in shell
// history. They come from the config file or the environment.
var secretKeys = []string{"server.admin_token", "consensus.peer_token"}

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
		if slices.Contains(secretKeys, k.name) {
			v.SetDefault(k.name, k.def)
			continue
		}
		switch d := k.def.(type) {
		case nil:
			// Not a viper default, so that IsSet tells an explicit value.
			fs.String(k.name, "", fmt.Sprintf("%s (default: %s, fast profile: %s)", k.usage,
				Profiles["default"][k.name], Profiles["fast"][k.name]))
		case int:
			v.SetDefault(k.name, d)
			fs.Int(k.name, d, k.usage)
		case map[string]string:
			v.SetDefault(k.name, d)
			fs.StringToString(k.name, nil, k.usage)
		default:
			v.SetDefault(k.name, d)
			fs.String(k.name, fmt.Sprint(d), k.usage)
		}
		_ = v.BindPFlag(k.name, fs.Lookup(k.name))
	}
	return v
}

// KnownKey tells whether key, as viper spells it, is one pgquorum reads.
func KnownKey(key string) bool {
	for _, k := range Keys {
		if key == k.name {
			return true
		}
	}
	for _, m := range mapKeys {
		if strings.HasPrefix(key, m+".") {
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
