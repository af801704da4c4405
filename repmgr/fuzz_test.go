package repmgr

import (
	"maps"
	"net"
	"net/url"
	"strings"
	"testing"
)

// FuzzParseConninfo checks, for any input s and any value v:
//   - ParseConninfo never panics;
//   - a value quoted by quoteConninfo parses back to itself, between other pairs;
//   - RedactDSN of a keyword/value conninfo with a secret (password,
//     sslpassword) parses back to the same keywords with only secrets replaced;
//   - RedactDSN of a URI with a secret parses back with every secret hidden.
func FuzzParseConninfo(f *testing.F) {
	for _, s := range []string{
		"host=db1 port=5432 user=repmgr dbname=repmgr connect_timeout=2",
		"password='it\\'s' host = db1",
		"postgres://u:pw@[::1]:5432/db?sslmode=disable&password=x",
		"host='unterminated",
		"a=\\ b\\",
	} {
		f.Add(s, "a b\\'c")
	}
	f.Fuzz(func(t *testing.T, s, v string) {
		kv, err := ParseConninfo(s)

		quoted := "a=1 k=" + quoteConninfo(v) + " z=2"
		back, qerr := ParseConninfo(quoted)
		if qerr != nil || back["k"] != v || back["a"] != "1" || back["z"] != "2" {
			t.Fatalf("quoted value %q: ParseConninfo(%q) = %q, %v", v, quoted, back, qerr)
		}

		if err != nil {
			if got := RedactDSN(s); got != "<unparseable DSN hidden>" {
				t.Fatalf("RedactDSN of unparseable %q = %q, want it hidden whole", s, got)
			}
			return
		}
		if !hasSecret(kv) {
			return
		}
		redacted := RedactDSN(s)
		again, err := ParseConninfo(redacted)
		if err != nil {
			t.Fatalf("RedactDSN(%q) = %q, which does not parse: %v", s, redacted, err)
		}
		want := maps.Clone(kv)
		for k := range secretKeys {
			if _, ok := kv[k]; ok {
				want[k] = "xxxxx"
			}
			if again[k] != want[k] {
				t.Fatalf("RedactDSN(%q) = %q, %s parses as %q", s, redacted, k, again[k])
			}
		}
		if isURI(s) {
			return // net/url may re-encode a URI; the secrets are what matter there
		}
		if !maps.Equal(again, want) {
			t.Fatalf("RedactDSN(%q) = %q, parses as %q, want %q", s, redacted, again, want)
		}
	})
}

func isURI(s string) bool {
	s = strings.TrimSpace(s)
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// FuzzParseConfig checks, for any document doc and any value v:
//   - ParseConfig never panics;
//   - a line "key = 'v'" written with repmgr.conf quoting parses back to v,
//     both alone and appended to any document that parses, where it wins
//     over an earlier setting and leaves the document's other keys alone.
func FuzzParseConfig(f *testing.F) {
	for _, doc := range []string{
		"node_id=1\nnode_name='node1'\nconninfo='host=db1 user=repmgr'\nlocation=dc1 # site\n",
		"x='it''s' # c\r\ny 'a\\'b'\n",
		"conninfo='unterminated\n",
		"\n\n#only comments\n",
	} {
		f.Add(doc, "host=db1 user='a b' # not a comment")
	}
	f.Fuzz(func(t *testing.T, doc, v string) {
		kv, docErr := ParseConfig(strings.NewReader(doc))
		if strings.ContainsAny(v, "\r\n") {
			return // a line-based format cannot hold a line break
		}
		line := "written_key = " + quoteConfig(v) + " # written by the fuzz test"
		got, err := ParseConfig(strings.NewReader(line))
		if err != nil || got["written_key"] != v || len(got) != 1 {
			t.Fatalf("ParseConfig(%q) = %q, %v; want written_key=%q", line, got, err, v)
		}
		if docErr != nil {
			return
		}
		merged, err := ParseConfig(strings.NewReader(doc + "\n" + line + "\n"))
		if err != nil {
			t.Fatalf("document %q parses, but not with %q appended: %v", doc, line, err)
		}
		want := maps.Clone(kv)
		want["written_key"] = v
		if !maps.Equal(merged, want) {
			t.Fatalf("document %q with %q appended = %q, want %q", doc, line, merged, want)
		}
	})
}

// quoteConfig writes v as repmgr.conf would need it: single-quoted, with
// quotes doubled and backslashes escaped.
func quoteConfig(v string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `''`).Replace(v) + "'"
}

// FuzzConninfoHostPort checks, for any conninfo: ConninfoHost gives a host
// name or IP address (never a socket directory, never a list, never one
// with characters that would change a URL built on it), and ConninfoPort a
// port from 1 to 65535, or an error; both say the same of the same input.
func FuzzConninfoHostPort(f *testing.F) {
	for _, s := range []string{
		"host=db1 port=5432",
		"host=db1,db2 port=5433,5434",
		"host=/var/run/postgresql port=5432",
		"hostaddr=10.0.0.1 port=0",
		"host=::1 port=65536",
		"host='a b' port=' 5432'",
		"host=@abstract",
		"postgres://u@db1:5432,db2:5433/x",
		"postgresql://%2Fvar%2Frun/x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		host, herr := ConninfoHost(s)
		if herr == nil {
			if !IsHostName(host) {
				t.Fatalf("ConninfoHost(%q) = %q", s, host)
			}
			if u, err := url.Parse("http://" + net.JoinHostPort(host, "5999") + "/x"); err == nil && (u.Hostname() != host || u.Path != "/x") {
				t.Fatalf("ConninfoHost(%q) = %q, which a URL reads as host %q path %q", s, host, u.Hostname(), u.Path)
			}
		}
		port, perr := ConninfoPort(s)
		if perr == nil && (port < 1 || port > 65535) {
			t.Fatalf("ConninfoPort(%q) = %d", s, port)
		}
		if h2, err := ConninfoHost(s); h2 != host || (err == nil) != (herr == nil) {
			t.Fatalf("ConninfoHost(%q) twice: %q, %v then %q, %v", s, host, herr, h2, err)
		}
	})
}
