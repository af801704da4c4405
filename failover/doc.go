// Package failover is pgquorum's automatic failover. An embedded Raft group
// of the pgquorum daemons (hashicorp/raft) decides who is the primary; this
// package is the PostgreSQL policy around it, in parts that each own their
// state. The Raft leader is called the coordinator throughout; the state
// Leading (api.FailoverLeading) is the committed primary's, not the
// coordinator's.
//
//   - The coordinator runs on the Raft leader. rounds.decide (round.go) is a
//     pure step from the round's facts (the registered nodes and their
//     reports), the committed state and the time to an intent: commit this
//     entry, or nothing, and why. It adopts a primary, records a promotion,
//     detects the loss of the primary (detect.go) and elects its successor
//     (elect.go). The shell (coordinator.go) gathers the reports, keeps the
//     Raft membership in step with repmgr.nodes, hands leadership over when
//     it is the committed primary, and carries the intent out.
//   - The switchover driver (switchover.go) is the coordinator's part of a
//     switchover, a pure step of the round; the operator (operator.go) runs
//     the operators' commands on the coordinator: start a switchover, pause,
//     resume, record a fence or repmgrd's allowance.
//   - The actor runs on every node, in its own goroutine, never inside
//     Apply. It carries out committed decisions, and nothing else but a
//     fence: its fencer may stop a primary that hears no coordinator, with
//     nothing committed against it (rule 2). nextAction (act.go) is a pure
//     step from what the node sees of itself, the committed state and the
//     actor's memory to the actions to try (promote, re-point, follow,
//     rejoin, the old primary's demote and restart), or to a fact to look up
//     first; the shell (actor.go) looks facts up and runs the actions, each
//     within the command timeout and cancelled by a newer decision: a
//     promote, a demote or a fence once per decision, a re-point, a follow
//     or a restart up to maxAttempts times, a rejoin with its own backoff
//     (rejoin_status.go).
//   - The hooks (hooks.go): dueHooks is a pure step from the actor's facts,
//     the committed state and the actor's memory to the operators' hooks due
//     once per decision (on_role_change, on_failover); the fencer adds
//     on_fence; a hook runner runs them in a goroutine of its own, bounded
//     and logged. pre_promote runs inside the promotion: its failure vetoes
//     it, and the coordinator sees a failed promotion.
//   - The fencer (fence.go) is the actor's first step. It fences a replaced
//     primary only: rule 1, another committed primary runs; rule 2, no
//     coordinator heard for failover.fence_after while it is not the
//     committed primary or fewer than a majority of its standbys stream live
//     from it (streams.go: a recent reply and a moving flush, from the
//     probe). A primary cut off from every peer hears no coordinator, and is
//     the one rule 2 is for; an outage of pgquorum alone is not. The fence
//     log records fences through the coordinator, in a goroutine of its own.
//   - The gate for repmgrd (gate.go): with failover.mode repmgrd, no actor
//     promotes; failover-check lets repmgrd promote only the committed
//     successor, once per decision.
//   - The replicated state (entry.go, fsm.go): typed, versioned log entries
//     with types of their own, apart from api's HTTP bodies (testdata/log-v1
//     holds entries as version 1 wrote them), and the FSM, whose Apply is a
//     pure switch over them. commit (member.go) stamps the version.
//   - The transport (raft.go, transport.go): stores, bootstrap, membership,
//     and Raft's TCP transport, authenticated as the peers are.
//   - What goroutines share is the status board (status.go): what /state and
//     the report show of this node; reporter (report.go) builds them, and
//     NodeState (state.go) names every state a node can be in.
package failover
