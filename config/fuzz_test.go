package config

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/repmgr"
)

// FuzzLoad loads any YAML document as a config file. Load never panics and
// gives the same answer twice; a configuration it accepts holds every
// invariant the daemon relies on: values in range, timings that keep the
// cache from expiring between refreshes, addresses that are host:port and
// lead a request to exactly that host, and a DSN that prints redacted.
func FuzzLoad(f *testing.F) {
	for _, doc := range []string{
		"node:\n  name: n1\ndatabase:\n  dsn: host=db1 user=repmgr password=s3cretpw\n",
		"node:\n  name: n1\ndatabase:\n  dsn: host=db1\n  max_conns: 3\nconsensus:\n  peers:\n    n2: 10.0.0.2:5999\n    n3: '[fd00::3]:5999'\n",
		"node:\n  name: n1\ndatabase:\n  dsn: host=db1\nconsensus:\n  peers: n2=evil/x:80,n3=user@h:1\n",
		"node:\n  name: n1\ndatabase:\n  dsn: host=db1\nconsensus:\n  refresh_interval: 1s\n  cache_ttl: 1s\n",
		"node:\n  name: n1\ndatabase:\n  dsn: host=db1\nfailover:\n  mode: pgquorum\n  profile: fast\n  fence: stop\n",
		"node: [1, 2]\nserver: {listen: 5999}\n",
		"? [a, b]\n: c\n",
		"a: &x [*x]\n",
		"log:\n  level: 7\n  format: ~\n",
		"failover:\n  switchover_max_lag: 99999999999TB\n  locations: [a, {b: c}]\n",
	} {
		f.Add(doc)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, doc string) {
		file := filepath.Join(dir, "pgquorum.yaml")
		if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := Load(NewViper(pflag.NewFlagSet("fuzz", pflag.ContinueOnError)), file, nil)
		c2, err2 := Load(NewViper(pflag.NewFlagSet("fuzz", pflag.ContinueOnError)), file, nil)
		if !reflect.DeepEqual(c, c2) || (err == nil) != (err2 == nil) || err != nil && err.Error() != err2.Error() {
			t.Fatalf("two loads of %q differ: %+v, %v and %+v, %v", doc, c, err, c2, err2)
		}
		if err != nil {
			return
		}
		checkAccepted(t, doc, c)
	})
}

// checkAccepted fails t when the accepted configuration c breaks an
// invariant.
func checkAccepted(t *testing.T, doc string, c Config) {
	t.Helper()
	fail := func(what string, v any) { t.Fatalf("%q accepted with %s = %v", doc, what, v) }
	switch {
	case c.NodeName == "":
		fail("node.name", c.NodeName)
	case c.DSN == "":
		fail("database.dsn", c.DSN)
	case c.MaxConns < 1 || c.MaxConns > 3:
		fail("database.max_conns", c.MaxConns)
	case c.PeerPort < 1 || c.PeerPort > 65535:
		fail("consensus.peer_port", c.PeerPort)
	case c.RefreshInterval <= 0 || c.DBTimeout <= 0 || c.PeerTimeout <= 0:
		fail("a timing", []any{c.RefreshInterval, c.DBTimeout, c.PeerTimeout})
	case c.CacheTTL <= c.RefreshInterval+c.DBTimeout+c.PeerTimeout:
		fail("consensus.cache_ttl", c.CacheTTL)
	case !slices.Contains(api.Scopes, c.Scope):
		fail("consensus.scope", c.Scope)
	case !c.Failover.Enabled() && c.Failover.Mode != api.ModeOff:
		fail("failover.mode", c.Failover.Mode)
	case c.Failover.SwitchoverMaxLag < 0:
		fail("failover.switchover_max_lag", c.Failover.SwitchoverMaxLag)
	}
	if checkHostPort(c.Listen) != nil {
		fail("server.listen", c.Listen)
	}
	for _, m := range []map[string]string{c.Peers, c.Failover.RaftPeers} {
		for name, addr := range m {
			req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/state", nil)
			if name == "" || err == nil && (req.URL.Host != addr || req.URL.Path != "/state" || req.URL.User != nil) {
				fail("peer "+name, addr)
			}
		}
	}
	var printed bytes.Buffer
	c.Print(&printed)
	kv, err := repmgr.ParseConninfo(string(c.DSN))
	if err != nil || kv["password"] == "" {
		return
	}
	for _, line := range strings.Split(printed.String(), "\n") {
		if dsn, ok := strings.CutPrefix(line, "database.dsn: "); ok {
			if shown, err := repmgr.ParseConninfo(dsn); err == nil && shown["password"] != "xxxxx" {
				fail("a password printed as", shown["password"])
			}
		}
	}
}
