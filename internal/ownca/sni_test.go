package ownca_test

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/outgate/outgate/internal/ownca"
)

// TestClientHelloChoosesNothing: whatever a client puts in its ClientHello
// (another site's name, an IP, no SNI, the ACME challenge protocol), an
// instance without a domain serves the one certificate for the
// deployment's IPs, which the CA vouches for under no name: a client
// cannot get anything signed for a name of its choosing, and a caller
// trusting the CA never accepts it for a site.
func TestClientHelloChoosesNothing(t *testing.T) {
	ca, pool := loadCA(t)
	ips := []netip.Addr{netip.MustParseAddr("203.0.113.10"), netip.MustParseAddr("203.0.113.11")}
	m, err := ownca.NewMinter(ca, ips)
	if err != nil {
		t.Fatal(err)
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", m.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				c.(*tls.Conn).Handshake()
			}()
		}
	}()
	for _, hello := range []struct {
		name   string
		sni    string
		protos []string
	}{
		{"another site", "bank.example", nil},
		{"no SNI", "", nil},
		{"an IP as SNI", "198.51.100.1", nil},
		{"acme-tls/1 for another site", "bank.example", []string{"acme-tls/1"}},
	} {
		t.Run(hello.name, func(t *testing.T) {
			raw, err := net.DialTimeout("tcp", l.Addr().String(), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			raw.SetDeadline(time.Now().Add(10 * time.Second))
			// Take what is served without judging it here.
			c := tls.Client(raw, &tls.Config{ServerName: hello.sni, NextProtos: hello.protos, InsecureSkipVerify: true})
			if err := c.Handshake(); err != nil {
				return // nothing served
			}
			leaf := c.ConnectionState().PeerCertificates[0]
			var got []netip.Addr
			for _, ip := range leaf.IPAddresses {
				a, _ := netip.AddrFromSlice(ip)
				got = append(got, a.Unmap())
			}
			if len(leaf.DNSNames) != 0 || !slices.Equal(got, ips) || c.ConnectionState().NegotiatedProtocol == "acme-tls/1" {
				t.Errorf("served names %v, IPs %v, protocol %q", leaf.DNSNames, got, c.ConnectionState().NegotiatedProtocol)
			}
			if hello.sni != "" {
				if _, err := leaf.Verify(x509VerifyFor(pool, hello.sni)); err == nil {
					t.Errorf("the served certificate verifies for %s", hello.sni)
				}
			}
		})
	}
}

func x509VerifyFor(pool *x509.CertPool, name string) x509.VerifyOptions {
	return x509.VerifyOptions{Roots: pool, DNSName: name}
}
