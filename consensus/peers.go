package consensus

import (
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
	// Primary returns the node named by addr's /primary, "" if it names none.
	Primary(ctx context.Context, addr string) (string, error)
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

// maxPeerBody bounds what is read from a peer: a broken or hostile peer can
// waste at most this much memory and the peer timeout.
const maxPeerBody = 4 << 10

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
		DialContext:         (&net.Dialer{KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	return &HTTPPeers{client: &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// Primary asks addr's /primary. The caller's ctx bounds the whole exchange.
func (p *HTTPPeers) Primary(ctx context.Context, addr string) (string, error) {
	status, body, err := p.get(ctx, addr, api.PathPrimary)
	if err != nil {
		return "", err
	}
	named, err := decodePrimary(status, body)
	if err != nil {
		return "", fmt.Errorf("%s%s: %w", addr, api.PathPrimary, err)
	}
	return named, nil
}

// decodePrimary reads a /primary answer as a vote: a name only from a 200
// whose body names one; "" (no vote, no error) from a 503; an error from
// anything else.
func decodePrimary(status int, body []byte) (string, error) {
	switch status {
	case http.StatusOK:
		var b api.PrimaryBody
		if err := json.Unmarshal(body, &b); err != nil {
			return "", fmt.Errorf("decode: %w", err)
		}
		if b.Primary == nil || *b.Primary == "" {
			return "", errors.New("200 without a primary")
		}
		return *b.Primary, nil
	case http.StatusServiceUnavailable:
		return "", nil
	default:
		return "", fmt.Errorf("unexpected status %d", status)
	}
}

// State asks addr's /state. The status is what HAProxy acts on and is
// returned whatever the body; the body is decoded for views only.
func (p *HTTPPeers) State(ctx context.Context, addr string) (int, *api.StateBody, error) {
	status, body, err := p.get(ctx, addr, api.PathState)
	if errors.Is(err, errBodyTooLarge) {
		return status, nil, nil
	}
	if err != nil {
		return status, nil, err
	}
	var b api.StateBody
	if json.Unmarshal(body, &b) != nil {
		return status, nil, nil
	}
	return status, &b, nil
}

func (p *HTTPPeers) get(ctx context.Context, addr, path string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return 0, nil, fmt.Errorf("ask %s%s: %w", addr, path, err)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("ask %s%s: %w", addr, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxPeerBody+1))
	if err != nil {
		return 0, nil, fmt.Errorf("read %s%s: %w", addr, path, err)
	}
	if len(body) > maxPeerBody {
		return resp.StatusCode, nil, fmt.Errorf("read %s%s: %w", addr, path, errBodyTooLarge)
	}
	return resp.StatusCode, body, nil
}

var errBodyTooLarge = errors.New("answer larger than 4 KiB")
