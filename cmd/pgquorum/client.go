package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/spf13/pflag"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/auth"
	"github.com/pgquorum/pgquorum/config"
)

// defaultLocalURL is where the CLI finds the local pgquorum.
var defaultLocalURL = "http://127.0.0.1:" + strconv.Itoa(api.DefaultPort)

// localFlags are the --url, --config and --timeout of every command that
// asks a pgquorum over HTTP. Commands call target() and send every request
// through the target it returns: that is how a command gets the node's TLS
// material and admin token without anyone typing a token on a command line.
type localFlags struct {
	url     string
	config  string
	timeout time.Duration
	// TLS material of a host that is no node (an HAProxy host asking every
	// node's https:// URL): the CA of the nodes' certificates and, for
	// server.tls_client_auth required, a client certificate.
	caFile, certFile, keyFile string
}

func (f *localFlags) register(fs *pflag.FlagSet, timeout time.Duration) {
	fs.StringVar(&f.url, "url", defaultLocalURL, "base URL of the pgquorum to ask (default with --config: from server.listen)")
	fs.StringVar(&f.config, "config", "", "the node's pgquorum config: URL, TLS material and admin token come from it")
	fs.DurationVar(&f.timeout, "timeout", timeout, "bound of the whole call")
	fs.StringVar(&f.caFile, "ca-file", "", "without --config: PEM CA certificates that sign the pgquorum's certificate (https:// URLs)")
	fs.StringVar(&f.certFile, "cert", "", "without --config: PEM client certificate to show (with --key)")
	fs.StringVar(&f.keyFile, "key", "", "without --config: PEM key of --cert")
}

// target is a pgquorum to ask: its base URL, a client holding the TLS
// material to ask it with, and the admin token each request carries.
type target struct {
	base    *url.URL
	timeout time.Duration
	client  *http.Client
	token   auth.Secret // sent as "Authorization: Bearer"; "": none
}

// target checks the flags and returns what they designate: --url alone, or
// the node's own pgquorum as its --config file describes it (--url, when
// given too, only changes the address).
func (f localFlags) target(urlSet bool) (target, error) {
	if f.timeout <= 0 {
		return target{}, fmt.Errorf("--timeout: want a positive duration, got %s", f.timeout)
	}
	if f.config == "" {
		u, err := parseBaseURL(f.url)
		if err != nil {
			return target{}, err
		}
		tc, err := f.tlsConfig()
		if err != nil {
			return target{}, err
		}
		return target{base: u, timeout: f.timeout, client: newLocalClient(tc)}, nil
	}
	if f.caFile != "" || f.certFile != "" || f.keyFile != "" {
		return target{}, fmt.Errorf("--ca-file, --cert, --key: not with --config, which gives the node's own")
	}
	cfg, err := config.Load(config.NewViper(pflag.NewFlagSet("config", pflag.ContinueOnError)), f.config, os.Environ())
	if err != nil {
		return target{}, fmt.Errorf("--config %s:\n%w", f.config, err)
	}
	t, err := targetFromConfig(cfg)
	if err != nil {
		return target{}, fmt.Errorf("--config %s: %w", f.config, err)
	}
	t.timeout = f.timeout
	if urlSet {
		if t.base, err = parseBaseURL(f.url); err != nil {
			return target{}, err
		}
		// A token goes only where it cannot be read on the way nor kept
		// by a stranger: to loopback, or over TLS verified as above.
		if t.token != "" && t.base.Scheme != "https" && !isLoopbackHost(t.base.Hostname()) {
			return target{}, fmt.Errorf("--url %s: the admin token of --config is sent over HTTPS or to loopback only", f.url)
		}
	}
	return t, nil
}

// tlsConfig is the TLS material of --ca-file, --cert and --key; nil when
// none is given (the system's CAs then verify an https:// URL).
func (f localFlags) tlsConfig() (*tls.Config, error) {
	if f.caFile == "" && f.certFile == "" && f.keyFile == "" {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if f.caFile != "" {
		pool, err := auth.ReadCAs(f.caFile)
		if err != nil {
			return nil, fmt.Errorf("--ca-file: %w", err)
		}
		tc.RootCAs = pool
	}
	if (f.certFile == "") != (f.keyFile == "") {
		return nil, fmt.Errorf("--cert, --key: want both or neither")
	}
	if f.certFile != "" {
		c, err := auth.ReadKeyPair(f.certFile, f.keyFile)
		if err != nil {
			return nil, fmt.Errorf("--cert, --key: %w", err)
		}
		tc.Certificates = []tls.Certificate{*c}
	}
	return tc, nil
}

// targetFromConfig is how a command on the node reaches its own pgquorum,
// as its configuration describes it: server.listen (on loopback when it
// listens on every address), over HTTPS with the node's own TLS material
// when server.tls_cert is set, with server.admin_token.
func targetFromConfig(cfg config.Config) (target, error) {
	host, port, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return target{}, fmt.Errorf("server.listen: %w", err)
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	t := target{base: &url.URL{Scheme: "http", Host: net.JoinHostPort(host, port)}, token: cfg.Security.AdminToken}
	if !cfg.Security.ServerTLS() {
		t.client = newLocalClient(nil)
		return t, nil
	}
	m, err := auth.Load(cfg.Security.Files(cfg.NodeName))
	if err != nil {
		return target{}, err
	}
	t.base.Scheme = "https"
	t.client = newLocalClient(m.LocalClientTLS())
	return t, nil
}

// parseBaseURL checks a --url flag: http(s)://host:port, nothing else.
func parseBaseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--url: want http://host:port, got %q", raw)
	}
	return u, nil
}

func isLoopbackHost(h string) bool {
	ip := net.ParseIP(h)
	return h == "localhost" || (ip != nil && ip.IsLoopback())
}

// newLocalClient never uses a proxy (pgquorum is asked directly; the
// environment of keepalived or cron may carry an http_proxy) and never
// follows a redirect (a node answers for itself).
func newLocalClient(tc *tls.Config) *http.Client {
	return &http.Client{
		Transport:     &http.Transport{Proxy: nil, DisableKeepAlives: true, TLSClientConfig: tc},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// newRequest builds a request for path under the target's base URL,
// bearing its token.
func (t target) newRequest(ctx context.Context, method, path string, body io.Reader) (*http.Request, error) {
	target := t.base.JoinPath(path).String()
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, target, err)
	}
	if t.token != "" {
		req.Header.Set("Authorization", "Bearer "+string(t.token))
	}
	return req, nil
}

// do sends req; the request's context bounds the whole exchange.
func (t target) do(req *http.Request) (*http.Response, error) {
	return t.client.Do(req) // *url.Error names the method and URL
}

// getJSON GETs path and decodes at most limit bytes of its body into v.
// ctx bounds the whole exchange, body included.
func (t target) getJSON(ctx context.Context, path string, limit int64, v any) (int, error) {
	return t.doJSON(ctx, http.MethodGet, path, nil, limit, v)
}

// postJSON POSTs body as JSON to path and decodes at most limit bytes of
// the answer into v, whatever the status, which it returns.
func (t target) postJSON(ctx context.Context, path string, body any, limit int64, v any) (int, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return 0, fmt.Errorf("POST %s: encode: %w", path, err)
	}
	return t.doJSON(ctx, http.MethodPost, path, b, limit, v)
}

func (t target) doJSON(ctx context.Context, method, path string, body []byte, limit int64, v any) (int, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := t.newRequest(ctx, method, path, rd)
	if err != nil {
		return 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := t.do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("%s %s: read body: %w", method, req.URL, err)
	}
	if int64(len(raw)) > limit {
		return resp.StatusCode, fmt.Errorf("%s %s: answer larger than %d bytes", method, req.URL, limit)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return resp.StatusCode, fmt.Errorf("%s %s (status %d): decode answer: %w", method, req.URL, resp.StatusCode, err)
	}
	return resp.StatusCode, nil
}
