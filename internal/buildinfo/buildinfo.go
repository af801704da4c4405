// Package buildinfo says which pgquorum this is: version, commit, build date
// and Go version. `make`, the package and the Dockerfile stamp them with
// -ldflags "-X github.com/pgquorum/pgquorum/internal/buildinfo.version=…"
// (and .revision, .date); a plain `go build` leaves them empty, and the Go
// toolchain's own record (debug.ReadBuildInfo: vcs.revision, vcs.time,
// vcs.modified) fills in what it can.
package buildinfo

import (
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
)

// Set by the linker; empty in a plain `go build`.
var (
	version  string
	revision string
	date     string // RFC 3339
)

// Unknown stands for a field that neither the linker nor the toolchain set.
const Unknown = "unknown"

// Info identifies a build. Its JSON is what `pgquorum version --json` prints.
type Info struct {
	Version   string `json:"version"`   // e.g. v1.2.0-3-gabc1234; "dev" when not stamped
	Revision  string `json:"revision"`  // full commit hash, or "unknown"
	Date      string `json:"date"`      // build (or commit) time, RFC 3339, or "unknown"
	Modified  bool   `json:"modified"`  // built from a tree with uncommitted changes (vcs.modified)
	GoVersion string `json:"goversion"` // e.g. go1.26.0
}

// Stamp is what the linker wrote: the three -X values.
type Stamp struct {
	Version, Revision, Date string
}

// Get returns this binary's Info.
func Get() Info {
	bi, _ := debug.ReadBuildInfo()
	return Resolve(Stamp{Version: version, Revision: revision, Date: date}, bi, runtime.Version())
}

// Resolve prefers what the linker stamped, then the toolchain's record (bi
// may be nil), then "dev"/"unknown". goVersion is the running toolchain's,
// used when bi has none.
func Resolve(s Stamp, bi *debug.BuildInfo, goVersion string) Info {
	info := Info{Version: s.Version, Revision: s.Revision, Date: s.Date, GoVersion: goVersion}
	var settings map[string]string
	if bi != nil {
		if bi.GoVersion != "" {
			info.GoVersion = bi.GoVersion
		}
		settings = make(map[string]string, len(bi.Settings))
		for _, kv := range bi.Settings {
			settings[kv.Key] = kv.Value
		}
		// `go install module@version` records the module's version.
		if info.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			info.Version = bi.Main.Version
		}
	}
	if info.Revision == "" {
		info.Revision = settings["vcs.revision"]
	}
	if info.Date == "" {
		info.Date = settings["vcs.time"]
	}
	// git describe --dirty marks a stamped version; the toolchain records
	// vcs.modified when it could read the repository.
	m, _ := strconv.ParseBool(settings["vcs.modified"])
	info.Modified = m || strings.HasSuffix(s.Version, "-dirty")
	if info.Version == "" {
		info.Version = "dev"
		if r := info.Revision; len(r) >= 12 {
			info.Version = "dev-" + r[:12]
		}
		if m {
			info.Version += "-dirty"
		}
	}
	if info.Revision == "" {
		info.Revision = Unknown
	}
	if info.Date == "" {
		info.Date = Unknown
	}
	if info.GoVersion == "" {
		info.GoVersion = Unknown
	}
	return info
}

// String is one line: "v1.2.0 (commit abc1234…, built 2026-12-02T12:00:00Z, go1.26.0)".
func (i Info) String() string {
	rev := i.Revision
	if len(rev) > 12 {
		rev = rev[:12]
	}
	return i.Version + " (commit " + rev + ", built " + i.Date + ", " + i.GoVersion + ")"
}
