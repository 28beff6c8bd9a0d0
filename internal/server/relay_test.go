package server_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outgate/outgate/internal/testutil"
)

// partner is a TLS upstream that records what it received.
type partner struct {
	*httptest.Server
	ca    string
	last  atomic.Pointer[http.Request]
	conns atomic.Int64 // connections open to the partner now
}

func newPartner(t *testing.T, h http.HandlerFunc) *partner {
	p := &partner{}
	p.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.last.Store(r)
		h(w, r)
	}))
	p.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			p.conns.Add(1)
		case http.StateClosed, http.StateHijacked:
			p.conns.Add(-1)
		}
	}
	p.StartTLS()
	t.Cleanup(p.Close)
	p.ca = testutil.WriteCA(t, p.Server)
	return p
}

// relayConfig is a config with upstreams on p; clientExtra goes under the
// first client (more keys, or more clients), topExtra at the end.
func relayConfig(p *partner, c client, clientExtra, topExtra string) string {
	return fmt.Sprintf(`
listen: 127.0.0.1:0
upstreams:
  partner:
    url: %s/v2
  other:
    url: %s
  metadata:
    url: http://169.254.169.254/latest
clients:
  - name: %s
    key_sha256: %s
    upstreams: [partner, metadata]
%snetwork:
  allow_cidrs: [127.0.0.0/8]
  ca_files: [%s]
%s`, p.URL, p.URL, c.name, c.hash, clientExtra, p.ca, topExtra)
}

func relayReq(t *testing.T, g *gateway, method, path, key string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+g.Relay+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Outgate-Key", key)
	}
	return req
}

func TestRelayForwardsFaithfully(t *testing.T) {
	p := newPartner(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Partner", "yes")
		w.Header().Set("Connection", "X-Partner-Hop")
		w.Header().Set("X-Partner-Hop", "must not pass")
		w.Header().Add("Set-Cookie", "a=1")
		w.Header().Add("Set-Cookie", "b=2")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, "got %s %d bytes", r.Method, len(body))
	})
	c := newClient("billing")
	g := start(t, relayConfig(p, c, "", ""))
	// An https partner's first request goes on a connection of its own,
	// with Connection: close, and Go's server then replaces the handler's
	// Connection header: the hop-by-hop check needs the steady state.
	do(t, nil, relayReq(t, g, "GET", "/partner/", c.key, nil))

	req := relayReq(t, g, "POST", "/partner/payments/a%2Fb?amount=10&currency=KRW", c.key, strings.NewReader(`{"x":1}`))
	req.Header.Set("Idempotency-Key", "pay-123")
	req.Header.Set("Authorization", "Bearer partner-token")
	req.Header.Set("Connection", "X-Client-Hop")
	req.Header.Set("X-Client-Hop", "secret")
	req.Header.Set("Proxy-Authorization", "Basic eDp5")
	req.Header.Set("X-Forwarded-For", "198.51.100.1") // the client's own claim stays behind too
	resp, body := do(t, nil, req)

	if resp.StatusCode != http.StatusCreated || body != "got POST 7 bytes" {
		t.Fatalf("response %d %q", resp.StatusCode, body)
	}
	if resp.Header.Get("X-Partner") != "yes" || resp.Header.Get("X-Partner-Hop") != "" || resp.Header.Get("Outgate-Error") != "" {
		t.Errorf("response headers: %v", resp.Header)
	}
	if got := resp.Header.Values("Set-Cookie"); len(got) != 2 {
		t.Errorf("Set-Cookie = %v, want both cookies", got)
	}
	id := resp.Header.Get("Outgate-Request-Id")
	if len(id) != 32 {
		t.Errorf("Outgate-Request-Id = %q", id)
	}
	in := p.last.Load()
	if in.URL.EscapedPath() != "/v2/payments/a%2Fb" || in.URL.RawQuery != "amount=10&currency=KRW" {
		t.Errorf("partner saw %s ? %s", in.URL.EscapedPath(), in.URL.RawQuery)
	}
	if in.Host != strings.TrimPrefix(p.URL, "https://") {
		t.Errorf("partner saw Host %q, want its own host", in.Host)
	}
	for _, h := range []string{"Outgate-Key", "X-Client-Hop", "Proxy-Authorization", "Outgate-Request-Id"} {
		if v := in.Header.Get(h); v != "" {
			t.Errorf("partner received %s: %q", h, v)
		}
	}
	if in.Header.Get("Idempotency-Key") != "pay-123" || in.Header.Get("Authorization") != "Bearer partner-token" {
		t.Errorf("end-to-end headers lost: %v", in.Header)
	}
	// The gateway adds nothing that reveals the client, and drops what the
	// client claimed (headers_test.go has the whole list).
	if v := in.Header.Values("X-Forwarded-For"); len(v) != 0 {
		t.Errorf("X-Forwarded-For = %v: the gateway must neither add the client's address nor pass on its claim", v)
	}
	if in.Header.Get("Forwarded") != "" || in.Header.Get("Via") != "" {
		t.Errorf("the gateway added Forwarded/Via: %v", in.Header)
	}

	a := g.logs.audit(t, id)
	want := map[string]any{"mode": "relay", "client": "billing", "route": "partner", "method": "POST",
		"path": "/partner/payments/a%2Fb", "status": float64(201), "bytes_in": float64(7), "bytes_out": float64(16), "decision": "allow"}
	for k, v := range want {
		if a[k] != v {
			t.Errorf("audit %s = %v, want %v (line %v)", k, a[k], v, a)
		}
	}
	logs := g.logs.String()
	for _, secret := range []string{c.key, "amount=10", "partner-token", `{"x":1}`} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log contains %q", secret)
		}
	}
}

func TestRelayPassesPartnerErrorsAndRedirectsThrough(t *testing.T) {
	p := newPartner(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v2/redirect":
			http.Redirect(w, r, "https://169.254.169.254/", http.StatusFound)
		default:
			http.Error(w, "partner says no", http.StatusInternalServerError)
		}
	})
	c := newClient("billing")
	g := start(t, relayConfig(p, c, "", ""))
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	resp, body := do(t, noFollow, relayReq(t, g, "GET", "/partner/redirect", c.key, nil))
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "https://169.254.169.254/" {
		t.Errorf("redirect: %d %v; the gateway must pass it back, not follow it", resp.StatusCode, resp.Header)
	}
	if n := p.last.Load(); n.URL.Path != "/v2/redirect" {
		t.Errorf("partner last saw %s", n.URL.Path)
	}
	resp, body = do(t, nil, relayReq(t, g, "GET", "/partner/x", c.key, nil))
	if resp.StatusCode != 500 || resp.Header.Get("Outgate-Error") != "" || !strings.Contains(body, "partner says no") {
		t.Errorf("partner error: %d %v %q", resp.StatusCode, resp.Header, body)
	}
}

func TestRelayErrors(t *testing.T) {
	slow := make(chan struct{})
	p := newPartner(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v2/slow":
			select {
			case <-slow:
			case <-time.After(5 * time.Second):
			}
		case "/v2/hangup":
			conn, _, _ := http.NewResponseController(w).Hijack()
			conn.Close()
		default:
			io.Copy(io.Discard, r.Body)
		}
	})
	t.Cleanup(func() { close(slow) }) // runs before the partner's Close
	closed := freePort(t)
	c := newClient("billing")
	other := newClient("sms")
	cfg := relayConfig(p, c, fmt.Sprintf(`  - name: sms
    key_sha256: %s
    upstreams: [other, down]
`, other.hash), "limits:\n  max_body: 1KiB\n")
	cfg = strings.Replace(cfg, "  metadata:\n", fmt.Sprintf("  down:\n    url: http://%s\n    timeout: 300ms\n  slow:\n    url: %s/v2\n    timeout: 300ms\n  metadata:\n", closed, p.URL), 1)
	cfg = strings.Replace(cfg, "upstreams: [partner, metadata]", "upstreams: [partner, metadata, slow]", 1)
	g := start(t, cfg)

	big := strings.Repeat("x", 2048)
	tests := []struct {
		name   string
		req    *http.Request
		status int
		code   string
	}{
		{"no key", relayReq(t, g, "GET", "/partner/x", "", nil), 401, "unauthorized"},
		{"bad key", relayReq(t, g, "GET", "/partner/x", "og_wrong", nil), 401, "unauthorized"},
		{"no key, unknown upstream", relayReq(t, g, "GET", "/nope/x", "", nil), 401, "unauthorized"},
		{"unknown upstream", relayReq(t, g, "GET", "/nope/x", c.key, nil), 404, "unknown_upstream"},
		{"not this client's upstream", relayReq(t, g, "GET", "/other/x", c.key, nil), 403, "forbidden"},
		{"blocked destination", relayReq(t, g, "GET", "/metadata/meta-data/", c.key, nil), 403, "destination_blocked"},
		{"dot segments", relayReq(t, g, "GET", "/partner/%2e%2e/admin", c.key, nil), 400, "bad_request"},
		{"body too large", relayReq(t, g, "POST", "/partner/x", c.key, strings.NewReader(big)), 413, "body_too_large"},
		{"chunked body too large", relayReq(t, g, "POST", "/partner/x", c.key, io.MultiReader(strings.NewReader(big))), 413, "body_too_large"},
		{"unreachable", relayReq(t, g, "GET", "/down/x", other.key, nil), 502, "upstream_unreachable"},
		{"hang-up", relayReq(t, g, "GET", "/partner/hangup", c.key, nil), 502, "bad_gateway"},
		{"timeout", relayReq(t, g, "GET", "/slow/slow", c.key, nil), 504, "upstream_timeout"},
		{"unknown endpoint", relayReq(t, g, "GET", "/_outgate/nope", "", nil), 404, "not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := do(t, nil, tt.req)
			wantError(t, resp, body, tt.status, tt.code)
			a := g.logs.audit(t, resp.Header.Get("Outgate-Request-Id"))
			if a["status"] != float64(tt.status) || a["reason"] != tt.code || a["decision"] == "allow" {
				t.Errorf("audit line %v", a)
			}
			// The error body the gateway sent is what the line counts.
			if a["bytes_out"] != float64(len(body)) {
				t.Errorf("audit bytes_out %v, the client got %d bytes", a["bytes_out"], len(body))
			}
		})
	}
	if strings.Contains(g.logs.String(), c.key) || strings.Contains(g.logs.String(), other.key) {
		t.Error("a key reached the log")
	}
}

func TestRelayLimits(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 8)
	p := newPartner(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/hold" {
			entered <- struct{}{}
			<-release
		}
	})
	c := newClient("billing")
	cfg := relayConfig(p, c, "    limits: {max_concurrent: 1, requests_per_second: 1, burst: 3}\n", "")
	g := start(t, cfg)

	// One request in flight holds the only concurrency slot.
	held := make(chan *http.Response, 1)
	go func() {
		resp, err := http.DefaultClient.Do(relayReq(t, g, "GET", "/partner/hold", c.key, nil))
		if err == nil {
			resp.Body.Close()
		}
		held <- resp
	}()
	<-entered
	resp, body := do(t, nil, relayReq(t, g, "GET", "/partner/x", c.key, nil))
	wantError(t, resp, body, 429, "concurrency_limited")
	if resp.Header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	close(release)
	if r := <-held; r == nil || r.StatusCode != 200 {
		t.Fatalf("the held request failed: %v", r)
	}
	// The burst of 3 is spent (hold + the refused one + this one); the next is rate limited.
	do(t, nil, relayReq(t, g, "GET", "/partner/x", c.key, nil))
	resp, body = do(t, nil, relayReq(t, g, "GET", "/partner/x", c.key, nil))
	wantError(t, resp, body, 429, "rate_limited")
	if resp.Header.Get("Retry-After") != "1" {
		t.Errorf("Retry-After = %q, want 1 (one token a second)", resp.Header.Get("Retry-After"))
	}
}

// TestRelayStreams shows the gateway does not buffer a response: the partner
// sends the second half only after the client has received the first.
func TestRelayStreams(t *testing.T) {
	const half = 8 << 20
	gotFirst := make(chan struct{})
	p := newPartner(t, func(w http.ResponseWriter, r *http.Request) {
		chunk := make([]byte, 64<<10)
		for i := range chunk {
			chunk[i] = byte(i)
		}
		for n := 0; n < half; n += len(chunk) {
			w.Write(chunk)
		}
		http.NewResponseController(w).Flush()
		select {
		case <-gotFirst:
		case <-time.After(10 * time.Second):
			return // the client never saw the first half: the gateway buffered it
		}
		for n := 0; n < half; n += len(chunk) {
			w.Write(chunk)
		}
	})
	c := newClient("billing")
	g := start(t, relayConfig(p, c, "", ""))
	resp, err := http.DefaultClient.Do(relayReq(t, g, "GET", "/partner/big", c.key, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := io.ReadFull(resp.Body, make([]byte, half)); err != nil {
		t.Fatalf("reading the first half: %v", err)
	}
	close(gotFirst)
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil || n != half {
		t.Fatalf("second half: %d bytes, %v; want %d", n, err, half)
	}
}

func TestRelayVerifiesUpstreamTLS(t *testing.T) {
	p := newPartner(t, func(w http.ResponseWriter, r *http.Request) {})
	c := newClient("billing")
	cfg := strings.Replace(relayConfig(p, c, "", ""), "  ca_files: ["+p.ca+"]\n", "", 1)
	g := start(t, cfg)
	resp, body := do(t, nil, relayReq(t, g, "GET", "/partner/x", c.key, nil))
	wantError(t, resp, body, 502, "bad_gateway")
	if p.last.Load() != nil {
		t.Fatal("the request reached a partner whose certificate is not trusted")
	}
	a := g.logs.audit(t, resp.Header.Get("Outgate-Request-Id"))
	if !strings.Contains(fmt.Sprint(a["detail"]), "certificate") {
		t.Errorf("audit detail %q should name the certificate problem", a["detail"])
	}
	if strings.Contains(body, "certificate") || strings.Contains(body, "127.0.0.1") {
		t.Errorf("the client error leaks internals: %s", body)
	}
}

func TestRelayResolvesThroughPolicy(t *testing.T) {
	dns := testutil.NewDNS(t)
	p := newPartner(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello from "+r.Host) })
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(p.URL, "https://"))
	dns.Set("example.com", "127.0.0.1")     // the test certificate is valid for example.com
	dns.Set("internal.example", "10.1.2.3") // an internal address behind a public-looking name
	dns.Set("mixed.example", "127.0.0.1", "169.254.169.254")
	c := newClient("billing")
	cfg := fmt.Sprintf(`
listen: 127.0.0.1:0
upstreams:
  named: {url: "https://example.com:%[1]s/v2"}
  internal: {url: "https://internal.example:%[1]s"}
  mixed: {url: "https://mixed.example:%[1]s"}
clients:
  - name: billing
    key_sha256: %[2]s
    upstreams: [named, internal, mixed]
network:
  allow_cidrs: [127.0.0.0/8]
  resolvers: ["%[3]s"]
  ca_files: [%[4]s]
`, port, c.hash, dns.Addr, p.ca)
	g := start(t, cfg)
	resp, body := do(t, nil, relayReq(t, g, "GET", "/named/x", c.key, nil))
	if resp.StatusCode != 200 || body != "hello from example.com:"+port {
		t.Fatalf("named upstream: %d %q", resp.StatusCode, body)
	}
	for _, route := range []string{"/internal/x", "/mixed/x"} {
		resp, body = do(t, nil, relayReq(t, g, "GET", route, c.key, nil))
		wantError(t, resp, body, 403, "destination_blocked")
		if strings.Contains(body, "10.1.2.3") || strings.Contains(body, "169.254") {
			t.Errorf("%s: the error names the resolved address: %s", route, body)
		}
	}
}

func TestEndpoints(t *testing.T) {
	var answer atomic.Value
	answer.Store("203.0.113.7\n")
	check := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, answer.Load().(string))
	}))
	defer check.Close()
	c := newClient("billing")
	cfg := fmt.Sprintf(`
listen: 127.0.0.1:0
egress_check_url: %s
clients:
  - {name: billing, key_sha256: %s, hosts: [api.example]}
network: {allow_cidrs: [127.0.0.0/8]}
`, check.URL, c.hash)
	g := start(t, cfg)

	resp, body := do(t, nil, relayReq(t, g, "GET", "/_outgate/health", "", nil))
	if resp.StatusCode != 200 || strings.TrimSpace(body) != `{"status":"ok"}` {
		t.Errorf("health: %d %s", resp.StatusCode, body)
	}
	resp, body = do(t, nil, relayReq(t, g, "GET", "/_outgate/whoami", "", nil))
	wantError(t, resp, body, 401, "unauthorized")

	want := fmt.Sprintf(`{"checked_via":"%s","egress_ip":"203.0.113.7"}`, check.URL)
	resp, body = do(t, nil, relayReq(t, g, "GET", "/_outgate/whoami", c.key, nil))
	if resp.StatusCode != 200 || strings.TrimSpace(body) != want {
		t.Errorf("whoami (plain text): %d %s", resp.StatusCode, body)
	}
	answer.Store(`{"ip": "2001:db8::7", "country": "KR"}`)
	resp, body = do(t, nil, relayReq(t, g, "GET", "/_outgate/whoami", c.key, nil))
	if resp.StatusCode != 200 || !strings.Contains(body, `"egress_ip":"2001:db8::7"`) {
		t.Errorf("whoami (JSON): %d %s", resp.StatusCode, body)
	}
	answer.Store("<html>not an ip</html>")
	resp, body = do(t, nil, relayReq(t, g, "GET", "/_outgate/whoami", c.key, nil))
	wantError(t, resp, body, 502, "bad_gateway")
}

// TestUpstreamConnectionsAreReused: sequential requests to a partner share
// its connections, and /metrics shows how many were opened.
func TestUpstreamConnectionsAreReused(t *testing.T) {
	p := newPartner(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	c := newClient("billing")
	g := start(t, relayConfig(p, c, "", "admin_listen: 127.0.0.1:0\n"))
	for i := range 10 {
		if resp, body := do(t, nil, relayReq(t, g, "POST", "/partner/charge", c.key, strings.NewReader(`{"amount":1}`))); resp.StatusCode != 200 {
			t.Fatalf("request %d: %d %s", i, resp.StatusCode, body)
		}
	}
	// The first request goes through http.Transport, offering HTTP/2; the
	// partner answers in HTTP/1.1, so the other nine take the HTTP/1.1
	// client, on one connection of its own: two in all, not ten.
	if n := testutil.Metric(t, g.Admin, "outgate_upstream_connections_opened_total"); n != 2 {
		t.Errorf("%v upstream connections for 10 sequential requests, want 2", n)
	}
}
