package auth

import (
	"crypto/sha256"
	"crypto/subtle"
)

// Secret is a shared secret from the configuration: server.admin_token or
// consensus.peer_token. Its String redacts it, so that printing the
// effective configuration or logging a struct never shows it.
type Secret string

// String redacts a set secret.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// Matches compares s with a presented value in constant time. Both are
// hashed first, so that neither the comparison nor its length check tells a
// caller how long the secret is or how much of it was right.
func (s Secret) Matches(presented string) bool {
	if s == "" {
		return false
	}
	a, b := sha256.Sum256([]byte(s)), sha256.Sum256([]byte(presented))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}
