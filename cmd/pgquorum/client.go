package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/spf13/pflag"

	"github.com/pgquorum/pgquorum/api"
)

// defaultLocalURL is where the CLI finds the local pgquorum.
var defaultLocalURL = "http://127.0.0.1:" + strconv.Itoa(api.DefaultPort)

// localFlags are the --url and --timeout of every command that asks a
// pgquorum over HTTP.
type localFlags struct {
	url     string
	timeout time.Duration
}

func (f *localFlags) register(fs *pflag.FlagSet, timeout time.Duration) {
	fs.StringVar(&f.url, "url", defaultLocalURL, "base URL of the pgquorum to ask")
	fs.DurationVar(&f.timeout, "timeout", timeout, "bound of the whole call")
}

// base checks both flags and returns the base URL.
func (f localFlags) base() (*url.URL, error) {
	u, err := parseBaseURL(f.url)
	if err != nil {
		return nil, err
	}
	if f.timeout <= 0 {
		return nil, fmt.Errorf("--timeout: want a positive duration, got %s", f.timeout)
	}
	return u, nil
}

// parseBaseURL checks a --url flag: http(s)://host:port, nothing else.
func parseBaseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--url: want http://host:port, got %q", raw)
	}
	return u, nil
}

// newLocalClient never uses a proxy (pgquorum is asked directly; the
// environment of keepalived or cron may carry an http_proxy) and never
// follows a redirect (a node answers for itself).
func newLocalClient() *http.Client {
	return &http.Client{
		Transport:     &http.Transport{Proxy: nil, DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// getJSON GETs target and decodes at most limit bytes of its body into v.
// ctx bounds the whole exchange, body included.
func getJSON(ctx context.Context, target string, limit int64, v any) (int, error) {
	return doJSON(ctx, http.MethodGet, target, nil, limit, v)
}

// postJSON POSTs body as JSON to target and decodes at most limit bytes of
// the answer into v, whatever the status, which it returns.
func postJSON(ctx context.Context, target string, body any, limit int64, v any) (int, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return 0, fmt.Errorf("POST %s: encode: %w", target, err)
	}
	return doJSON(ctx, http.MethodPost, target, b, limit, v)
}

func doJSON(ctx context.Context, method, target string, body []byte, limit int64, v any) (int, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", method, target, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := newLocalClient().Do(req)
	if err != nil {
		return 0, err // *url.Error names the method and URL
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("%s %s: read body: %w", method, target, err)
	}
	if int64(len(raw)) > limit {
		return resp.StatusCode, fmt.Errorf("%s %s: answer larger than %d bytes", method, target, limit)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return resp.StatusCode, fmt.Errorf("%s %s (status %d): decode answer: %w", method, target, resp.StatusCode, err)
	}
	return resp.StatusCode, nil
}
