// Package consensus decides what the local node is: a primary answers 200
// on /state only while it runs as primary and a majority of the registered
// nodes vouches for it, by default a majority of its location and of the
// whole cluster (consensus.scope cluster), or of its location only (scope
// site). docs/quorum.md gives the rules and why two nodes never answer 200 at
// the same instant.
//
// The rules are pure: Vouch is one voter's rule, Ballot the lease that binds
// its vote (kept across restarts by a LeaseFile on CLOCK_MONOTONIC), Decide
// the count of valid votes, CheckIdentity the proof that database.dsn reaches
// this node's own database, RealPrimary the reading of every node's /state.
//
// The Checker puts them to work for one node. Its core (core.go, round.go)
// is a state machine without I/O: told the time, the probes' results and the
// peers' answers, it says what to probe, whom to poll until when, which
// verdict to publish and when to refresh next, and it keeps the verdict only
// until CacheTTL after its facts were read. The Checker around it probes the
// local database, polls the peers, answers other nodes' vote requests (Vote),
// steps down for a switchover, and surveys every node's /state for
// split-brain (Survey). The voting simulation in sim_test.go drives the same
// core.
//
// With failover on, the Checker also reads the failover controller's Raft
// log (Options.Committed, Options.Deposed): a voter refuses a candidate the
// log deposes, and every candidate while it cannot tell; a voter whose
// database is down, or a witness, vouches for the committed primary and no
// other.
//
// The other nodes' pgquorum is asked through the Peers interface, which
// client.Client implements over HTTP (votes, /state, reports, forwarded
// actions, authenticated by TLS or a token).
package consensus
