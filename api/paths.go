// Package api holds pgquorum's vocabulary and its HTTP contract in one place:
// route paths, the default port, the JSON bodies, and the typed names of
// every state, mode, phase and kind. The server encodes these types; the
// client, the CLI and the tests decode them. The Raft log has types of its
// own (failover/entry.go), so a change here never changes the on-disk log.
//
// The files are split by topic: paths.go (routes, port, headers), state.go
// (the verdict and the views), vote.go (the peers' vote), failover.go (the
// failover vocabulary, reports and history), operator.go (operators'
// actions and the commands that carry them), patroni.go (the answer of the
// Patroni endpoints no node passes or pgquorum does not serve).
package api

// DefaultPort is where pgquorum listens and where peers are polled unless
// configured otherwise.
const DefaultPort = 5999

// Check endpoints. Each answers GET, HEAD and OPTIONS with the same status.
const (
	PathRoot        = "/" // alias of PathState: HAProxy's bare "option httpchk" sends OPTIONS /
	PathState       = "/state"
	PathPrimary     = "/primary"
	PathRealPrimary = "/realPrimary"
)

// Operator views and Patroni-compatible checks.
const (
	PathCluster   = "/cluster"
	PathEvents    = "/events"
	PathMetrics   = "/metrics"
	PathLeader    = "/leader"
	PathReplica   = "/replica"
	PathReadOnly  = "/read-only"
	PathHealth    = "/health"
	PathLiveness  = "/liveness"
	PathReadiness = "/readiness"
)

// Patroni's names for its checks, served so that a Patroni HAProxy template
// works with only its port and its write-check path changed
// (docs/patroni.md). Each answers GET, HEAD and OPTIONS with the same status.
const (
	PathMaster    = "/master"     // as PathLeader (Patroni before 4.0)
	PathReadWrite = "/read-write" // as PathLeader
	// With failover.synchronous on or strict (docs/patroni.md, "Synchronous
	// standbys"): a quorum standby is one the primary's applied
	// "ANY k (…)" counts, a synchronous standby one that every commit
	// waits for. With off, no node is either.
	PathSync                = "/sync" // a synchronous standby
	PathSynchronous         = "/synchronous"
	PathQuorum              = "/quorum"         // a quorum standby
	PathReadOnlySync        = "/read-only-sync" // the confirmed primary or a synchronous standby
	PathReadOnlySynchronous = "/read-only-synchronous"
	PathReadOnlyQuorum      = "/read-only-quorum" // the confirmed primary or a quorum standby
	PathAsync               = "/async"            // a streaming standby outside the committed synchronous set
	PathAsynchronous        = "/asynchronous"
)

// Patroni endpoints without a meaning in a repmgr cluster: each answers 501
// Not Implemented to every method, with a PatroniBody naming what to use.
const (
	PathStandbyLeader      = "/standby-leader"
	PathStandbyLeaderAlias = "/standby_leader"
	PathPatroni            = "/patroni"
	PathPatroniConfig      = "/config"
	PathPatroniFailover    = "/failover"
	PathPatroniRestart     = "/restart"
	PathPatroniReload      = "/reload"
	PathPatroniReinit      = "/reinitialize"
)

// PathVote is the peers' internal endpoint, not meant for operators: a node
// that runs as primary asks every other registered node to vouch for it, by
// POSTing a VoteRequest. The answer is a VoteAnswer with status 200, whether
// the vote is granted or refused; 400 for a request that does not decode.
// See docs/quorum.md for the rules and the lease.
const PathVote = "/internal/v1/vote"

// PathAgent is the operator's HAProxy agent override: GET shows it, PUT or
// POST PathAgent+"/{mode}" (ready, drain, maint) sets it. Loopback only.
const PathAgent = "/agent"

// PathReport is the peers' internal endpoint through which the failover
// coordinator (the Raft leader) gathers every node's facts: POST a
// ReportRequest, get a Report.
const PathReport = "/internal/v1/report"

// PathHistory lists the failover decisions committed through Raft, newest
// first (HistoryBody).
const PathHistory = "/history"

// PathUI is the read-only status page: /cluster's answer as one HTML page
// for a browser, refreshed every few seconds.
const PathUI = "/ui"

// Operators' actions. Each goes through the failover coordinator and the
// Raft log, from any node.
const (
	PathSwitchover = "/switchover" // POST SwitchoverRequest starts one; GET shows the latest
	PathPause      = "/pause"      // POST PauseRequest
	PathResume     = "/resume"     // POST
	// PathCommand is the peers' internal endpoint that carries an operator
	// command to the coordinator (a Command).
	PathCommand = "/internal/v1/command"
	// PathRelease is the peers' internal endpoint through which the
	// coordinator of a switchover has the votes leased to the stopped old
	// primary released.
	PathRelease = "/internal/v1/release"
	// PathDeposition is the peers' internal endpoint through which the
	// coordinator asks each voter whether it has released a deposed
	// primary (DepositionRequest) before it commits a successor.
	PathDeposition = "/internal/v1/deposition"
	// PathFailoverCheck is what "pgquorum failover-check" asks its own
	// node (POST, FailoverCheckRequest): may repmgrd promote it now?
	PathFailoverCheck = "/failover-check"
)

// Headers of the peer token scheme (consensus.peer_token): a signed request
// carries a nonce, its time (Unix milliseconds) and its MAC; the answer
// carries its MAC, bound to the request's nonce. See auth.PeerToken.
const (
	HeaderPeerNonce = "X-Pgquorum-Nonce"
	HeaderPeerTime  = "X-Pgquorum-Time"
	HeaderPeerMAC   = "X-Pgquorum-Mac"
)
