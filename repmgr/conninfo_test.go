package repmgr

import (
	"fmt"
	"maps"
	"strings"
	"testing"
)

func TestParseConninfo(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    map[string]string
		wantErr string
	}{
		{name: "empty string has no keywords", in: "", want: map[string]string{}},
		{name: "only spaces has no keywords", in: " \t\n ", want: map[string]string{}},
		{name: "bare values", in: "host=db1 port=5432 user=repmgr",
			want: map[string]string{"host": "db1", "port": "5432", "user": "repmgr"}},
		{name: "spaces around equals sign", in: "host = db1  port= 5432",
			want: map[string]string{"host": "db1", "port": "5432"}},
		{name: "quoted value keeps spaces", in: "user='a b' dbname=repmgr",
			want: map[string]string{"user": "a b", "dbname": "repmgr"}},
		{name: "quoted empty value", in: "password='' host=h",
			want: map[string]string{"password": "", "host": "h"}},
		{name: "backslash escapes quote inside quotes", in: `password='it\'s'`,
			want: map[string]string{"password": "it's"}},
		{name: "backslash escapes backslash inside quotes", in: `password='a\\b'`,
			want: map[string]string{"password": `a\b`}},
		{name: "backslash escapes space in bare value", in: `password=a\ b host=h`,
			want: map[string]string{"password": "a b", "host": "h"}},
		{name: "trailing backslash of bare value is kept", in: `password=ab\`,
			want: map[string]string{"password": `ab\`}},
		{name: "later keyword wins", in: "host=a host=b",
			want: map[string]string{"host": "b"}},
		{name: "tab and newline separate pairs", in: "host=a\tport=1\nuser=u",
			want: map[string]string{"host": "a", "port": "1", "user": "u"}},
		{name: "keyword without equals sign", in: "host db1", wantErr: `missing "=" after "host"`},
		{name: "keyword at end of string", in: "host=a port", wantErr: `missing "=" after "port"`},
		{name: "unterminated quote", in: "password='abc", wantErr: `value of "password": unterminated quoted string`},
		{name: "quote closed only by an escaped quote", in: `password='abc\'`, wantErr: "unterminated quoted string"},
		{name: "URI with every part", in: "postgres://u:pw@db1:5433/repmgr?connect_timeout=2",
			want: map[string]string{"host": "db1", "port": "5433", "user": "u", "password": "pw",
				"dbname": "repmgr", "connect_timeout": "2"}},
		{name: "postgresql scheme", in: "postgresql://db1/app",
			want: map[string]string{"host": "db1", "dbname": "app"}},
		{name: "URI with IPv6 host", in: "postgres://[::1]:5432/db",
			want: map[string]string{"host": "::1", "port": "5432", "dbname": "db"}},
		{name: "URI with leading space", in: "  postgres://db1",
			want: map[string]string{"host": "db1"}},
		{name: "URI socket directory in query", in: "postgres:///db?host=/var/run/postgresql",
			want: map[string]string{"host": "/var/run/postgresql", "dbname": "db"}},
		{name: "URI last query value wins", in: "postgres://h/?sslmode=disable&sslmode=require",
			want: map[string]string{"host": "h", "sslmode": "require"}},
		{name: "URI with bad port", in: "postgres://h:port/db", wantErr: "parse conninfo URI"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseConninfo(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseConninfo(%q) error = %v, want one containing %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseConninfo(%q): %v", tt.in, err)
			}
			if !maps.Equal(got, tt.want) {
				t.Errorf("ParseConninfo(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestConninfoHost(t *testing.T) {
	tests := []struct {
		name, in, want, wantErr string
	}{
		{name: "host keyword", in: "host=db1 port=5432", want: "db1"},
		{name: "first of a host list", in: "host=db1,db2 port=5432,5433", want: "db1"},
		{name: "hostaddr when no host", in: "hostaddr=10.0.0.5 user=u", want: "10.0.0.5"},
		{name: "host preferred over hostaddr", in: "hostaddr=10.0.0.5 host=db1", want: "db1"},
		{name: "IPv6 host", in: "host=::1", want: "::1"},
		{name: "URI host", in: "postgres://repmgr@db3:5432/repmgr", want: "db3"},
		{name: "URI IPv6 host", in: "postgres://[fe80::1]/x", want: "fe80::1"},
		{name: "no host at all", in: "user=u dbname=d", wantErr: "names no host"},
		{name: "empty first host of a list", in: "host=,db2", wantErr: "names no host"},
		{name: "unix socket directory", in: "host=/var/run/postgresql", wantErr: "Unix socket directory"},
		{name: "unix socket first in a list", in: "host=/tmp,db2", wantErr: "Unix socket directory"},
		{name: "unparseable conninfo", in: "host='db1", wantErr: "unterminated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ConninfoHost(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ConninfoHost(%q) = %q, %v; want error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("ConninfoHost(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestRedactDSN(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{name: "no password is returned as is", in: "host=db1  user=u", want: "host=db1  user=u"},
		{name: "keyword password replaced and keys sorted", in: "user=u password=s3cret host=db1",
			want: "host=db1 password=xxxxx user=u"},
		{name: "quoted password with spaces", in: "password='a b c' host=h", want: "host=h password=xxxxx"},
		{name: "other values keep their quoting", in: "password=p application_name='my app'",
			want: "application_name='my app' password=xxxxx"},
		{name: "empty value is quoted", in: "password=p sslrootcert=''", want: "password=xxxxx sslrootcert=''"},
		{name: "URI userinfo password", in: "postgres://u:s3cret@db1:5432/app",
			want: "postgres://u:xxxxx@db1:5432/app"},
		{name: "URI query password", in: "postgres://db1/app?password=s3cret",
			want: "postgres://db1/app?password=xxxxx"},
		{name: "URI without password is returned as is", in: "postgres://u@db1/app", want: "postgres://u@db1/app"},
		{name: "unparseable DSN hidden whole", in: "password='s3cret", want: "<unparseable DSN hidden>"},
		{name: "SSL key passphrase replaced", in: "host=h sslkey=/k sslpassword=s3cret",
			want: "host=h sslkey=/k sslpassword=xxxxx"},
		{name: "URI query SSL key passphrase", in: "postgres://u@db1/app?sslpassword=s3cret",
			want: "postgres://u@db1/app?sslpassword=xxxxx"},
		{name: "URI query password does not invent a userinfo password", in: "postgres://u@db1/app?password=s3cret",
			want: "postgres://u@db1/app?password=xxxxx"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := RedactDSN(tt.in)
			if got != tt.want {
				t.Errorf("RedactDSN(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if strings.Contains(got, "s3cret") {
				t.Errorf("RedactDSN(%q) = %q leaks the password", tt.in, got)
			}
		})
	}
}

// TestDSNNeverPrintsPassword covers every way a DSN reaches a log or the
// printed configuration: String, %v, %s and slog's LogValue.
func TestDSNNeverPrintsPassword(t *testing.T) {
	for _, dsn := range []DSN{"host=h password=s3cret", "postgres://u:s3cret@h/db", "password='s3cret",
		"sslpassword=s3cret", "postgres://h/db?sslpassword=s3cret&password=s3cret"} {
		t.Run(string(dsn), func(t *testing.T) {
			for what, got := range map[string]string{
				"String": dsn.String(),
				"%v":     fmt.Sprintf("%v", dsn),
				//lint:ignore S1025 the test checks what the %s verb prints
				"%s":       fmt.Sprintf("%s", dsn),
				"LogValue": dsn.LogValue().String(),
			} {
				if strings.Contains(got, "s3cret") {
					t.Errorf("%s = %q leaks the password", what, got)
				}
			}
		})
	}
}

// TestQuoteConninfoRoundTrips checks that every value the package quotes
// parses back to itself, including each whitespace byte libpq splits on.
func TestQuoteConninfoRoundTrips(t *testing.T) {
	values := []string{"", "plain", "a b", "it's", `back\slash`, `\`, `'`, "tab\there", "nl\nhere",
		"cr\rhere", "ff\fhere", "vt\vhere", "=", "a=b", "'quoted'", "trailing\\"}
	for _, v := range values {
		t.Run(fmt.Sprintf("%q", v), func(t *testing.T) {
			conninfo := "k=" + quoteConninfo(v) + " next=1"
			kv, err := ParseConninfo(conninfo)
			if err != nil {
				t.Fatalf("ParseConninfo(%q): %v", conninfo, err)
			}
			if kv["k"] != v || kv["next"] != "1" {
				t.Errorf("ParseConninfo(%q) = %q, want k=%q next=1", conninfo, kv, v)
			}
		})
	}
}
