package consensus

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/auth"
	"github.com/pgquorum/pgquorum/repmgr"
)

// Peers asks other pgquorum instances what they see.
type Peers interface {
	// Vote asks addr to vouch for the candidate of req.
	Vote(ctx context.Context, addr string, req api.VoteRequest) (*api.VoteAnswer, error)
	// State returns the HTTP status of addr's /state, and its body when it
	// decodes (nil when not).
	State(ctx context.Context, addr string) (int, *api.StateBody, error)
}

// Addresses tells where each node's pgquorum listens: the host of its repmgr
// conninfo and a common port, unless an override names host:port.
type Addresses struct {
	Port      int
	Overrides map[string]string // node name → host:port
}

// Of returns the host:port of node's pgquorum.
func (a Addresses) Of(n repmgr.Node) (string, error) {
	if addr, ok := a.override(n.Name); ok {
		return addr, nil
	}
	host, err := repmgr.ConninfoHost(n.Conninfo)
	if err != nil {
		return "", fmt.Errorf("address of node %q: %w", n.Name, err)
	}
	return net.JoinHostPort(host, strconv.Itoa(a.Port)), nil
}

// override matches names without regard to case as well, because viper
// lower-cases the keys of maps read from config files.
func (a Addresses) override(name string) (string, bool) {
	if addr, ok := a.Overrides[name]; ok {
		return addr, true
	}
	for k, addr := range a.Overrides {
		if strings.EqualFold(k, name) {
			return addr, true
		}
	}
	return "", false
}

// maxStateBody bounds a /state answer read from a peer (a vote answer is
// bounded by api.MaxVoteBody): a broken or hostile peer can waste at most
// this much memory and the peer timeout.
const maxStateBody = 16 << 10

// PeerAuth is how this node proves itself to its peers and checks that an
// answer comes from the node it asked. The zero value is plain HTTP, where
// whatever answers on a peer's address speaks for it.
type PeerAuth struct {
	// TLS, when set, makes every poll HTTPS with it (auth.Store's
	// PeerClientTLS: this node's certificate, the peer CA).
	TLS *tls.Config
	// CheckNames: an answer counts only when the peer's certificate names
	// the node it answers as (consensus.peer_tls). The callers check that
	// this is the node they asked: Decide's validVote the voter, the
	// coordinator the report's node, askState the /state body's node.
	CheckNames bool
	// Token signs every request; an answer counts only with the MAC of the
	// token over this very request's nonce (consensus.peer_token).
	Token  *auth.PeerToken
	Logger *slog.Logger
}

// ErrUnauthenticated is an answer that did not prove it came from the node
// asked: no vote, no report, no /state, as if the peer had not answered.
var ErrUnauthenticated = errors.New("unauthenticated answer")

// maxPeerHeader bounds the response header read from a peer: a pgquorum
// answer has a few hundred bytes of them, and net/http would otherwise read
// up to 1 MB of headers before any body limit applies.
const maxPeerHeader = 16 << 10

// maxPeerExchange bounds a whole exchange with a peer (dial, request,
// headers, body) whatever the caller's ctx says. Callers pass a shorter
// deadline of their own (consensus.peer_timeout, the coordinator's round);
// this is the backstop for one that passes none.
const maxPeerExchange = 10 * time.Second

// HTTPPeers is the Peers implementation over HTTP.
type HTTPPeers struct {
	client *http.Client
	auth   PeerAuth
	scheme string
	notes  *auth.LogOnce // by peer address
}

// NewHTTPPeers returns a client that never follows redirects (a peer answers
// for itself) and keeps a few idle connections per peer so that polling every
// second does not open a connection (nor, over TLS, a handshake) every second.
func NewHTTPPeers(pa PeerAuth) *HTTPPeers {
	if pa.Logger == nil {
		pa.Logger = slog.New(slog.DiscardHandler)
	}
	tr := &http.Transport{
		Proxy:               nil, // peers are on the cluster network, never behind HTTP_PROXY
		DialContext:         (&net.Dialer{Timeout: maxPeerExchange, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     pa.TLS,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		// A peer that sends megabytes of headers, or drips them, is cut
		// off here; the body is bounded by do's limit and ctx.
		MaxResponseHeaderBytes: maxPeerHeader,
		ResponseHeaderTimeout:  maxPeerExchange,
	}
	scheme := "http"
	if pa.TLS != nil {
		scheme = "https"
	}
	return &HTTPPeers{auth: pa, scheme: scheme, notes: &auth.LogOnce{Log: pa.Logger}, client: &http.Client{
		Transport:     tr,
		Timeout:       maxPeerExchange,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// Vote asks addr to vouch for this node. The caller's ctx bounds the whole
// exchange.
func (p *HTTPPeers) Vote(ctx context.Context, addr string, req api.VoteRequest) (*api.VoteAnswer, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encode vote request: %w", err)
	}
	x, err := p.do(ctx, http.MethodPost, addr, api.PathVote, body, api.MaxVoteBody)
	if err != nil {
		return nil, err
	}
	a, err := decodeVote(x.status, x.body)
	if err != nil {
		return nil, fmt.Errorf("%s%s: %w", addr, api.PathVote, err)
	}
	if err := p.checkAnswerer(x, addr, api.PathVote, a.Voter); err != nil {
		return nil, err
	}
	return a, nil
}

// decodeVote reads a vote answer: only a 200 whose body decodes, with no
// unknown field and no trailing data, is an answer at all. Whether it is a
// valid vote is for Decide to judge.
func decodeVote(status int, body []byte) (*api.VoteAnswer, error) {
	if status != http.StatusOK {
		return nil, fmt.Errorf("unexpected status %d", status)
	}
	var a api.VoteAnswer
	if err := api.DecodeStrict(bytes.NewReader(body), &a); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	return &a, nil
}

// Report asks addr for its failover report. The caller's ctx bounds the
// whole exchange.
func (p *HTTPPeers) Report(ctx context.Context, addr string, req api.ReportRequest) (*api.Report, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encode report request: %w", err)
	}
	x, err := p.do(ctx, http.MethodPost, addr, api.PathReport, body, maxStateBody)
	if err != nil {
		return nil, err
	}
	r, err := decodeReport(x.status, x.body)
	if err != nil {
		return nil, fmt.Errorf("%s%s: %w", addr, api.PathReport, err)
	}
	if err := p.checkAnswerer(x, addr, api.PathReport, r.Node); err != nil {
		return nil, err
	}
	return r, nil
}

// decodeReport reads a failover report: only a 200 whose body decodes is
// one.
func decodeReport(status int, body []byte) (*api.Report, error) {
	if status != http.StatusOK {
		return nil, fmt.Errorf("unexpected status %d", status)
	}
	var r api.Report
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	return &r, nil
}

// State asks addr's /state. The status is what HAProxy acts on and is
// returned whatever the body; the body is decoded for views only.
// With CheckNames, a 200 counts only when its body names the node that the
// certificate names: a claim nobody vouches for is no claim. Another status
// claims nothing, and a node shutting down answers 503 without its name, so
// one from a certificate of the peer CA is taken as it is.
func (p *HTTPPeers) State(ctx context.Context, addr string) (int, *api.StateBody, error) {
	x, err := p.do(ctx, http.MethodGet, addr, api.PathState, nil, maxStateBody)
	if errors.Is(err, errBodyTooLarge) && !p.auth.CheckNames {
		return x.status, nil, nil
	}
	if err != nil {
		return x.status, nil, err
	}
	b := decodeState(x.body)
	switch {
	case p.auth.CheckNames && x.status == http.StatusOK && (b == nil || b.Node == ""):
		return 0, nil, p.unauthenticated(addr, api.PathState, "its 200 names no node")
	case b == nil || b.Node == "":
		return x.status, b, nil
	}
	if err := p.checkAnswerer(x, addr, api.PathState, b.Node); err != nil {
		return 0, nil, err
	}
	return x.status, b, nil
}

// decodeState reads a /state body for the views: nil when it does not
// decode. Nothing is decided from it; the status is the peer's answer.
func decodeState(body []byte) *api.StateBody {
	var b api.StateBody
	if json.Unmarshal(body, &b) != nil {
		return nil
	}
	return &b
}

// exchange is one answer of a peer.
type exchange struct {
	status int
	body   []byte
	tls    *tls.ConnectionState // nil over HTTP
}

// do asks addr and reads at most limit bytes of its answer. With the peer
// token, the request is signed and an answer without the token's MAC over
// this request's nonce is ErrUnauthenticated; so is a TLS handshake that
// failed on credentials.
func (p *HTTPPeers) do(ctx context.Context, method, addr, path string, body []byte, limit int) (exchange, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, p.scheme+"://"+addr+path, rd)
	if err != nil {
		return exchange{}, fmt.Errorf("ask %s%s: %w", addr, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	var nonce string
	if p.auth.Token != nil {
		if nonce, err = p.auth.Token.SignRequest(req, body); err != nil {
			return exchange{}, fmt.Errorf("ask %s%s: %w", addr, path, err)
		}
	}
	resp, err := p.client.Do(req)
	if err != nil {
		if isCredentialError(err) {
			return exchange{}, p.unauthenticated(addr, path, err.Error())
		}
		return exchange{}, fmt.Errorf("ask %s%s: %w", addr, path, err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, int64(limit)+1))
	if err != nil {
		return exchange{}, fmt.Errorf("read %s%s: %w", addr, path, err)
	}
	x := exchange{status: resp.StatusCode, body: answer, tls: resp.TLS}
	if len(answer) > limit {
		x.body = nil
		return x, fmt.Errorf("read %s%s: answer larger than %d bytes: %w", addr, path, limit, errBodyTooLarge)
	}
	if p.auth.Token != nil {
		if err := p.auth.Token.VerifyAnswer(nonce, resp.StatusCode, resp.Header, answer); err != nil {
			return exchange{}, p.unauthenticated(addr, path, fmt.Sprintf("status %d: %v", resp.StatusCode, err))
		}
	}
	return x, nil
}

// checkAnswerer checks, with CheckNames, that the certificate of x names
// the node the answer says it comes from; the caller then checks that this
// is the node it asked. An exchange that passes every configured check is
// noted, so that a peer that failed before is logged as back.
func (p *HTTPPeers) checkAnswerer(x exchange, addr, path, node string) error {
	if p.auth.CheckNames {
		if err := auth.CheckNames(x.tls, node); err != nil {
			return p.unauthenticated(addr, path, fmt.Sprintf("answers as %q, but %v", node, err))
		}
	}
	if p.auth.CheckNames || p.auth.Token != nil {
		p.noteAuthenticated(addr)
	}
	return nil
}

// unauthenticated returns the ErrUnauthenticated of addr and logs it the
// first time since addr last proved itself.
func (p *HTTPPeers) unauthenticated(addr, path, why string) error {
	err := fmt.Errorf("%s%s: %w: %s", addr, path, ErrUnauthenticated, why)
	p.notes.Failed(addr, "peer's answer is not authenticated: it counts as no answer (logged once until it authenticates)",
		"peer", addr, "error", err)
	return err
}

func (p *HTTPPeers) noteAuthenticated(addr string) {
	p.notes.Passed(addr, "peer's answers are authenticated again", "peer", addr)
}

// isCredentialError tells a TLS handshake that failed on a certificate (this
// node's or the peer's) from a network failure.
func isCredentialError(err error) bool {
	var alert tls.AlertError
	var verify *tls.CertificateVerificationError
	return errors.Is(err, auth.ErrBadCredentials) || errors.As(err, &alert) || errors.As(err, &verify)
}

var errBodyTooLarge = errors.New("answer too large")
