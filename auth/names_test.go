package auth

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"testing"
)

func TestNames(t *testing.T) {
	tests := []struct {
		name string
		cert *x509.Certificate
		node string
		want bool
	}{
		{"DNS SAN names the node", &x509.Certificate{DNSNames: []string{"node1"}}, "node1", true},
		{"one of several DNS SANs names the node", &x509.Certificate{DNSNames: []string{"db1.example", "node1"}}, "node1", true},
		{"CN without SANs names the node", &x509.Certificate{Subject: pkix.Name{CommonName: "node1"}}, "node1", true},
		{"CN is ignored when there are SANs", &x509.Certificate{Subject: pkix.Name{CommonName: "node1"}, DNSNames: []string{"node2"}}, "node1", false},
		{"another node's SAN", &x509.Certificate{DNSNames: []string{"node2"}}, "node1", false},
		{"case differs", &x509.Certificate{DNSNames: []string{"Node1"}}, "node1", false},
		{"prefix is not the name", &x509.Certificate{DNSNames: []string{"node10"}}, "node1", false},
		{"wildcard is not expanded", &x509.Certificate{DNSNames: []string{"*"}}, "node1", false},
		{"no names at all", &x509.Certificate{}, "node1", false},
		{"empty node name never matches", &x509.Certificate{Subject: pkix.Name{CommonName: ""}}, "", false},
		{"nil certificate", nil, "node1", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Names(tt.cert, tt.node); got != tt.want {
				t.Errorf("Names(%v, %q) = %t, want %t", CertNames(tt.cert), tt.node, got, tt.want)
			}
		})
	}
}

func TestSecretRedactsAndMatches(t *testing.T) {
	s := Secret("0123456789abcdef")
	if s.String() != "[redacted]" || Secret("").String() != "" {
		t.Errorf("String() = %q / %q", s.String(), Secret("").String())
	}
	for _, tt := range []struct {
		presented string
		want      bool
	}{{"0123456789abcdef", true}, {"0123456789abcdeg", false}, {"0123456789abcde", false}, {"", false}} {
		if got := s.Matches(tt.presented); got != tt.want {
			t.Errorf("Matches(%q) = %t, want %t", tt.presented, got, tt.want)
		}
	}
	if Secret("").Matches("") {
		t.Error("an unset secret matched the empty string")
	}
}
