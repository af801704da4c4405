package repmgr

import (
	"errors"
	"io/fs"
	"maps"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    map[string]string
		wantErr string
	}{
		{name: "empty file", in: "", want: map[string]string{}},
		{name: "comments and blank lines skipped", in: "# c\n\n   # indented\n\t\n", want: map[string]string{}},
		{name: "key=value", in: "node_id=1", want: map[string]string{"node_id": "1"}},
		{name: "spaces around equals sign", in: "node_id = 1", want: map[string]string{"node_id": "1"}},
		{name: "equals sign optional as in postgresql.conf", in: "node_id 1", want: map[string]string{"node_id": "1"}},
		{name: "tab before value", in: "node_id\t=\t7", want: map[string]string{"node_id": "7"}},
		{name: "leading indentation", in: "   location = dc2", want: map[string]string{"location": "dc2"}},
		{name: "bare value ends at comment", in: "location = dc1 # main site", want: map[string]string{"location": "dc1"}},
		{name: "empty bare value", in: "location=", want: map[string]string{"location": ""}},
		{name: "quoted value keeps spaces and hash", in: "conninfo = 'host=db1 # not a comment'",
			want: map[string]string{"conninfo": "host=db1 # not a comment"}},
		{name: "quoted value then comment", in: "node_name='n1' # the first", want: map[string]string{"node_name": "n1"}},
		{name: "doubled quote inside quotes", in: "x='it''s'", want: map[string]string{"x": "it's"}},
		{name: "backslash-escaped quote inside quotes", in: `x='it\'s'`, want: map[string]string{"x": "it's"}},
		{name: "backslash-escaped backslash", in: `x='a\\b'`, want: map[string]string{"x": `a\b`}},
		{name: "empty quoted value", in: "x=''", want: map[string]string{"x": ""}},
		{name: "later setting wins", in: "location=a\nlocation=b", want: map[string]string{"location": "b"}},
		{name: "CRLF line endings", in: "node_id=1\r\nnode_name='n1'\r\n",
			want: map[string]string{"node_id": "1", "node_name": "n1"}},
		{name: "key without value", in: "node_id=1\nfailover", wantErr: `line 2: expected key = value, got "failover"`},
		{name: "line starting with equals sign", in: "=1", wantErr: `line 1: expected key = value`},
		{name: "unterminated quote", in: "\n\nconninfo='host=db1", wantErr: "line 3: conninfo: unterminated quoted value"},
		{name: "quote closed by escaped quote only", in: `x='abc\'`, wantErr: "line 1: x: unterminated quoted value"},
		{name: "junk after quoted value", in: "x='a' b", wantErr: `line 1: x: unexpected "b" after value`},
		{name: "line longer than 1 MiB", in: "x='" + strings.Repeat("a", 1<<20) + "'", wantErr: "too long"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseConfig(strings.NewReader(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseConfig error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseConfig: %v", err)
			}
			if !maps.Equal(got, tt.want) {
				t.Errorf("ParseConfig = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestReadConfigFile reads the files in testdata/conf; bad ones must fail
// with exactly the error an operator would see.
func TestReadConfigFile(t *testing.T) {
	dir := filepath.Join("testdata", "conf")
	tests := []struct {
		file    string
		want    Config
		wantErr string
	}{
		{file: "node1.conf", want: Config{NodeID: 1, NodeName: "node1",
			Conninfo:      "host=127.0.0.1 port=5432 user=repmgr dbname=repmgr connect_timeout=2",
			Location:      "dc1",
			DataDirectory: "/var/lib/postgresql/15/main"}},
		{file: "no-location.conf", want: Config{NodeID: 2, NodeName: "node2",
			Conninfo: "host=db2 user=repmgr", Location: "default"}},
		{file: "bad-node-id.conf",
			wantErr: `parse repmgr config testdata/conf/bad-node-id.conf: node_id "one" is not an integer`},
		{file: "unterminated.conf",
			wantErr: "parse repmgr config testdata/conf/unterminated.conf: line 2: conninfo: unterminated quoted value"},
		{file: "junk-after-value.conf",
			wantErr: `parse repmgr config testdata/conf/junk-after-value.conf: line 2: node_name: unexpected "'node2'" after value`},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := ReadConfigFile(filepath.Join(dir, tt.file))
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("ReadConfigFile error = %v\nwant %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ReadConfigFile: %v", err)
			}
			if got != tt.want {
				t.Errorf("ReadConfigFile = %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestReadConfigFileMissing(t *testing.T) {
	_, err := ReadConfigFile(filepath.Join(t.TempDir(), "absent.conf"))
	if !errors.Is(err, fs.ErrNotExist) || !strings.HasPrefix(err.Error(), "read repmgr config: ") {
		t.Fatalf("ReadConfigFile of a missing file = %v, want a wrapped fs.ErrNotExist", err)
	}
}
