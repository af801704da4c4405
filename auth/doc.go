// Package auth holds what pgquorum proves itself and its peers with: TLS
// material read from PEM files and swapped whole on reload, the names a
// certificate vouches for, the HMAC scheme of a shared peer token (which
// never travels itself), and an authenticated handshake for raw TCP streams
// such as Raft's.
//
// Everything here is mechanism; which endpoint needs which credential is
// decided by the server, the peer client and the Raft transport.
package auth
