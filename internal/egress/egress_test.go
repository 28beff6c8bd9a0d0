package egress

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
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
