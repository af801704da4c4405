package auth

import (
	"crypto/x509"
	"slices"
)

// CertNames returns the names a certificate vouches for: its DNS subject
// alternative names, or, when it has none, its subject's common name, as TLS
// clients read certificates before SANs were required. A node's certificate
// names the node by its repmgr node_name.
func CertNames(c *x509.Certificate) []string {
	if c == nil {
		return nil
	}
	if len(c.DNSNames) > 0 {
		return c.DNSNames
	}
	if c.Subject.CommonName != "" {
		return []string{c.Subject.CommonName}
	}
	return nil
}

// Names tells whether c vouches for name. The comparison is exact: repmgr
// node names are case-sensitive, and "node1" must not pass for "Node1".
func Names(c *x509.Certificate, name string) bool {
	return name != "" && slices.Contains(CertNames(c), name)
}

// verifyChain checks that chain (leaf first, as presented in a handshake)
// leads to one of roots for usage, whatever host name the leaf carries:
// pgquorum matches names itself, against node names, not against the
// address it dialled.
func verifyChain(chain []*x509.Certificate, roots *x509.CertPool, usage x509.ExtKeyUsage) error {
	if len(chain) == 0 {
		return errNoCertificate
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}})
	return err
}
