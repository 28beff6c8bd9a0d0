package egress

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/outgate/outgate/internal/config"
	"github.com/outgate/outgate/internal/netguard"
	"github.com/outgate/outgate/internal/testutil"
)

func newEgress(t *testing.T, network string) *Egress {
	t.Helper()
	cfg, err := config.Parse([]byte(fmt.Sprintf(`
listen: 127.0.0.1:0
upstreams: {a: {url: "http://a.example"}}
clients: [{name: c, key_sha256: %s, upstreams: [a]}]
network: %s
`, strings.Repeat("ab", 32), network)), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.CloseIdleConnections)
	return e
}

func protoServer(t *testing.T, tls, h2 bool) *httptest.Server {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "proto %d body %d %q", r.ProtoMajor, len(b), r.TransferEncoding)
	}))
	srv.EnableHTTP2 = h2
	if tls {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return srv
}

func send(t *testing.T, e *Egress, method, url string, body io.Reader, length int64) string {
	t.Helper()
	req, _ := http.NewRequest(method, url, body)
	req.ContentLength = length
	resp, err := e.RoundTrip(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestRouting: which client carries what. The HTTP/1.1 client's pool is
// the witness: a request it carried leaves an idle connection there.
func TestRouting(t *testing.T) {
	h1tls := protoServer(t, true, false)
	h2tls := protoServer(t, true, true)
	plain := protoServer(t, false, false)
	e := newEgress(t, fmt.Sprintf("{allow_cidrs: [127.0.0.0/8], ca_files: [%s, %s]}", testutil.WriteCA(t, h1tls), testutil.WriteCA(t, h2tls)))

	if got := send(t, e, "GET", plain.URL, nil, 0); got != `proto 1 body 0 []` || e.H1.Idle() != 1 {
		t.Fatalf("plain http: %q, pooled %d", got, e.H1.Idle())
	}
	// A streamed body goes through http.Transport, still chunked.
	if got := send(t, e, "POST", plain.URL, io.NopCloser(strings.NewReader("abc")), -1); got != `proto 1 body 3 ["chunked"]` || e.H1.Idle() != 1 {
		t.Fatalf("streamed body: %q, pooled %d", got, e.H1.Idle())
	}
	// An HTTP/2 partner stays on HTTP/2.
	for range 3 {
		if got := send(t, e, "GET", h2tls.URL, nil, 0); got != `proto 2 body 0 []` || e.H1.Idle() != 1 {
			t.Fatalf("http/2 partner: %q, pooled %d", got, e.H1.Idle())
		}
	}
	// An https partner that answers in HTTP/1.1 moves to the lean client
	// from its second request on.
	if got := send(t, e, "GET", h1tls.URL, nil, 0); got != `proto 1 body 0 []` || e.H1.Idle() != 1 {
		t.Fatalf("first request to an http/1.1 partner: %q, pooled %d", got, e.H1.Idle())
	}
	for range 2 {
		if got := send(t, e, "POST", h1tls.URL, strings.NewReader("abcd"), 4); got != `proto 1 body 4 []` || e.H1.Idle() != 2 {
			t.Fatalf("next request to an http/1.1 partner: %q, pooled %d", got, e.H1.Idle())
		}
	}
}

// TestPolicyOnBothClients: the address policy holds whichever client
// carries the request.
func TestPolicyOnBothClients(t *testing.T) {
	plain := protoServer(t, false, false)
	e := newEgress(t, "{}") // loopback is not allowed by default
	for _, tt := range []struct {
		body   io.Reader
		length int64
	}{{nil, 0}, {io.NopCloser(strings.NewReader("x")), -1}} {
		req, _ := http.NewRequest("POST", plain.URL, tt.body)
		req.ContentLength = tt.length
		_, err := e.RoundTrip(req)
		var be *netguard.BlockedError
		if !errors.As(err, &be) {
			t.Errorf("body length %d: err = %v, want the destination blocked", tt.length, err)
		}
	}
}

// countConns makes srv count the connections it accepts.
func countConns(srv *httptest.Server) *atomic.Int32 {
	var n atomic.Int32
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			n.Add(1)
		}
	}
	return &n
}

func startCounted(t *testing.T, useTLS, h2 bool) (*httptest.Server, *atomic.Int32) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "proto %d body %d", r.ProtoMajor, len(b))
	}))
	n := countConns(srv)
	srv.EnableHTTP2 = h2
	if useTLS {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return srv, n
}

// TestTransportNeverReusesHTTP1: http.Transport cannot tell whether bytes
// came after a response, so an HTTP/1.1 connection it carried a request on
// (a streamed body, an https partner's first request) is never used again.
func TestTransportNeverReusesHTTP1(t *testing.T) {
	plain, plainConns := startCounted(t, false, false)
	h1tls, tlsConns := startCounted(t, true, false)
	e := newEgress(t, fmt.Sprintf("{allow_cidrs: [127.0.0.0/8], ca_files: [%s]}", testutil.WriteCA(t, h1tls)))
	for _, srv := range []*httptest.Server{plain, h1tls} {
		for range 3 {
			if got := send(t, e, "POST", srv.URL, io.NopCloser(strings.NewReader("abc")), -1); got != "proto 1 body 3" {
				t.Fatalf("streamed body: %q", got)
			}
		}
	}
	if plainConns.Load() != 3 || tlsConns.Load() != 3 {
		t.Errorf("%d and %d connections for 3 streamed bodies each over http and https, want 3 and 3",
			plainConns.Load(), tlsConns.Load())
	}
	if e.H1.Idle() != 0 {
		t.Errorf("%d idle connections in the HTTP/1.1 client, want none", e.H1.Idle())
	}
}

// TestTenantsDoNotShareConnections: requests of different tenants never
// travel on the same upstream connection, over HTTP/1.1 or HTTP/2.
func TestTenantsDoNotShareConnections(t *testing.T) {
	plain, plainConns := startCounted(t, false, false)
	h2tls, h2Conns := startCounted(t, true, true)
	e := newEgress(t, fmt.Sprintf("{allow_cidrs: [127.0.0.0/8], ca_files: [%s]}", testutil.WriteCA(t, h2tls)))
	if got := send(t, e, "GET", h2tls.URL, nil, 0); got != "proto 2 body 0" {
		t.Fatalf("first request to the HTTP/2 partner: %q", got)
	}
	for range 2 {
		for _, tenant := range []string{"a", "b"} {
			for _, srv := range []*httptest.Server{plain, h2tls} {
				req, _ := http.NewRequest("GET", srv.URL, nil)
				resp, err := e.For(tenant).RoundTrip(req)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}
	}
	// One connection per tenant to each partner, plus the HTTP/2
	// partner's first one (single use: its protocol was not known yet).
	if plainConns.Load() != 2 || h2Conns.Load() != 3 {
		t.Errorf("%d connections to the http partner (want 2) and %d to the HTTP/2 partner (want 3)",
			plainConns.Load(), h2Conns.Load())
	}
}

// TestPartnerStopsOfferingHTTP2: an upstream known to speak HTTP/2 that
// offers only HTTP/1.1 on a new connection gets the request over HTTP/1.1,
// sent once, body and all.
func TestPartnerStopsOfferingHTTP2(t *testing.T) {
	h1tls, conns := startCounted(t, true, false)
	e := newEgress(t, fmt.Sprintf("{allow_cidrs: [127.0.0.0/8], ca_files: [%s]}", testutil.WriteCA(t, h1tls)))
	e.learn(strings.TrimPrefix(h1tls.URL, "https://"), 2)
	if got := send(t, e, "POST", h1tls.URL, io.NopCloser(strings.NewReader("abcd")), -1); got != "proto 1 body 4" {
		t.Fatalf("streamed POST: %q", got)
	}
	if got := send(t, e, "GET", h1tls.URL, nil, 0); got != "proto 1 body 0" || e.H1.Idle() != 1 {
		t.Fatalf("GET after: %q, %d idle", got, e.H1.Idle())
	}
	// The refused HTTP/2 dial, the single-use POST, the GET's connection.
	if n := conns.Load(); n != 3 {
		t.Errorf("%d connections, want 3", n)
	}
}
