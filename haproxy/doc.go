// Package haproxy puts pgquorum's verdicts in front of clients through
// HAProxy: Render writes a haproxy.cfg whose read-write listener sends
// connections only to the node whose /state answers 200 and whose read-only
// listener balances over the nodes answering 202; Agent answers HAProxy's
// agent-check protocol from the same cached verdict, plus an operator's
// drain or maintenance override, so a node can be emptied before it is
// worked on.
package haproxy
