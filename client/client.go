package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/pgquorum/pgquorum/auth"
)

// Bounds of what is read of an answer: a broken or hostile pgquorum can
// waste at most this much memory and the exchange's deadline.
const (
	// MaxHeader bounds the response header: a pgquorum answer has a few
	// hundred bytes of them, and net/http would otherwise read up to 1 MB
	// of headers before any body limit applies.
	MaxHeader = 16 << 10
	// MaxStateBody bounds a /state answer and a report (a vote answer is
	// bounded by api.MaxVoteBody).
	MaxStateBody = 16 << 10
	// MaxActionBody bounds the answer to an action (a switchover with its
	// steps, a command carried between peers, the agent override).
	MaxActionBody = 256 << 10
	// MaxClusterBody bounds a /cluster answer: ample for hundreds of nodes.
	MaxClusterBody = 4 << 20
)

// MaxExchange is the default Backstop: it bounds a whole exchange (dial,
// request, headers, body) whatever the caller's ctx says. Callers pass a
// shorter deadline of their own (consensus.peer_timeout, the coordinator's
// round); this is for one that passes none.
const MaxExchange = 10 * time.Second

// Options are how a Client reaches pgquorum and proves who it is. The zero
// value is plain HTTP, no token, bounded by MaxExchange.
type Options struct {
	// TLS, when set, makes peer addresses HTTPS with it (auth.Store's
	// PeerClientTLS: this node's certificate, the peer CA), and verifies
	// the https:// base URLs of Node (the CA of the nodes' certificates).
	TLS *tls.Config
	// CheckNames: a peer's answer counts only when the peer's certificate
	// names the node it answers as (consensus.peer_tls). The callers check
	// that this is the node they asked: Decide's validVote the voter, the
	// coordinator the report's node, State the /state body's node.
	CheckNames bool
	// PeerToken signs every request; a peer's answer counts only with the
	// MAC of the token over this very request's nonce
	// (consensus.peer_token).
	PeerToken *auth.PeerToken
	// AdminToken is sent as "Authorization: Bearer" with every request of
	// an operator's command (server.admin_token); "": none.
	AdminToken auth.Secret
	// Backstop bounds each exchange whatever ctx says; 0 is MaxExchange.
	// A command whose --timeout may be longer (failover-check waits for
	// the decision) sets it to that timeout.
	Backstop time.Duration
	Logger   *slog.Logger
}

// Client asks pgquorum instances over HTTP. It is safe for concurrent use.
type Client struct {
	http   *http.Client
	opts   Options
	scheme string        // of peer addresses
	notes  *auth.LogOnce // by peer address
}

// New returns a client that never uses a proxy (pgquorum is asked
// directly, and the environment of keepalived or cron may carry an
// http_proxy), never follows a redirect (a node answers for itself), and
// keeps a few idle connections per node so that polling every second does
// not open a connection (nor, over TLS, a handshake) every second.
func New(o Options) *Client {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Backstop <= 0 {
		o.Backstop = MaxExchange
	}
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: o.Backstop, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     o.TLS,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		// A node that sends megabytes of headers, or drips them, is cut
		// off here; the body is bounded by do's limit and ctx.
		MaxResponseHeaderBytes: MaxHeader,
		ResponseHeaderTimeout:  o.Backstop,
	}
	scheme := "http"
	if o.TLS != nil {
		scheme = "https"
	}
	return &Client{opts: o, scheme: scheme, notes: &auth.LogOnce{Log: o.Logger}, http: &http.Client{
		Transport:     tr,
		Timeout:       o.Backstop,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// exchange is one answer.
type exchange struct {
	status int
	header http.Header
	body   []byte
	tls    *tls.ConnectionState // nil over HTTP
	nonce  string               // of the peer token's signature; "" without it
}

// readError is a body that could not be read whole: the exchange has its
// status, not its body.
type readError struct{ err error }

func (e *readError) Error() string { return e.err.Error() }
func (e *readError) Unwrap() error { return e.err }

// tooLargeError is a body over the limit: the exchange has its status, not
// its body.
type tooLargeError struct{ limit int }

func (e *tooLargeError) Error() string { return fmt.Sprintf("answer larger than %d bytes", e.limit) }

// do sends a request to u, signed with the peer token and bearing the admin
// token when the options hold them, and reads at most limit bytes of the
// answer. ctx and the backstop bound the whole exchange. A request that
// gets no answer returns the transport's error as it is (a *url.Error
// names the method and URL); a readError or a tooLargeError comes with the
// status.
func (c *Client) do(ctx context.Context, method string, u *url.URL, body []byte, limit int) (exchange, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return exchange{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.opts.AdminToken != "" {
		req.Header.Set("Authorization", "Bearer "+string(c.opts.AdminToken))
	}
	var x exchange
	if c.opts.PeerToken != nil {
		if x.nonce, err = c.opts.PeerToken.SignRequest(req, body); err != nil {
			return exchange{}, err
		}
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return exchange{}, err
	}
	defer resp.Body.Close()
	x.status, x.header, x.tls = resp.StatusCode, resp.Header, resp.TLS
	answer, err := io.ReadAll(io.LimitReader(resp.Body, int64(limit)+1))
	switch {
	case err != nil:
		return x, &readError{err}
	case len(answer) > limit:
		return x, &tooLargeError{limit}
	}
	x.body = answer
	return x, nil
}
