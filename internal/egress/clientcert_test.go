package egress

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/outgate/outgate/internal/testutil"
)

// mtlsPartner is a loopback TLS partner that requires a client certificate
// from ca (the handshake fails without one) and answers with the common
// name it saw and the connection that carried the request.
func mtlsPartner(t *testing.T, ca *testutil.ClientCA, h2 bool) (*httptest.Server, func() int) {
	var mu sync.Mutex
	conns := map[string]bool{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		conns[r.RemoteAddr] = true
		mu.Unlock()
		fmt.Fprintf(w, "%s %s", r.TLS.PeerCertificates[0].Subject.CommonName, r.RemoteAddr)
	}))
	srv.EnableHTTP2 = h2
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.Pool}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, func() int { mu.Lock(); defer mu.Unlock(); return len(conns) }
}

func clientCert(t *testing.T, ca *testutil.ClientCA, cn, slot string) *ClientCert {
	certPEM, keyPEM := ca.Issue(t, cn)
	pair, err := tls.X509KeyPair([]byte(certPEM), []byte(keyPEM))
	if err != nil {
		t.Fatal(err)
	}
	return &ClientCert{ID: slot + "/" + cn, Slot: slot, Cert: &pair}
}

// TestClientCertPools: a connection made with one upstream's client
// certificate carries only requests with that same certificate, from the
// same tenant: never another upstream's (another certificate, or none) and
// never after the certificate rotated; requests with the same certificate
// do reuse it. Over HTTP/1.1 (internal/h1's pool, after the first request's
// single-use connection) and HTTP/2 (the per-tenant Transports).
func TestClientCertPools(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		t.Run(fmt.Sprintf("h2=%v", h2), func(t *testing.T) {
			ca := testutil.NewClientCA(t)
			srv, conns := mtlsPartner(t, ca, h2)
			e := newEgress(t, fmt.Sprintf("{allow_cidrs: [127.0.0.0/8], ca_files: [%s]}", testutil.WriteCA(t, srv)))
			a := clientCert(t, ca, "pay-a", "pay")
			b := clientCert(t, ca, "other-b", "other")
			rotated := clientCert(t, ca, "pay-a2", "pay")

			get := func(rt http.RoundTripper) (cn, conn string, err error) {
				req, _ := http.NewRequest("GET", srv.URL+"/x", nil)
				resp, err := rt.RoundTrip(req)
				if err != nil {
					return "", "", err
				}
				defer resp.Body.Close()
				body, _ := io.ReadAll(resp.Body)
				_, err = fmt.Sscan(string(body), &cn, &conn)
				return cn, conn, err
			}
			tenant := e.For("billing")
			// The first request learns the protocol (single-use connection).
			if cn, _, err := get(tenant.WithCert(a)); err != nil || cn != "pay-a" {
				t.Fatalf("first request with a: %q, %v", cn, err)
			}
			cn1, conn1, err := get(tenant.WithCert(a))
			if err != nil || cn1 != "pay-a" {
				t.Fatalf("with a: %q, %v", cn1, err)
			}
			if cn, conn, err := get(tenant.WithCert(a)); err != nil || cn != "pay-a" || conn != conn1 {
				t.Errorf("a again: %q on %s, %v; want pay-a reusing %s", cn, conn, err, conn1)
			}
			opened := conns()
			if _, _, err := get(tenant); err == nil {
				t.Error("a request without a certificate was answered: it went over a connection made with one")
			}
			if cn, conn, err := get(tenant.WithCert(b)); err != nil || cn != "other-b" || conn == conn1 {
				t.Errorf("with b: %q on %s, %v; want other-b on a new connection", cn, conn, err)
			}
			if cn, _, err := get(e.For("sms").WithCert(a)); err != nil || cn != "pay-a" || conns() < opened+2 {
				t.Errorf("another tenant with a: %q, %v, %d connections (was %d)", cn, err, conns(), opened)
			}
			if cn, conn, err := get(tenant.WithCert(rotated)); err != nil || cn != "pay-a2" || conn == conn1 {
				t.Errorf("after rotation: %q on %s, %v; want pay-a2 on a new connection", cn, conn, err)
			}
		})
	}
}
