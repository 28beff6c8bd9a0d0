package ownca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/netip"
	"testing"
	"time"
)

// TestCAVouchesForNoName: callers add the CA to their roots, so a leaf it
// signs for a DNS name (a partner's, say) must not verify, whoever holds
// the key; leaves for IPs do.
func TestCAVouchesForNoName(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := newCACert("prod", key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	ca := &CA{Cert: cert, key: key}
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	now := time.Now()

	ipLeaf, err := ca.Leaf([]netip.Addr{netip.MustParseAddr("203.0.113.10")}, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ipLeaf.Leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: "203.0.113.10"}); err != nil {
		t.Errorf("IP leaf: %v", err)
	}

	lkey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "api.partner.example"},
		NotBefore: now.Add(-time.Minute), NotAfter: now.Add(time.Hour),
		DNSNames: []string{"api.partner.example"}, IPAddresses: []net.IP{net.ParseIP("203.0.113.10")},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	nd, err := x509.CreateCertificate(rand.Reader, tmpl, cert, lkey.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	named, _ := x509.ParseCertificate(nd)
	if _, err := named.Verify(x509.VerifyOptions{Roots: roots, DNSName: "api.partner.example"}); err == nil {
		t.Error("a leaf for a DNS name signed by the deployment's CA verifies")
	}
}
