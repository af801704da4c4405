// Package failover is pgquorum's failover controller. An embedded Raft group
// of the pgquorum daemons (hashicorp/raft) decides who is the primary; this
// package holds the PostgreSQL policy around it:
//
//   - detect.go and elect.go are pure: when the primary counts as lost, and
//     which standby replaces it;
//   - entry.go and fsm.go are the replicated state: typed, versioned log
//     entries and the FSM that applies them, a pure switch;
//   - raft.go is the plumbing: transport, stores, bootstrap, membership;
//   - coordinator.go runs on the Raft leader: it gathers every node's
//     report, detects, elects and commits decisions;
//   - actor.go runs on every node: it acts on committed decisions only, in
//     its own loop, never inside Apply;
//   - state.go names every state a node can be in, for /state, /cluster,
//     "pgquorum status" and metrics.
package failover
