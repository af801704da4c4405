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
