// Package testutil has helpers shared by outgate's tests: finding required
// tools (which must fail, not skip, under CI=true), a DNS server whose answers
// the test controls, and TLS upstreams whose CA the gateway can trust.
package testutil

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// InCI reports whether the tests run under CI (CI=true), where a missing tool
// or privilege is a failure rather than a reason to skip.
func InCI() bool { return os.Getenv("CI") == "true" }

// Unavailable skips the test, or fails it under CI.
func Unavailable(t testing.TB, why string) {
	t.Helper()
	if InCI() {
		t.Fatalf("%s (CI=true: tests that need it must run)", why)
	}
	t.Skip(why)
}

// Tool returns the path of a command on PATH, or stops the test (see Unavailable).
func Tool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Unavailable(t, name+" is not installed")
	}
	return p
}

// Root stops the test unless it runs as root (see Unavailable).
func Root(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Unavailable(t, "this test needs root (network namespaces)")
	}
}

// WriteCA writes the certificate of a TLS httptest server as PEM, for
// network.ca_files, and returns the file's path.
func WriteCA(t testing.TB, srv *httptest.Server) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ca.pem")
	data := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Resolver returns a Go resolver that asks only the DNS server at addr.
func Resolver(addr string) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
}

// TLSConfig trusts only the CA in the PEM file at path.
func TLSConfig(path string) *tls.Config {
	pool := x509.NewCertPool()
	if data, err := os.ReadFile(path); err == nil {
		pool.AppendCertsFromPEM(data)
	}
	return &tls.Config{RootCAs: pool}
}
