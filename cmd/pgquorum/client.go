package main

import (
	"crypto/tls"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/spf13/pflag"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/auth"
	"github.com/pgquorum/pgquorum/client"
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

// target is a pgquorum to ask: its base URL, the TLS material to ask it
// with, and the admin token each request carries.
type target struct {
	base    *url.URL
	timeout time.Duration
	tls     *tls.Config // nil: the system's CAs verify an https:// URL
	token   auth.Secret // sent as "Authorization: Bearer"; "": none
}

// node is the pgquorum of t, through the one client of pgquorum's API.
// --timeout bounds every call, and is the client's backstop too.
func (t target) node() client.Node {
	return client.New(client.Options{TLS: t.tls, AdminToken: t.token, Backstop: t.timeout}).Node(t.base)
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
		return target{base: u, timeout: f.timeout, tls: tc}, nil
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
		if t.token != "" && t.base.Scheme != "https" && !client.IsLoopbackHost(t.base.Hostname()) {
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
	base, err := client.ListenURL(cfg.Listen, cfg.Security.ServerTLS())
	if err != nil {
		return target{}, fmt.Errorf("server.listen: %w", err)
	}
	t := target{base: base, token: cfg.Security.AdminToken}
	if !cfg.Security.ServerTLS() {
		return t, nil
	}
	m, err := auth.Load(cfg.Security.Files(cfg.NodeName))
	if err != nil {
		return target{}, err
	}
	t.tls = m.LocalClientTLS()
	return t, nil
}

// parseBaseURL checks a --url flag: http(s)://host:port, nothing else.
func parseBaseURL(raw string) (*url.URL, error) {
	u, err := client.ParseBaseURL(raw)
	if err != nil {
		return nil, fmt.Errorf("--url: %w", err)
	}
	return u, nil
}
