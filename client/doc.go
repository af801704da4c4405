// Package client is the one HTTP client of pgquorum's API: the peers' poll
// and vote (consensus), the coordinator's reports and carried commands
// (failover), the operator's commands (cmd/pgquorum) and the test harness
// (internal/lab) all ask a pgquorum through it.
//
// It owns what every exchange needs: the base URL or peer address, the TLS
// material, the peer token's signature of each request and check of each
// answer, the admin bearer token, bounded reads (headers, bodies, and a
// backstop on the whole exchange) and strict decoding (api.DecodeStrict):
// an answer means one thing only, or it is no answer.
//
// Files: client.go (the exchange and its bounds), peer.go (the peers'
// methods: Vote, Report, State, Post), node.go (an operator's methods on one
// pgquorum at a base URL), url.go (base URLs).
package client
