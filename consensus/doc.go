// Package consensus decides what the local node is, by majority vote of the
// nodes registered in its own repmgr location.
//
// Decide and RealPrimary are pure functions over a snapshot of facts; the
// Checker gathers those facts (one probe of the local node, one poll of the
// site's peers per refresh), caches the verdict and logs every change of it.
// The peers are asked through the Peers interface (client.Client over
// HTTP): the only network I/O here.
package consensus
