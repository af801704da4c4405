package consensus

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/repmgr"
)

// Peers asks other pgquorum instances what they see; *client.Client is the
// one over HTTP.
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
