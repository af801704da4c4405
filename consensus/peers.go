package consensus

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/pgquorum/pgquorum/api"
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
}

// NewHTTPPeers returns a client that never follows redirects (a peer answers
// for itself) and keeps a few idle connections per peer so that polling every
// second does not open a connection every second.
func NewHTTPPeers() *HTTPPeers {
	tr := &http.Transport{
		Proxy:               nil, // peers are on the cluster network, never behind HTTP_PROXY
		DialContext:         (&net.Dialer{Timeout: maxPeerExchange, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		// A peer that sends megabytes of headers, or drips them, is cut
		// off here; the body is bounded by do's limit and ctx.
		MaxResponseHeaderBytes: maxPeerHeader,
		ResponseHeaderTimeout:  maxPeerExchange,
	}
	return &HTTPPeers{client: &http.Client{
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
	status, answer, err := p.do(ctx, http.MethodPost, addr, api.PathVote, body, api.MaxVoteBody)
	if err != nil {
		return nil, err
	}
	a, err := decodeVote(status, answer)
	if err != nil {
		return nil, fmt.Errorf("%s%s: %w", addr, api.PathVote, err)
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
	status, answer, err := p.do(ctx, http.MethodPost, addr, api.PathReport, body, maxStateBody)
	if err != nil {
		return nil, err
	}
	r, err := decodeReport(status, answer)
	if err != nil {
		return nil, fmt.Errorf("%s%s: %w", addr, api.PathReport, err)
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
func (p *HTTPPeers) State(ctx context.Context, addr string) (int, *api.StateBody, error) {
	status, body, err := p.do(ctx, http.MethodGet, addr, api.PathState, nil, maxStateBody)
	if errors.Is(err, errBodyTooLarge) {
		return status, nil, nil
	}
	if err != nil {
		return status, nil, err
	}
	return status, decodeState(body), nil
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

func (p *HTTPPeers) do(ctx context.Context, method, addr, path string, body []byte, limit int) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+addr+path, rd)
	if err != nil {
		return 0, nil, fmt.Errorf("ask %s%s: %w", addr, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("ask %s%s: %w", addr, path, err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, int64(limit)+1))
	if err != nil {
		return 0, nil, fmt.Errorf("read %s%s: %w", addr, path, err)
	}
	if len(answer) > limit {
		return resp.StatusCode, nil, fmt.Errorf("read %s%s: answer larger than %d bytes: %w", addr, path, limit, errBodyTooLarge)
	}
	return resp.StatusCode, answer, nil
}

var errBodyTooLarge = errors.New("answer too large")
