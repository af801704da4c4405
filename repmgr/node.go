package repmgr

import (
	"fmt"
	"time"
)

// Node types as repmgr records them in repmgr.nodes.type.
const (
	TypePrimary = "primary"
	TypeStandby = "standby"
	TypeWitness = "witness"
)

// Node is one row of repmgr.nodes.
type Node struct {
	ID         int    `json:"id"`
	Name       string `json:"name"`
	Type       string `json:"type"`
	Location   string `json:"location"`
	Active     bool   `json:"active"`
	Priority   int    `json:"priority"`
	Conninfo   string `json:"conninfo"`
	UpstreamID *int   `json:"upstream_id"`
	Repluser   string `json:"repluser"`
}

// Facts is what one probe of the local node observed.
type Facts struct {
	InRecovery bool
	Nodes      []Node
	WAL        WAL
	Server     Server
	Repmgrd    Repmgrd
	ProbedAt   time.Time // when the probe started (set by its caller): the facts are at least this old
}

// Server is what the database that was reached says about itself: enough to
// tell whether it is this node's own database, and which cluster and timeline
// it belongs to.
type Server struct {
	SystemID string // pg_control_system().system_identifier, as text: it does not fit a JSON number
	// Timeline is the current timeline on a primary; on a standby the newest
	// one it knows of (its WAL receiver's, its history files', its control
	// file's), which is never newer than the truth.
	Timeline int
	Port     int    // the server's port setting
	DataDir  string // "" when the role may not read data_directory
	// Downstreams are the application_names of the walsenders: the nodes
	// streaming from this database.
	Downstreams []string
	// Streams are the same walsenders, with what shows whether they are
	// live: a status alone is not (a WAL receiver says "streaming" for up to
	// wal_receiver_timeout after its upstream went silent).
	Streams []Stream
	Sync    SyncFacts
}

// SyncFacts are the settings and waits of synchronous replication.
type SyncFacts struct {
	StandbyNames string // synchronous_standby_names, as this session sees it
	// Commit is synchronous_commit as a session of database.dsn's user
	// starts with: off or local never wait for a standby.
	Commit       string
	Waits        int   // sessions waiting for a synchronous standby (wait_event SyncRep)
	ApplyDelayMS int64 // recovery_min_apply_delay: a delayed standby is never synchronous
}

// Stream is one walsender of this database: a row of pg_stat_replication.
type Stream struct {
	Name  string `json:"name"`  // application_name: the standby's repmgr node name
	State string `json:"state"` // "streaming", "catchup"…
	// ReplyAge is how long ago, in seconds, the standby's last reply
	// arrived (now() - reply_time); nil before its first reply. A standby
	// replies on every flush and at least every wal_receiver_status_interval.
	ReplyAge *float64 `json:"reply_age"`
	// Reply is the standby's reply_time itself, in seconds since the Unix
	// epoch by the standby's clock: only ever compared with its previous
	// value, so that a reply is judged by when this node saw it change,
	// not by two machines' clocks.
	Reply *float64 `json:"reply"`
	Flush *int64   `json:"flush"` // the standby's flush_lsn, in bytes since 0/0; nil until reported
}

// Repmgrd is what the repmgr extension knows of the local repmgrd: both
// false when repmgr is not preloaded, or when the database has repmgr's
// tables but not its functions.
type Repmgrd struct {
	Running bool
	Paused  bool
}

// WAL is the local node's replication position, in bytes since 0/0.
// On a primary Position is pg_current_wal_lsn(); on a standby it is the last
// received LSN. Pointers are nil where PostgreSQL reports NULL.
type WAL struct {
	Position *int64
	// Standby only.
	Replayed         *int64
	PrimaryPosition  *int64   // the upstream's WAL end, as its walsender last reported it
	ReplayDelay      *float64 // seconds behind the last replayed commit; 0 when all received WAL is replayed
	ReceiverStatus   string   // pg_stat_wal_receiver.status ("streaming"…), "" without a receiver
	ReceivedTimeline *int32
	SenderHost       string // where the WAL receiver is connected: pg_stat_wal_receiver.sender_host
	SenderPort       int
	ReceiverConninfo string // pg_stat_wal_receiver.conninfo (passwords obfuscated by PostgreSQL)
}

// StreamingState is what pg_stat_wal_receiver.status and
// pg_stat_replication.state say of a stream past its catch-up.
const StreamingState = "streaming"

// WaitingState is what pg_stat_wal_receiver.status says of a receiver that
// got its timeline to the end and waits for replay to get there and ask
// for the next one (a standby catching up on an older timeline).
const WaitingState = "waiting"

// Streaming tells whether a standby's WAL receiver is streaming.
func (w WAL) Streaming() bool { return w.ReceiverStatus == StreamingState }

// LagBytes is how much WAL a standby has yet to replay, measured against what
// its upstream last reported: known only while a receiver runs.
func (w WAL) LagBytes() (int64, bool) {
	if w.PrimaryPosition == nil || w.Replayed == nil {
		return 0, false
	}
	return max(0, *w.PrimaryPosition-*w.Replayed), true
}

// ByName returns the node registered under name.
func ByName(nodes []Node, name string) (Node, bool) {
	for _, n := range nodes {
		if n.Name == name {
			return n, true
		}
	}
	return Node{}, false
}

// ByID returns the node registered with node_id id.
func ByID(nodes []Node, id int) (Node, bool) {
	for _, n := range nodes {
		if n.ID == id {
			return n, true
		}
	}
	return Node{}, false
}

// ActivePrimaries returns the nodes recorded as active primaries. A healthy
// metadata table has exactly one; after a failover the old primary's row keeps
// type "primary" with active = false, so type alone is not enough.
func ActivePrimaries(nodes []Node) []Node {
	var out []Node
	for _, n := range nodes {
		if n.Type == TypePrimary && n.Active {
			out = append(out, n)
		}
	}
	return out
}

// NamedPrimary is the single node the metadata records as the active
// primary. It names none when the metadata records zero or several, so a
// confused node never casts a vote.
func NamedPrimary(nodes []Node) (Node, bool) {
	ps := ActivePrimaries(nodes)
	if len(ps) != 1 {
		return Node{}, false
	}
	return ps[0], true
}

// Endpoint returns the host and port of a node's conninfo.
func (n Node) Endpoint() (host string, port int, err error) {
	if host, err = ConninfoHost(n.Conninfo); err != nil {
		return "", 0, fmt.Errorf("node %q: %w", n.Name, err)
	}
	if port, err = ConninfoPort(n.Conninfo); err != nil {
		return "", 0, fmt.Errorf("node %q: %w", n.Name, err)
	}
	return host, port, nil
}
