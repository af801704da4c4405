package tests

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/auth/testpki"
	"github.com/pgquorum/pgquorum/internal/lab"
)

// TestHAProxyChecksOverTLS: every pgquorum serves HTTPS requiring a client
// certificate; HAProxy, rendered with --check-ssl --ca-file --crt, checks
// them over TLS and follows the verdicts. node3's check is pointed at
// node2's pgquorum: its certificate names node2, not node3, and HAProxy
// keeps node3 out although what answers there says 202. Rendered without
// --crt, HAProxy's checks are refused and every server goes DOWN.
func TestHAProxyChecksOverTLS(t *testing.T) {
	t.Parallel()
	p, c := startTLSCluster(t, "required", func(p *testPKI) *tls.Certificate { return p.cert(t, p.clients, "lab") })
	n1, n2 := c.Node("node1"), c.Node("node2")

	leaf, err := p.clients.Issue(testpki.Options{CN: "haproxy", Usages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err != nil {
		t.Fatal(err)
	}
	crt := p.path("haproxy.pem") // HAProxy wants the certificate and its key in one file
	if err := os.WriteFile(crt, append(leaf.CertPEM, leaf.KeyPEM...), 0o600); err != nil {
		t.Fatal(err)
	}
	tlsArgs := []string{"--check-ssl", "--ca-file", p.path("nodes-ca.crt")}
	timings := lab.HAProxyTimings{Inter: hapInter, Fall: hapFall, Rise: hapRise}
	start := func(args ...string) *labHAProxy {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		h, l, err := c.StartHAProxyFromRepmgr(ctx, pgquorumBin, timings, args...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(h.Stop)
		return &labHAProxy{HAProxy: h, rw: l.RW, ro: l.RO}
	}

	h := start(append(tlsArgs, "--crt", crt, "--node-check-port", fmt.Sprintf("node3=%d", n2.QuorumPort))...)
	h.waitStatus(t, map[string]string{"postgres_rw/node1": "UP", "postgres_rw/node2": "DOWN", "postgres_ro/node2": "UP", "postgres_ro/node3": "DOWN"})
	stats, err := h.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"postgres_rw/node1", "postgres_ro/node2"} {
		// "* " marks a check in progress; the status after it is the last result.
		if s := stats[key]; strings.TrimPrefix(s.CheckStatus, "* ") != "L7OK" {
			t.Errorf("%s: check %s %d, want L7OK over TLS", key, s.CheckStatus, s.CheckCode)
		}
	}
	t.Logf("node3 checked at node2's pgquorum: %s (check %s)", stats["postgres_ro/node3"].Status, stats["postgres_ro/node3"].CheckStatus)
	assertAllLandOn(t, h.rw, 5, readSQL, n1)
	h.Stop()

	h = start(tlsArgs...)
	h.waitStatus(t, map[string]string{"postgres_rw/node1": "DOWN", "postgres_ro/node2": "DOWN", "postgres_ro/node3": "DOWN"})
}
