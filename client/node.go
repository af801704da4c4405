package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/pgquorum/pgquorum/api"
)

// Node is one pgquorum asked at its base URL, as an operator's command or
// the test harness asks it: with the client's TLS material and admin token.
type Node struct {
	c    *Client
	base *url.URL
}

// Node returns the pgquorum at base (http(s)://host:port, see
// ParseBaseURL).
func (c *Client) Node(base *url.URL) Node {
	return Node{c: c, base: base}
}

// URL is the address of path on n.
func (n Node) URL(path string) *url.URL {
	u := n.base.JoinPath(path)
	if i := strings.IndexByte(path, '?'); i >= 0 {
		u = n.base.JoinPath(path[:i])
		u.RawQuery = path[i+1:]
	}
	return u
}

// Get GETs path (which may carry a query) and returns the status and at
// most limit bytes of the body. ctx bounds the whole exchange.
func (n Node) Get(ctx context.Context, path string, limit int) (int, []byte, error) {
	u := n.URL(path)
	x, err := n.c.do(ctx, http.MethodGet, u, nil, limit)
	if err != nil {
		return x.status, nil, n.wrap(http.MethodGet, u, err)
	}
	return x.status, x.body, nil
}

// GetJSON GETs path and decodes at most limit bytes of its body, strictly,
// into v, whatever the status, which it returns.
func (n Node) GetJSON(ctx context.Context, path string, limit int, v any) (int, error) {
	return n.doJSON(ctx, http.MethodGet, path, nil, limit, v)
}

// PostJSON POSTs body as JSON to path and decodes at most limit bytes of
// the answer, strictly, into v, whatever the status, which it returns.
func (n Node) PostJSON(ctx context.Context, path string, body any, limit int, v any) (int, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return 0, fmt.Errorf("POST %s: encode: %w", path, err)
	}
	return n.doJSON(ctx, http.MethodPost, path, b, limit, v)
}

func (n Node) doJSON(ctx context.Context, method, path string, body []byte, limit int, v any) (int, error) {
	u := n.URL(path)
	x, err := n.c.do(ctx, method, u, body, limit)
	if err != nil {
		return x.status, n.wrap(method, u, err)
	}
	if x.status == http.StatusTooManyRequests {
		// The views' rate limit answers with its own body: not the
		// answer's type, and nothing the caller asked about.
		return x.status, fmt.Errorf("%s %s: rate limited (429): %s", method, u, api.ErrorText(errors.New(string(x.body))))
	}
	if err := api.DecodeStrict(bytes.NewReader(x.body), v); err != nil {
		return x.status, fmt.Errorf("%s %s (status %d): decode answer: %w", method, u, x.status, err)
	}
	return x.status, nil
}

// wrap words an error of do: a transport error is as it is (a *url.Error
// names the method and URL).
func (n Node) wrap(method string, u *url.URL, err error) error {
	var unread *readError
	var big *tooLargeError
	switch {
	case errors.As(err, &unread):
		return fmt.Errorf("%s %s: read body: %w", method, u, unread.err)
	case errors.As(err, &big):
		return fmt.Errorf("%s %s: %w", method, u, err)
	}
	return err
}

// StateAnswer is one answer of /state: its status and, when the body
// decodes, the body, which only serves to describe it.
type StateAnswer struct {
	Status  int
	Body    *api.StateBody
	BodyErr error // why Body is nil
}

// State GETs n's /state; ctx bounds the whole exchange, body included.
// Only a missing answer is an error: a body that does not decode, or that
// stalls, leaves the status as it is.
func (n Node) State(ctx context.Context) (StateAnswer, error) {
	x, err := n.c.do(ctx, http.MethodGet, n.URL(api.PathState), nil, MaxStateBody)
	var unread *readError
	var big *tooLargeError
	switch {
	case errors.As(err, &unread):
		return StateAnswer{Status: x.status, BodyErr: fmt.Errorf("read body: %w", unread.err)}, nil
	case errors.As(err, &big):
		return StateAnswer{Status: x.status, BodyErr: fmt.Errorf("body larger than %d bytes", big.limit)}, nil
	case err != nil:
		return StateAnswer{}, err
	}
	var b api.StateBody
	if err := api.DecodeStrict(bytes.NewReader(x.body), &b); err != nil {
		return StateAnswer{Status: x.status, BodyErr: fmt.Errorf("decode body: %w", err)}, nil
	}
	return StateAnswer{Status: x.status, Body: &b}, nil
}

// Cluster GETs n's /cluster; an answer other than 200 is an error.
func (n Node) Cluster(ctx context.Context) (api.ClusterBody, error) {
	var b api.ClusterBody
	status, err := n.GetJSON(ctx, api.PathCluster, MaxClusterBody, &b)
	if err == nil && status != http.StatusOK {
		err = fmt.Errorf("GET %s answered %d", api.PathCluster, status)
	}
	return b, err
}

// History GETs n's committed failover decisions; an answer other than 200
// is an error.
func (n Node) History(ctx context.Context) (api.HistoryBody, error) {
	var b api.HistoryBody
	status, err := n.GetJSON(ctx, api.PathHistory, MaxClusterBody, &b)
	if err == nil && status != http.StatusOK {
		err = fmt.Errorf("GET %s answered %d", api.PathHistory, status)
	}
	return b, err
}

// RealPrimary GETs n's /realPrimary and its status.
func (n Node) RealPrimary(ctx context.Context) (int, api.RealPrimaryBody, error) {
	var b api.RealPrimaryBody
	status, err := n.GetJSON(ctx, api.PathRealPrimary, MaxStateBody, &b)
	return status, b, err
}

// Switchover asks for a planned switchover (see command).
func (n Node) Switchover(ctx context.Context, req api.SwitchoverRequest) (api.CommandResult, error) {
	return n.command(ctx, api.PathSwitchover, req)
}

// LatestSwitchover GETs the latest switchover and its status.
func (n Node) LatestSwitchover(ctx context.Context) (int, api.Switchover, error) {
	var sw api.Switchover
	status, err := n.GetJSON(ctx, api.PathSwitchover, MaxActionBody, &sw)
	return status, sw, err
}

// Pause pauses automatic failover cluster-wide (see command).
func (n Node) Pause(ctx context.Context, req api.PauseRequest) (api.CommandResult, error) {
	return n.command(ctx, api.PathPause, req)
}

// Resume resumes automatic failover (see command).
func (n Node) Resume(ctx context.Context) (api.CommandResult, error) {
	return n.command(ctx, api.PathResume, struct{}{})
}

// command POSTs body to an operator's action path and decodes the
// CommandResult; a refusal by the coordinator is an error of its own,
// saying why.
func (n Node) command(ctx context.Context, path string, body any) (api.CommandResult, error) {
	var res api.CommandResult
	status, err := n.PostJSON(ctx, path, body, MaxActionBody, &res)
	switch {
	case err != nil:
		return res, err
	case status == http.StatusOK && res.OK:
		return res, nil
	case status == http.StatusConflict && res.Error != "":
		return res, errors.New(res.Error)
	case res.Error != "":
		return res, fmt.Errorf("POST %s: %d: %s", path, status, res.Error)
	}
	return res, fmt.Errorf("POST %s answered %d", path, status)
}

// FailoverCheck asks n whether repmgrd may promote it; the answer counts
// only with status 200.
func (n Node) FailoverCheck(ctx context.Context, req api.FailoverCheckRequest) (int, api.FailoverCheckAnswer, error) {
	var ans api.FailoverCheckAnswer
	status, err := n.PostJSON(ctx, api.PathFailoverCheck, req, MaxActionBody, &ans)
	return status, ans, err
}

// Agent GETs n's HAProxy agent override.
func (n Node) Agent(ctx context.Context) (api.AgentBody, error) {
	return n.agent(ctx, http.MethodGet, n.URL(api.PathAgent))
}

// SetAgent sets n's HAProxy agent override to mode (ready, drain, maint)
// at weight percent.
func (n Node) SetAgent(ctx context.Context, mode string, weight int) (api.AgentBody, error) {
	u := n.URL(api.PathAgent + "/" + mode)
	u.RawQuery = "weight=" + strconv.Itoa(weight)
	return n.agent(ctx, http.MethodPut, u)
}

func (n Node) agent(ctx context.Context, method string, u *url.URL) (api.AgentBody, error) {
	var body api.AgentBody
	x, err := n.c.do(ctx, method, u, nil, MaxActionBody)
	var unread *readError
	var big *tooLargeError
	switch {
	case errors.As(err, &unread):
		return body, fmt.Errorf("read pgquorum's answer: %w", unread.err)
	case errors.As(err, &big):
		return body, fmt.Errorf("read pgquorum's answer: %w", err)
	case err != nil:
		return body, fmt.Errorf("ask pgquorum: %w", err)
	case x.status == http.StatusNotFound:
		return body, fmt.Errorf("%s answered 404: is server.agent_listen set in its config?", u.Host)
	case x.status != http.StatusOK:
		return body, fmt.Errorf("%s %s: %d %s: %s", method, u.Path, x.status, http.StatusText(x.status), strings.TrimSpace(string(x.body)))
	}
	if err := api.DecodeStrict(bytes.NewReader(x.body), &body); err != nil {
		return body, fmt.Errorf("decode pgquorum's answer: %w", err)
	}
	return body, nil
}
