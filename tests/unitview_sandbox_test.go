package tests

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// The filesystem view of a systemd unit, read from its [Service] directives
// and rebuilt with bubblewrap: see unitview_test.go for why and how the
// lab's paths map onto the unit's.

// unitFile is the shipped unit.
const unitFile = "../scripts/pgquorum.service"

// nodeDirStandsFor are the unit's paths a lab node's directory stands
// for: it holds the data directory, the socket and the server's log.
var nodeDirStandsFor = []string{"/var/lib/postgresql", "/var/run/postgresql", "/var/log/postgresql"}

// stateDirStandsFor is the unit's path a node's consensus.state_dir
// stands for: its StateDirectory=.
const stateDirStandsFor = "/var/lib/pgquorum"

// access is what a unit makes of a path, from the least restrictive.
type access int

const (
	readWrite access = iota
	readOnly
	privateDir   // an empty directory of the unit's own (PrivateTmp=, ProtectHome=tmpfs)
	inaccessible // InaccessiblePaths=, ProtectHome=yes
)

// pathRule is one path's access; optional ones ("-" in the unit, or a
// protected directory this machine lacks) are skipped when absent.
type pathRule struct {
	path     string
	access   access
	optional bool
}

// unitView is the filesystem a unit's processes see, as its [Service]
// directives shape it.
type unitView struct {
	user           string
	protectSystem  string
	protectHome    string
	privateTmp     bool
	privateDevices bool
	lists          map[string][]string // ReadWritePaths and the like, as written
	extra          []pathRule          // from StateDirectory=, ProtectKernel*=, ProtectControlGroups=
}

// unmodelled are directives that shape the filesystem and that this
// sandbox does not reproduce: a unit using one fails the test until it is.
var unmodelled = []string{"RootDirectory", "RootImage", "MountAPIVFS", "BindPaths", "BindReadOnlyPaths",
	"TemporaryFileSystem", "PrivateMounts", "ProtectProc", "ProcSubset", "PrivateUsers", "DynamicUser",
	"ProtectKernelLogs", "ProtectClock", "ExecPaths", "NoExecPaths", "MountImages", "ExtensionImages",
	"ExtensionDirectories", "RestrictFileSystems"}

// parseUnit reads the [Service] directives of a unit file's text.
func parseUnit(text string) (unitView, error) {
	v := unitView{protectSystem: "no", protectHome: "no", lists: map[string][]string{}}
	section := ""
	sc := bufio.NewScanner(strings.NewReader(strings.ReplaceAll(text, "\\\n", " ")))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
			continue
		case strings.HasPrefix(line, "["):
			section = line
			continue
		case section != "[Service]":
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			return v, fmt.Errorf("not a directive: %q", line)
		}
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		if err := v.set(key, value); err != nil {
			return v, err
		}
	}
	return v, sc.Err()
}

// set applies one directive.
func (v *unitView) set(key, value string) error {
	yes := value == "yes" || value == "true" || value == "on" || value == "1"
	switch key {
	case "User":
		v.user = value
	case "ProtectSystem":
		v.protectSystem = map[string]string{"yes": "yes", "true": "yes", "on": "yes", "1": "yes"}[value]
		if v.protectSystem == "" {
			v.protectSystem = value // no, full, strict
		}
	case "ProtectHome":
		v.protectHome = map[string]string{"true": "yes", "on": "yes", "1": "yes", "false": "no", "off": "no", "0": "no"}[value]
		if v.protectHome == "" {
			v.protectHome = value
		}
	case "PrivateTmp":
		v.privateTmp = yes
	case "PrivateDevices":
		v.privateDevices = yes
	case "ReadWritePaths", "ReadWriteDirectories", "ReadOnlyPaths", "ReadOnlyDirectories", "InaccessiblePaths", "InaccessibleDirectories":
		name := strings.TrimSuffix(strings.TrimSuffix(key, "Paths"), "Directories")
		if value == "" {
			delete(v.lists, name) // an empty assignment resets the list
		}
		v.lists[name] = append(v.lists[name], strings.Fields(value)...)
	case "StateDirectory", "RuntimeDirectory", "LogsDirectory", "CacheDirectory":
		base := map[string]string{"StateDirectory": "/var/lib", "RuntimeDirectory": "/run", "LogsDirectory": "/var/log", "CacheDirectory": "/var/cache"}[key]
		for _, d := range strings.Fields(value) {
			d, _, _ = strings.Cut(d, ":")
			// systemd creates it: on this machine it may be absent.
			v.extra = append(v.extra, pathRule{filepath.Join(base, d), readWrite, true})
		}
	case "ProtectKernelTunables":
		if yes {
			for _, p := range []string{"/proc/sys", "/proc/sysrq-trigger", "/sys"} {
				v.extra = append(v.extra, pathRule{p, readOnly, true})
			}
		}
	case "ProtectControlGroups":
		if yes {
			v.extra = append(v.extra, pathRule{"/sys/fs/cgroup", readOnly, true})
		}
	case "ProtectKernelModules":
		if yes {
			v.extra = append(v.extra, pathRule{"/usr/lib/modules", inaccessible, true}, pathRule{"/lib/modules", inaccessible, true})
		}
	default:
		if slices.Contains(unmodelled, key) {
			return fmt.Errorf("the unit sets %s=%s, which shapes the filesystem and this test's sandbox does not model: model it", key, value)
		}
	}
	return nil
}

// rules are the unit's path rules, parents before children.
func (v unitView) rules() ([]pathRule, error) {
	var rs []pathRule
	ro := func(optional bool, paths ...string) {
		for _, p := range paths {
			rs = append(rs, pathRule{p, readOnly, optional})
		}
	}
	switch v.protectSystem {
	case "no", "false", "":
	case "yes":
		ro(true, "/usr", "/boot", "/efi")
	case "full", "strict":
		ro(true, "/usr", "/boot", "/efi", "/etc")
	default:
		return nil, fmt.Errorf("ProtectSystem=%s: not a value systemd knows", v.protectSystem)
	}
	home := map[string]access{"yes": inaccessible, "read-only": readOnly, "tmpfs": privateDir}
	if a, ok := home[v.protectHome]; ok {
		for _, p := range []string{"/home", "/root", "/run/user"} {
			rs = append(rs, pathRule{p, a, true})
		}
	} else if v.protectHome != "no" {
		return nil, fmt.Errorf("ProtectHome=%s: not a value systemd knows", v.protectHome)
	}
	if v.privateTmp {
		rs = append(rs, pathRule{"/tmp", privateDir, false}, pathRule{"/var/tmp", privateDir, false})
	}
	rs = append(rs, v.extra...)
	for name, a := range map[string]access{"ReadWrite": readWrite, "ReadOnly": readOnly, "Inaccessible": inaccessible} {
		for _, p := range v.lists[name] {
			optional := strings.HasPrefix(p, "-")
			p = strings.TrimLeft(p, "-+")
			rs = append(rs, pathRule{filepath.Clean(p), a, optional})
		}
	}
	// More specific paths win; at the same path, the most restrictive
	// (systemd sorts its mounts by path, then by a mode order that puts
	// inaccessible and private before read-only, read-only before
	// read-write, and keeps the first of equal paths).
	slices.SortStableFunc(rs, func(a, b pathRule) int {
		if len(a.path) != len(b.path) {
			return len(a.path) - len(b.path)
		}
		return int(a.access) - int(b.access)
	})
	return rs, nil
}

// accessOf is what the unit makes of path.
func (v unitView) accessOf(path string) (access, error) {
	rs, err := v.rules()
	if err != nil {
		return 0, err
	}
	a := readWrite
	if v.protectSystem == "strict" && !under(path, "/dev", "/proc", "/sys") {
		a = readOnly
	}
	best := -1
	for _, r := range rs {
		// rs is in bwrap's order, in which the last mount wins.
		if under(path, r.path) && len(r.path) >= best {
			a, best = r.access, len(r.path)
		}
	}
	return a, nil
}

// under tells whether path is one of dirs or below one.
func under(path string, dirs ...string) bool {
	for _, d := range dirs {
		if path == d || d == "/" || strings.HasPrefix(path, d+"/") {
			return true
		}
	}
	return false
}

// bwrapArgs are bwrap's arguments for the unit's view, then for the lab's
// stand-ins (applied last, over the unit's paths).
func (v unitView) bwrapArgs(standIns []pathRule) ([]string, error) {
	rs, err := v.rules()
	if err != nil {
		return nil, err
	}
	// bwrap sets up a mount namespace only (no user, PID or network one):
	// the PostgreSQL that pgquorum starts outlives it (KillMode=process),
	// so no --die-with-parent, which would kill pgquorum with bwrap.
	args := []string{"--dev-bind", "/", "/"}
	if v.protectSystem == "strict" {
		args = []string{"--ro-bind", "/", "/", "--dev-bind", "/dev", "/dev", "--bind", "/proc", "/proc", "--bind", "/sys", "/sys"}
	}
	if v.privateDevices {
		args = append(args, "--dev", "/dev")
	}
	for _, r := range append(rs, standIns...) {
		fi, statErr := os.Stat(r.path)
		if statErr == nil {
			// As systemd, follow symbolic links (/var/run → /run): bwrap
			// cannot mount over one.
			r.path, statErr = filepath.EvalSymlinks(r.path)
		}
		switch {
		case statErr != nil && !r.optional:
			return nil, fmt.Errorf("the unit names %s, absent here: systemd would refuse to start it", r.path)
		case statErr != nil:
			continue
		case r.access == readWrite:
			args = append(args, "--bind", r.path, r.path)
		case r.access == readOnly:
			args = append(args, "--ro-bind", r.path, r.path)
		case !fi.IsDir():
			args = append(args, "--ro-bind", "/dev/null", r.path) // an inaccessible or private file
		case r.access == privateDir:
			args = append(args, "--tmpfs", r.path)
		case r.access == inaccessible:
			args = append(args, "--tmpfs", r.path, "--remount-ro", r.path)
		}
	}
	return args, nil
}

// labPaths are a node's paths in the lab: its directory in the cluster's,
// and its consensus.state_dir in a directory of the test's ("" for none).
type labPaths struct {
	clusterDir, nodeDir string
	stateBase, stateDir string
}

// standIns are rules for the lab's paths, with the access the unit gives
// the paths they stand for; the rest of the lab's directories (the pgquorum
// binary, the other nodes) is read-only, as /usr/bin would be.
func (v unitView) standIns(lp labPaths) ([]pathRule, error) {
	writable := func(paths ...string) (access, error) {
		for _, p := range paths {
			a, err := v.accessOf(p)
			if err != nil || a != readWrite {
				return readOnly, err // PostgreSQL or pgquorum could not write there
			}
		}
		return readWrite, nil
	}
	node, err := writable(nodeDirStandsFor...)
	if err != nil {
		return nil, err
	}
	rs := []pathRule{{lp.clusterDir, readOnly, false}, {lp.nodeDir, node, false}}
	if lp.stateDir != "" {
		state, err := writable(stateDirStandsFor)
		if err != nil {
			return nil, err
		}
		rs = append(rs, pathRule{lp.stateBase, readOnly, false}, pathRule{lp.stateDir, state, false})
	}
	return rs, nil
}

// command is argv run as uid:gid (root when uid is 0) in the unit's view
// of a node's lab paths.
func (v unitView) command(lp labPaths, uid, gid uint32, argv ...string) ([]string, error) {
	standIns, err := v.standIns(lp)
	if err != nil {
		return nil, err
	}
	args, err := v.bwrapArgs(standIns)
	if err != nil {
		return nil, err
	}
	bwrap, err := exec.LookPath("bwrap")
	if err != nil {
		return nil, fmt.Errorf("bwrap missing (apt-get install bubblewrap; scripts/install-deps.sh): %w", err)
	}
	cmd := append([]string{bwrap}, args...)
	if uid != 0 {
		// As systemd does for User=: the user's groups, then its IDs.
		cmd = append(cmd, "--", "setpriv", "--reuid="+strconv.Itoa(int(uid)), "--regid="+strconv.Itoa(int(gid)), "--init-groups")
	}
	return append(append(cmd, "--"), argv...), nil
}
