package consensus

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/pgquorum/pgquorum/repmgr"
)

// Identity is what this node knows of itself from its configuration: its
// repmgr node_name and, when repmgr.conf is read, its node_id and data
// directory.
type Identity struct {
	Name    string
	NodeID  int    // 0: unknown
	DataDir string // "": unknown
}

// Self returns this node's own row of repmgr.nodes: the one named
// id.Name (with id.NodeID, when known). ok is false when there is none;
// err is set when the name is ambiguous.
func (id Identity) Self(nodes []repmgr.Node) (me repmgr.Node, ok bool, err error) {
	var rows []repmgr.Node
	for _, n := range nodes {
		if n.Name == id.Name && (id.NodeID == 0 || n.ID == id.NodeID) {
			rows = append(rows, n)
		}
	}
	switch len(rows) {
	case 0:
		return repmgr.Node{}, false, nil
	case 1:
		return rows[0], true, nil
	}
	ids := make([]int, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	return repmgr.Node{}, false, fmt.Errorf("node %q is registered %d times in repmgr.nodes (node_id %v); set repmgr.config_file so that its node_id tells which row is this node", id.Name, len(rows), ids)
}

// CheckIdentity proves, as far as the facts allow, that database.dsn reached
// this node's own database and not another node's: every check that the
// facts make possible must pass, and the error says which one did not.
//   - the node_id of repmgr.conf is the one registered for node.name;
//   - the server's port is the port of this node's repmgr conninfo;
//   - its data directory is the data_directory of this node's repmgr.conf;
//   - a standby does not stream under the name of another registered node;
//   - no walsender of that database streams to this node: that would be
//     this node's upstream.
func CheckIdentity(id Identity, f repmgr.Facts) error {
	me, registered, err := id.Self(f.Nodes)
	if err != nil {
		return err
	}
	if other, named := repmgr.ByName(f.Nodes, id.Name); !registered && named && id.NodeID != 0 {
		return fmt.Errorf("repmgr.conf says node_id %d, but node %q is registered with node_id %d", id.NodeID, id.Name, other.ID)
	}
	if registered {
		if port, err := repmgr.ConninfoPort(me.Conninfo); err == nil && f.Server.Port != 0 && port != f.Server.Port {
			return fmt.Errorf("database.dsn reaches a server on port %d, but node %q is registered on port %d", f.Server.Port, id.Name, port)
		}
	}
	if id.DataDir != "" && f.Server.DataDir != "" && !sameDir(id.DataDir, f.Server.DataDir) {
		return fmt.Errorf("database.dsn reaches a server with data directory %s, but node %q's repmgr.conf says %s", f.Server.DataDir, id.Name, id.DataDir)
	}
	if f.InRecovery {
		if app := receiverAppName(f.WAL.ReceiverConninfo); app != "" && app != id.Name {
			if _, other := repmgr.ByName(f.Nodes, app); other {
				return fmt.Errorf("database.dsn reaches a standby that streams as registered node %q, not as %q", app, id.Name)
			}
		}
	}
	if slices.Contains(f.Server.Downstreams, id.Name) {
		return fmt.Errorf("database.dsn reaches a server that node %q streams from: its upstream, not its own database", id.Name)
	}
	return nil
}

// sameDir compares two paths of one host, through symlinks where both can
// be resolved.
func sameDir(a, b string) bool {
	if filepath.Clean(a) == filepath.Clean(b) {
		return true
	}
	sa, errA := os.Stat(a)
	sb, errB := os.Stat(b)
	return errA == nil && errB == nil && os.SameFile(sa, sb)
}

// receiverAppName is the application_name a WAL receiver connects with;
// repmgr sets it to the standby's node_name.
func receiverAppName(conninfo string) string {
	if conninfo == "" {
		return ""
	}
	kv, err := repmgr.ParseConninfo(conninfo)
	if err != nil {
		return ""
	}
	return kv["application_name"]
}
