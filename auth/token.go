package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/pgquorum/pgquorum/api"
)

// Sentinel errors of a credential check: callers answer 401 to the first
// and 403 to the second.
var (
	ErrNoCredentials  = errors.New("no credentials")
	ErrBadCredentials = errors.New("bad credentials")
)

// PeerToken signs and checks the exchanges between peers that share
// consensus.peer_token, for deployments without a PKI. The token itself
// never travels: whoever answers on a peer's address, a fake server
// included, learns nothing it could replay.
//
// A request carries a fresh random nonce, its time and
// HMAC(token, request ‖ method ‖ path ‖ nonce ‖ time ‖ body); a server takes
// it only within Window of its own clock and only once. The answer carries
// HMAC(token, answer ‖ nonce ‖ status ‖ body): only a holder of the token
// can make it, and only for this very request, so an answer copied from
// another exchange, or a 509 turned into a 200 on the way, does not verify.
type PeerToken struct {
	key    []byte
	window time.Duration
	now    func() time.Time
	rand   io.Reader

	mu        sync.Mutex
	seen      map[string]time.Time // nonces taken, until their time leaves the window
	lastPrune time.Time
}

// Window is how far a request's time may be from the server's clock: the
// nodes' clocks must agree within it.
const Window = 30 * time.Second

// maxNonces bounds the nonces remembered. Only requests whose MAC verified
// enter, so only token holders fill it; a server that remembers this many
// refuses more rather than forget one it might see replayed.
const maxNonces = 1 << 16

const nonceBytes = 16

// Labels keep the MACs of each kind apart: no MAC of one kind can be
// presented as another.
const (
	labelRequest  = "pgquorum peer request v1"
	labelAnswer   = "pgquorum peer answer v1"
	labelListener = "pgquorum stream listener v1"
	labelDialer   = "pgquorum stream dialer v1"
)

// NewPeerToken returns the signer of secret; now and random may be nil
// (time.Now, crypto/rand).
func NewPeerToken(secret Secret, now func() time.Time, random io.Reader) *PeerToken {
	if now == nil {
		now = time.Now
	}
	if random == nil {
		random = rand.Reader
	}
	return &PeerToken{key: []byte(secret), window: Window, now: now, rand: random, seen: map[string]time.Time{}}
}

// mac is HMAC-SHA256 over the length-prefixed parts, so that no two
// different lists of parts ever hash alike.
func (t *PeerToken) mac(label string, parts ...[]byte) []byte {
	h := hmac.New(sha256.New, t.key)
	var n [4]byte
	for _, p := range append([][]byte{[]byte(label)}, parts...) {
		binary.BigEndian.PutUint32(n[:], uint32(len(p)))
		h.Write(n[:])
		h.Write(p)
	}
	return h.Sum(nil)
}

func (t *PeerToken) nonce() (string, error) {
	b := make([]byte, nonceBytes)
	if _, err := io.ReadFull(t.rand, b); err != nil {
		return "", fmt.Errorf("peer token nonce: %w", err)
	}
	return hex.EncodeToString(b), nil
}

func requestMAC(t *PeerToken, method, uri, nonce, ts string, body []byte) []byte {
	return t.mac(labelRequest, []byte(method), []byte(uri), []byte(nonce), []byte(ts), body)
}

func answerMAC(t *PeerToken, nonce string, status int, body []byte) []byte {
	return t.mac(labelAnswer, []byte(nonce), []byte(strconv.Itoa(status)), body)
}

// SignRequest adds the nonce, time and MAC headers to req, whose body is
// body, and returns the nonce the answer must be signed with.
func (t *PeerToken) SignRequest(req *http.Request, body []byte) (string, error) {
	nonce, err := t.nonce()
	if err != nil {
		return "", err
	}
	ts := strconv.FormatInt(t.now().UnixMilli(), 10)
	req.Header.Set(api.HeaderPeerNonce, nonce)
	req.Header.Set(api.HeaderPeerTime, ts)
	req.Header.Set(api.HeaderPeerMAC, hex.EncodeToString(requestMAC(t, req.Method, req.URL.RequestURI(), nonce, ts, body)))
	return nonce, nil
}

// VerifyAnswer checks the MAC of an answer to the request signed with nonce.
func (t *PeerToken) VerifyAnswer(nonce string, status int, h http.Header, body []byte) error {
	got := h.Get(api.HeaderPeerMAC)
	if got == "" {
		return fmt.Errorf("answer without %s: %w", api.HeaderPeerMAC, ErrNoCredentials)
	}
	mac, err := hex.DecodeString(got)
	if err != nil || !hmac.Equal(mac, answerMAC(t, nonce, status, body)) {
		return fmt.Errorf("answer MAC does not verify with consensus.peer_token: %w", ErrBadCredentials)
	}
	return nil
}

// VerifyRequest checks a request's MAC, its time and that its nonce is new,
// and returns the nonce to sign the answer with. A request with none of the
// headers is ErrNoCredentials; anything else that fails, ErrBadCredentials.
func (t *PeerToken) VerifyRequest(method, uri string, h http.Header, body []byte) (string, error) {
	nonce, ts, got := h.Get(api.HeaderPeerNonce), h.Get(api.HeaderPeerTime), h.Get(api.HeaderPeerMAC)
	if nonce == "" && ts == "" && got == "" {
		return "", ErrNoCredentials
	}
	if raw, err := hex.DecodeString(nonce); err != nil || len(raw) != nonceBytes {
		return "", fmt.Errorf("malformed nonce: %w", ErrBadCredentials)
	}
	ms, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return "", fmt.Errorf("malformed time: %w", ErrBadCredentials)
	}
	mac, err := hex.DecodeString(got)
	if err != nil || !hmac.Equal(mac, requestMAC(t, method, uri, nonce, ts, body)) {
		return "", fmt.Errorf("request MAC does not verify with consensus.peer_token: %w", ErrBadCredentials)
	}
	at, now := time.UnixMilli(ms), t.now()
	if d := now.Sub(at); d > t.window || d < -t.window {
		return "", fmt.Errorf("request time %s is %s away from this node's clock (more than %s): %w",
			at.UTC().Format(time.RFC3339), d.Round(time.Millisecond), t.window, ErrBadCredentials)
	}
	if err := t.remember(nonce, at.Add(t.window), now); err != nil {
		return "", err
	}
	return nonce, nil
}

// remember takes nonce once; it is forgotten once a request bearing it
// would be refused for its time anyway.
func (t *PeerToken) remember(nonce string, until, now time.Time) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if now.Sub(t.lastPrune) >= time.Second || len(t.seen) >= maxNonces {
		for n, u := range t.seen {
			if now.After(u) {
				delete(t.seen, n)
			}
		}
		t.lastPrune = now
	}
	if _, dup := t.seen[nonce]; dup {
		return fmt.Errorf("nonce already used (a replayed request): %w", ErrBadCredentials)
	}
	if len(t.seen) >= maxNonces {
		return fmt.Errorf("more than %d signed requests within %s: %w", maxNonces, t.window, ErrBadCredentials)
	}
	t.seen[nonce] = until
	return nil
}

// SignAnswer sets the MAC header of the answer to a request verified with
// nonce.
func (t *PeerToken) SignAnswer(h http.Header, nonce string, status int, body []byte) {
	h.Set(api.HeaderPeerMAC, hex.EncodeToString(answerMAC(t, nonce, status, body)))
}
