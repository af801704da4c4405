package buildinfo

import (
	"runtime/debug"
	"testing"
)

func vcs(rev, when, modified string) *debug.BuildInfo {
	bi := &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Path: "github.com/pgquorum/pgquorum", Version: "(devel)"}}
	for k, v := range map[string]string{"vcs.revision": rev, "vcs.time": when, "vcs.modified": modified} {
		if v != "" {
			bi.Settings = append(bi.Settings, debug.BuildSetting{Key: k, Value: v})
		}
	}
	return bi
}

const rev = "0123456789abcdef0123456789abcdef01234567"

func TestResolve(t *testing.T) {
	tests := []struct {
		name  string
		stamp Stamp
		bi    *debug.BuildInfo
		want  Info
	}{
		{"stamped by make wins over the toolchain's record",
			Stamp{"v1.2.0", "fedcba", "2026-12-01T10:00:00Z"}, vcs(rev, "2026-11-30T09:00:00Z", "false"),
			Info{Version: "v1.2.0", Revision: "fedcba", Date: "2026-12-01T10:00:00Z", GoVersion: "go1.26.0"}},
		{"stamped dirty version is marked modified",
			Stamp{"v1.2.0-3-gabc1234-dirty", rev, "2026-12-01T10:00:00Z"}, nil,
			Info{Version: "v1.2.0-3-gabc1234-dirty", Revision: rev, Date: "2026-12-01T10:00:00Z", Modified: true, GoVersion: "go1.99"}},
		{"plain go build takes revision, time and modified from vcs settings",
			Stamp{}, vcs(rev, "2026-11-30T09:00:00Z", "true"),
			Info{Version: "dev-0123456789ab-dirty", Revision: rev, Date: "2026-11-30T09:00:00Z", Modified: true, GoVersion: "go1.26.0"}},
		{"plain go build of a clean tree is dev plus the short commit",
			Stamp{}, vcs(rev, "2026-11-30T09:00:00Z", "false"),
			Info{Version: "dev-0123456789ab", Revision: rev, Date: "2026-11-30T09:00:00Z", GoVersion: "go1.26.0"}},
		{"go install module@version records the module version",
			Stamp{}, &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v1.3.0"}},
			Info{Version: "v1.3.0", Revision: Unknown, Date: Unknown, GoVersion: "go1.26.0"}},
		{"without vcs settings (-buildvcs=false) everything unknown but Go",
			Stamp{}, vcs("", "", ""),
			Info{Version: "dev", Revision: Unknown, Date: Unknown, GoVersion: "go1.26.0"}},
		{"no build info at all falls back to the running toolchain",
			Stamp{}, nil,
			Info{Version: "dev", Revision: Unknown, Date: Unknown, GoVersion: "go1.99"}},
		{"version stamped alone keeps the toolchain's revision and time",
			Stamp{Version: "v1.2.0"}, vcs(rev, "2026-11-30T09:00:00Z", ""),
			Info{Version: "v1.2.0", Revision: rev, Date: "2026-11-30T09:00:00Z", GoVersion: "go1.26.0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Resolve(tt.stamp, tt.bi, "go1.99"); got != tt.want {
				t.Errorf("Resolve() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestInfoStringShortensTheRevision(t *testing.T) {
	i := Info{Version: "v1.2.0", Revision: rev, Date: "2026-12-01T10:00:00Z", GoVersion: "go1.26.0"}
	want := "v1.2.0 (commit 0123456789ab, built 2026-12-01T10:00:00Z, go1.26.0)"
	if got := i.String(); got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}
