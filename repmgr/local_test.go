package repmgr

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestMissingRepmgrdFunction: only the parse error of repmgr's own
// functions switches the probe to the statement without them; any other
// error stays an error, so a broken database is never taken for one
// without repmgrd.
func TestMissingRepmgrdFunction(t *testing.T) {
	missing := &pgconn.PgError{Code: "42883", Message: "function repmgr.repmgrd_is_running() does not exist"}
	for _, tt := range []struct {
		name string
		err  error
		want bool
	}{
		{"repmgrd_is_running missing", missing, true},
		{"wrapped, as the pool returns it", fmt.Errorf("probe: %w", missing), true},
		{"another function missing", &pgconn.PgError{Code: "42883", Message: "function pg_ls_waldir() does not exist"}, false},
		{"repmgr.nodes missing", &pgconn.PgError{Code: "42P01", Message: `relation "repmgr.nodes" does not exist`}, false},
		{"not a server error", errors.New("function repmgr.repmgrd_is_running() does not exist"), false},
		{"no error", nil, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := missingRepmgrdFunction(tt.err); got != tt.want {
				t.Errorf("missingRepmgrdFunction(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

// TestProbeWithoutRepmgrdReadsTheSameColumns: the fallback statement names
// no repmgr function and has the same columns, in the same order, as the
// probe Probe scans.
func TestProbeWithoutRepmgrdReadsTheSameColumns(t *testing.T) {
	if strings.Contains(probeSQLNoRepmgrd, "repmgrd_is_") {
		t.Error("the fallback probe still calls repmgr's functions")
	}
	full := strings.Replace(probeSQL, "repmgr.repmgrd_is_running(), repmgr.repmgrd_is_paused(),", "NULL::bool, NULL::bool,", 1)
	if full != probeSQLNoRepmgrd {
		t.Error("the fallback probe differs from the probe in more than repmgrd's two columns")
	}
}

// TestDecodeStreams: the probe's walsenders keep their names in order, and
// a walsender that has not replied yet has no reply age, not a zero one
// (which would read as a reply just now).
func TestDecodeStreams(t *testing.T) {
	streams, names, err := decodeStreams([]byte(`[{"name":"n2","state":"streaming","reply_age":0.25,"flush":4096},
		{"name":"n3","state":"startup","reply_age":null,"flush":null}]`))
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 2 || names[0] != "n2" || names[1] != "n3" {
		t.Errorf("names %q, want [n2 n3]", names)
	}
	if s := streams[0]; s.State != StreamingState || s.ReplyAge == nil || *s.ReplyAge != 0.25 || s.Flush == nil || *s.Flush != 4096 {
		t.Errorf("n2: %+v", s)
	}
	if s := streams[1]; s.ReplyAge != nil || s.Flush != nil {
		t.Errorf("n3 has not replied, yet %+v", s)
	}
	if _, names, err := decodeStreams([]byte(`[]`)); err != nil || len(names) != 0 {
		t.Errorf("no walsender: %q, %v", names, err)
	}
	if _, _, err := decodeStreams([]byte(`{`)); err == nil {
		t.Error("a broken row decoded")
	}
}
