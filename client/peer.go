package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/auth"
)

// ErrUnauthenticated is a peer's answer that did not prove it came from the
// node asked: no vote, no report, no /state, as if the peer had not
// answered.
var ErrUnauthenticated = errors.New("unauthenticated answer")

// Vote asks the peer at addr (host:port) to vouch for the candidate of req.
// Only a 200 whose body decodes strictly is an answer; whether it is a
// valid vote is for consensus.Decide to judge. The caller's ctx bounds the
// whole exchange.
func (c *Client) Vote(ctx context.Context, addr string, req api.VoteRequest) (*api.VoteAnswer, error) {
	x, err := c.askJSON(ctx, http.MethodPost, addr, api.PathVote, req, api.MaxVoteBody)
	if err != nil {
		return nil, err
	}
	a, err := DecodeVote(x.status, x.body)
	if err != nil {
		return nil, fmt.Errorf("%s%s: %w", addr, api.PathVote, err)
	}
	if err := c.checkAnswerer(x, addr, api.PathVote, a.Voter); err != nil {
		return nil, err
	}
	return a, nil
}

// DecodeVote reads a vote answer: only a 200 whose body decodes strictly
// is an answer at all. Whether it is a valid vote is for consensus.Decide
// to judge.
func DecodeVote(status int, body []byte) (*api.VoteAnswer, error) {
	var a api.VoteAnswer
	if err := decodeOK(status, body, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// Report asks the peer at addr for its failover report. The caller's ctx
// bounds the whole exchange.
func (c *Client) Report(ctx context.Context, addr string, req api.ReportRequest) (*api.Report, error) {
	x, err := c.askJSON(ctx, http.MethodPost, addr, api.PathReport, req, MaxStateBody)
	if err != nil {
		return nil, err
	}
	r, err := DecodeReport(x.status, x.body)
	if err != nil {
		return nil, fmt.Errorf("%s%s: %w", addr, api.PathReport, err)
	}
	if err := c.checkAnswerer(x, addr, api.PathReport, r.Node); err != nil {
		return nil, err
	}
	return r, nil
}

// Deposition asks the voter at addr whether it has released a deposed
// primary. The answer counts only from the very node asked: its name, and
// its certificate or signature when the peers authenticate.
func (c *Client) Deposition(ctx context.Context, addr string, req api.DepositionRequest) (*api.DepositionAnswer, error) {
	x, err := c.askJSON(ctx, http.MethodPost, addr, api.PathDeposition, req, MaxActionBody)
	if err != nil {
		return nil, err
	}
	var a api.DepositionAnswer
	if err := decodeOK(x.status, x.body, &a); err != nil {
		return nil, fmt.Errorf("%s%s: %w", addr, api.PathDeposition, err)
	}
	if a.Protocol != api.DepositionProtocol {
		return nil, fmt.Errorf("%s%s: deposition answer of protocol %d, want %d", addr, api.PathDeposition, a.Protocol, api.DepositionProtocol)
	}
	if err := c.checkAnswerer(x, addr, api.PathDeposition, a.Voter); err != nil {
		return nil, err
	}
	return &a, nil
}

// DecodeReport reads a failover report: only a 200 whose body decodes
// strictly, of this node's api.ReportProtocol, is one. A report of another
// version would be read with fields it does not have, or meaning other
// things: the coordinator counts it as no report.
func DecodeReport(status int, body []byte) (*api.Report, error) {
	var r api.Report
	if err := decodeOK(status, body, &r); err != nil {
		return nil, err
	}
	if r.Protocol != api.ReportProtocol {
		return nil, fmt.Errorf("report of protocol %d, want %d", r.Protocol, api.ReportProtocol)
	}
	return &r, nil
}

// decodeOK reads an answer: only a 200 whose body decodes, with no unknown
// field and no trailing data, is an answer at all.
func decodeOK(status int, body []byte, v any) error {
	if status != http.StatusOK {
		return fmt.Errorf("unexpected status %d", status)
	}
	if err := api.DecodeStrict(bytes.NewReader(body), v); err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	return nil
}

// State asks the /state of the peer at addr. The status is what HAProxy
// acts on and is returned whatever the body; the body is decoded (strictly)
// for the views only, and is nil when it does not decode.
// With CheckNames, a 200 counts only when its body names the node that the
// certificate names: a claim nobody vouches for is no claim. Another status
// claims nothing, and a node shutting down answers 503 without its name, so
// one from a certificate of the peer CA is taken as it is.
func (c *Client) State(ctx context.Context, addr string) (int, *api.StateBody, error) {
	x, err := c.ask(ctx, http.MethodGet, addr, api.PathState, nil, MaxStateBody)
	var big *tooLargeError
	if errors.As(err, &big) && !c.opts.CheckNames {
		return x.status, nil, nil
	}
	if err != nil {
		return x.status, nil, err
	}
	b := DecodeState(x.body)
	switch {
	case c.opts.CheckNames && x.status == http.StatusOK && (b == nil || b.Node == ""):
		return 0, nil, c.unauthenticated(addr, api.PathState, "its 200 names no node")
	case b == nil || b.Node == "":
		return x.status, b, nil
	}
	if err := c.checkAnswerer(x, addr, api.PathState, b.Node); err != nil {
		return 0, nil, err
	}
	return x.status, b, nil
}

// DecodeState reads a /state body for the views: nil when it does not
// decode strictly. Nothing is decided from it; the status is the peer's answer.
func DecodeState(body []byte) *api.StateBody {
	var b api.StateBody
	if api.DecodeStrict(bytes.NewReader(body), &b) != nil {
		return nil
	}
	return &b
}

// Post sends req as JSON to the peer at addr's path and decodes the answer
// strictly into out: the peers' internal actions (a command carried to the
// coordinator, a release of votes). An answer other than 200 is an error
// carrying the body's first line.
func (c *Client) Post(ctx context.Context, addr, path string, req, out any) error {
	x, err := c.askJSON(ctx, http.MethodPost, addr, path, req, MaxActionBody)
	if err != nil {
		return err
	}
	if x.status != http.StatusOK {
		return fmt.Errorf("%s%s: status %d: %s", addr, path, x.status, firstLine(x.body))
	}
	if out == nil {
		return nil
	}
	if err := api.DecodeStrict(bytes.NewReader(x.body), out); err != nil {
		return fmt.Errorf("%s%s: decode: %w", addr, path, err)
	}
	return nil
}

// firstLine is the first line of b, at most 200 bytes of it.
func firstLine(b []byte) string {
	s := string(b)
	for i, r := range s {
		if r == '\n' || i >= 200 {
			return s[:i]
		}
	}
	return s
}

// askJSON asks addr with req encoded as JSON.
func (c *Client) askJSON(ctx context.Context, method, addr, path string, req any, limit int) (exchange, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return exchange{}, fmt.Errorf("encode %s request: %w", path, err)
	}
	return c.ask(ctx, method, addr, path, body, limit)
}

// ask asks the peer at addr and reads at most limit bytes of its answer.
// With the peer token, an answer without the token's MAC over this
// request's nonce is ErrUnauthenticated; so is a TLS handshake that failed
// on credentials. An answer over limit comes with its status only.
func (c *Client) ask(ctx context.Context, method, addr, path string, body []byte, limit int) (exchange, error) {
	u := &url.URL{Scheme: c.scheme, Host: addr, Path: path}
	x, err := c.do(ctx, method, u, body, limit)
	var big *tooLargeError
	var unread *readError
	switch {
	case errors.As(err, &big):
		return x, fmt.Errorf("read %s%s: %w", addr, path, err)
	case errors.As(err, &unread):
		return exchange{}, fmt.Errorf("read %s%s: %w", addr, path, unread.err)
	case err != nil && isCredentialError(err):
		return exchange{}, c.unauthenticated(addr, path, err.Error())
	case err != nil:
		return exchange{}, fmt.Errorf("ask %s%s: %w", addr, path, err)
	}
	if c.opts.PeerToken != nil {
		if err := c.opts.PeerToken.VerifyAnswer(x.nonce, x.status, x.header, x.body); err != nil {
			return exchange{}, c.unauthenticated(addr, path, fmt.Sprintf("status %d: %v", x.status, err))
		}
	}
	return x, nil
}

// checkAnswerer checks, with CheckNames, that the certificate of x names
// the node the answer says it comes from; the caller then checks that this
// is the node it asked. An exchange that passes every configured check is
// noted, so that a peer that failed before is logged as back.
func (c *Client) checkAnswerer(x exchange, addr, path, node string) error {
	if c.opts.CheckNames {
		if err := auth.CheckNames(x.tls, node); err != nil {
			return c.unauthenticated(addr, path, fmt.Sprintf("answers as %q, but %v", node, err))
		}
	}
	if c.opts.CheckNames || c.opts.PeerToken != nil {
		c.notes.Passed(addr, "peer's answers are authenticated again", "peer", addr)
	}
	return nil
}

// unauthenticated returns the ErrUnauthenticated of addr and logs it the
// first time since addr last proved itself.
func (c *Client) unauthenticated(addr, path, why string) error {
	err := fmt.Errorf("%s%s: %w: %s", addr, path, ErrUnauthenticated, why)
	c.notes.Failed(addr, "peer's answer is not authenticated: it counts as no answer (logged once until it authenticates)",
		"peer", addr, "error", err)
	return err
}

// isCredentialError tells a TLS handshake that failed on a certificate (this
// node's or the peer's) from a network failure.
func isCredentialError(err error) bool {
	var alert tls.AlertError
	var verify *tls.CertificateVerificationError
	return errors.Is(err, auth.ErrBadCredentials) || errors.As(err, &alert) || errors.As(err, &verify)
}
