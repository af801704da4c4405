package client

import (
	"fmt"
	"net"
	"net/url"
)

// ParseBaseURL checks a base URL: http(s)://host:port, nothing else.
func ParseBaseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("want http://host:port, got %q", raw)
	}
	return u, nil
}

// ListenURL is the base URL of a pgquorum that listens on listen
// (server.listen) as seen from its own host: on loopback when it listens on
// every address; https when tls is set.
func ListenURL(listen string, tls bool) (*url.URL, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, err
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	u := &url.URL{Scheme: "http", Host: net.JoinHostPort(host, port)}
	if tls {
		u.Scheme = "https"
	}
	return u, nil
}

// IsLoopbackHost tells whether h (a URL's host, without port) is this
// host's loopback.
func IsLoopbackHost(h string) bool {
	ip := net.ParseIP(h)
	return h == "localhost" || (ip != nil && ip.IsLoopback())
}
