package server_test

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/outgate/outgate/internal/testutil"
)

// rawRelay sends a request as written to the relay listener and reads the
// answer.
func rawRelay(t *testing.T, g *gateway, raw string) (*http.Response, string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", g.Relay, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(conn, raw)
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: "GET"})
	if err != nil {
		t.Fatalf("%q: %v", raw, err)
	}
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestClientCannotSteerOrKeepInjectedCredentials attacks inject_headers as
// a hostile client would: its own copy of the injected header in every
// spelling the gateway's HTTP parser takes (folded lines, duplicates, a
// trailer, a Connection header naming it), and absolute-form proxy
// requests aimed past the upstream's base path or at the same host under
// other spellings. The partner must never see the client's value, and
// never the gateway's outside the base path.
func TestClientCannotSteerOrKeepInjectedCredentials(t *testing.T) {
	p := newHeaderPartner(t)
	c, other := newClient("billing"), newClient("hostonly")
	t.Setenv("OUTGATE_TEST_ATTACK_KEY", "GATEWAYSECRET")
	u, _ := url.Parse(p.URL)
	_, port, _ := net.SplitHostPort(u.Host)
	cfg := fmt.Sprintf(`
listen: 127.0.0.1:0
proxy_listen: 127.0.0.1:0
upstreams:
  pay:
    url: %[1]s/v1
    inject_headers:
      X-Api-Key: "${secret:env:OUTGATE_TEST_ATTACK_KEY}"
clients:
  - name: billing
    key_sha256: %[2]s
    upstreams: [pay]
    hosts: ["%[3]s", "localhost:%[4]s"]
  - name: hostonly
    key_sha256: %[5]s
    hosts: ["%[3]s"]
network: {allow_cidrs: [127.0.0.0/8]}
`, p.URL, c.hash, u.Host, port, other.hash)
	g := start(t, cfg)

	// A client that may reach the partner's host but not the upstream
	// gets no credentials there, even under the base path.
	conn, _, resp, body := rawProxy(t, g, "GET "+p.URL+"/v1/x HTTP/1.1", "Host: "+u.Host, "Proxy-Authorization: "+basic(other.name, other.key), "Connection: close")
	conn.Close()
	if resp.StatusCode != 200 || len(p.seen("X-Api-Key")) != 0 {
		t.Errorf("a client without the upstream: %d %s, partner got X-Api-Key %q", resp.StatusCode, body, p.seen("X-Api-Key"))
	}

	reset := func() { p.mu.Lock(); p.last, p.path = nil, ""; p.mu.Unlock() }
	onlyGateways := func(what string) {
		t.Helper()
		got := p.seen("X-Api-Key")
		if len(got) != 1 || strings.Join(got["X-Api-Key"], "|") != "GATEWAYSECRET" {
			t.Errorf("%s: the partner got X-Api-Key %q, want only the gateway's", what, got)
		}
	}

	// Relay: the client's own copies, as raw HTTP/1.1.
	relayed := map[string]string{
		"folded line":          "X-Api-Key: client-a\r\n client-b\r\n",
		"duplicates":           "X-Api-Key: client-a\r\nx-api-key: client-b\r\nX-API-KEY: client-c\r\n",
		"underscore spellings": "X_Api_Key: client-a\r\nx_api_key: client-b\r\nX-Api_Key: client-c\r\n",
		"connection names it":  "Connection: X-Api-Key\r\nX-Api-Key: client-a\r\n",
	}
	for what, hdr := range relayed {
		reset()
		resp, body := rawRelay(t, g, "GET /pay/x HTTP/1.1\r\nHost: x\r\nOutgate-Key: "+c.key+"\r\n"+hdr+"Connection: close\r\n\r\n")
		t.Logf("relay, %s -> %d", what, resp.StatusCode)
		if resp.StatusCode == 400 {
			continue // the gateway's parser refused it: nothing was sent
		}
		if resp.StatusCode != 200 {
			t.Errorf("%s: %d %s", what, resp.StatusCode, body)
			continue
		}
		onlyGateways(what)
	}
	// A trailer: the request's trailers are not forwarded at all.
	reset()
	resp, body = rawRelay(t, g, "POST /pay/x HTTP/1.1\r\nHost: x\r\nOutgate-Key: "+c.key+"\r\nTrailer: X-Api-Key\r\n"+
		"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n2\r\n{}\r\n0\r\nX-Api-Key: client-trailer\r\n\r\n")
	t.Logf("relay, trailer -> %d", resp.StatusCode)
	if resp.StatusCode != 200 {
		t.Errorf("trailer: %d %s", resp.StatusCode, body)
	}
	onlyGateways("trailer")

	// Proxy: absolute-form targets. Every request the partner answers must
	// have the credentials only if its path is the base path or below it,
	// with no dot segment the partner could resolve.
	targets := []string{
		p.URL + "/v1/x",
		p.URL + "/v1",
		p.URL + "/v1?q=1",
		p.URL + "/V1/x",
		p.URL + "//v1/x",
		p.URL + "/v1x",
		p.URL + "/v1%2fx",
		p.URL + "/v1%2F..%2Fadmin",
		p.URL + "/v1/..%2Fadmin",
		p.URL + "/v1/.%2e/admin",
		p.URL + "/v1/./x",
		p.URL + "/v1/..;/admin",
		p.URL + "/v1;x/../admin",
		p.URL + "/v1/%252e%252e/admin",
		p.URL + "/v1/x/../../admin",
		p.URL + "/v1\\..\\admin",
		p.URL + "/v1/%c0%ae%c0%ae/admin",
		p.URL + "/v1/\uff0e\uff0e/admin",
		"http://localhost:" + port + "/v1/x",
		"HTTP://" + u.Host + "/v1/x",
		"http://" + u.Host + "./v1/x",
		"http://x@" + u.Host + "/v1/x",
		"https://" + u.Host + "/v1/x",
		"http://" + u.Host + ":/v1/x",
		"http://127.000.000.001:" + port + "/v1/x",
		"http://[::ffff:127.0.0.1]:" + port + "/v1/x",
	}
	for _, target := range targets {
		reset()
		conn, _, resp, body := rawProxy(t, g, "GET "+target+" HTTP/1.1", "Host: "+u.Host, "X-Api-Key: client-own",
			"Proxy-Authorization: "+basic(c.name, c.key), "Connection: close")
		conn.Close()
		p.mu.Lock()
		path, last := p.path, p.last
		p.mu.Unlock()
		if last == nil {
			t.Logf("%s -> %d, nothing sent", target, resp.StatusCode)
			if resp.StatusCode < 400 {
				t.Errorf("%s: %d but the partner got nothing", target, resp.StatusCode)
			}
			continue
		}
		got := p.seen("X-Api-Key")
		injected := strings.Contains(fmt.Sprint(got), "GATEWAYSECRET")
		under := path == "/v1" || strings.HasPrefix(path, "/v1/")
		clean := true
		for _, seg := range strings.Split(path, "/") {
			d, _ := url.PathUnescape(seg)
			if d == "." || d == ".." || strings.Contains(strings.ToLower(seg), "%2f") || strings.Contains(seg, "\\") || strings.Contains(seg, ";") {
				clean = false
			}
		}
		t.Logf("%s -> %d, partner path %q, X-Api-Key %q", target, resp.StatusCode, path, got)
		if injected && !(under && clean) {
			t.Errorf("%s: the credentials reached %q at the partner", target, path)
		}
		if injected && len(got["X-Api-Key"]) != 1 {
			t.Errorf("%s: the client's copy went along: %q", target, got)
		}
		_ = body
	}
}

// TestClientCertStaysWithItsUpstream: a partner that asks for a client
// certificate but accepts none reports the identity each request's
// connection carries, over HTTP/1.1 and over HTTP/2 (where one connection
// carries many requests). After the upstream with client_cert has pooled
// connections, requests of another upstream on the same host, of another
// client, and absolute-form proxy requests outside the base path still
// carry no certificate; after a rotation, the upstream's requests carry
// only the new one.
func TestClientCertStaysWithItsUpstream(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		t.Run(fmt.Sprintf("h2=%v", h2), func(t *testing.T) {
			ca := testutil.NewClientCA(t)
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				who := "none"
				if len(r.TLS.PeerCertificates) > 0 {
					who = r.TLS.PeerCertificates[0].Subject.CommonName
				}
				fmt.Fprintf(w, "%s %s", who, r.Proto)
			}))
			srv.EnableHTTP2 = h2
			srv.TLS = &tls.Config{ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: ca.Pool}
			srv.StartTLS()
			t.Cleanup(srv.Close)
			dir := t.TempDir()
			certPEM, keyPEM := ca.Issue(t, "pay-1")
			certFile := secretFile(t, dir, "pay.crt", certPEM)
			keyFile := secretFile(t, dir, "pay.key", keyPEM)
			a, b := newClient("billing"), newClient("other")
			u, _ := url.Parse(srv.URL)
			cfg := fmt.Sprintf(`
listen: 127.0.0.1:0
proxy_listen: 127.0.0.1:0
upstreams:
  pay:
    url: %[1]s/v1
    client_cert: "${secret:file:%[2]s}"
    client_key: "${secret:file:%[3]s}"
  nocert: {url: "%[1]s/v1"}
clients:
  - {name: billing, key_sha256: %[4]s, upstreams: [pay, nocert], hosts: ["%[6]s"]}
  - {name: other, key_sha256: %[7]s, upstreams: [nocert], hosts: ["%[6]s"]}
network: {allow_cidrs: [127.0.0.0/8], ca_files: [%[5]s]}
`, srv.URL, certFile, keyFile, a.hash, testutil.WriteCA(t, srv), u.Host, b.hash)
			g := start(t, cfg)
			wantProto := "HTTP/1.1"
			if h2 {
				wantProto = "HTTP/2.0"
			}
			call := func(c client, route, want string) {
				t.Helper()
				for i := 0; i < 3; i++ {
					resp, body := do(t, nil, relayReq(t, g, "GET", "/"+route+"/x", c.key, nil))
					if resp.StatusCode != 200 || body != want+" "+wantProto {
						t.Errorf("%s via %s: %d %q, want %q over %s", c.name, route, resp.StatusCode, body, want, wantProto)
					}
				}
			}
			proxied := func(path, want string) {
				t.Helper()
				for i := 0; i < 3; i++ {
					resp, body := rawProxyGet(t, g, a, srv.URL+path)
					if resp.StatusCode != 200 || !strings.HasPrefix(body, want+" ") {
						t.Errorf("proxy %s: %d %q, want %q", path, resp.StatusCode, body, want)
					}
				}
			}
			call(a, "pay", "pay-1")
			call(a, "nocert", "none")
			call(b, "nocert", "none")
			proxied("/v1/x", "pay-1")
			proxied("/other", "none")
			call(a, "pay", "pay-1")
			call(a, "nocert", "none")

			certPEM, keyPEM = ca.Issue(t, "pay-2")
			secretFile(t, dir, "pay.crt", certPEM)
			secretFile(t, dir, "pay.key", keyPEM)
			g.rewrite(t, cfg)
			waitLog(t, g, "config reloaded", 1)
			call(a, "pay", "pay-2")
			call(a, "nocert", "none")
			proxied("/other", "none")
		})
	}
}

// TestTraceCannotEchoInjectedCredentials: a partner that answers TRACE as
// RFC 9110 9.3.8 describes (the request it received, as the body: Apache's
// TraceEnable, many Java servers) would hand the gateway's credentials to
// the client. RFC 9110 9.3.8: "A client MUST NOT generate fields in a TRACE
// request containing sensitive data that might be disclosed by the
// response" - the gateway is that client. TRACE to an upstream whose
// credentials it adds is refused, on the relay and the proxy; elsewhere it
// goes as before.
func TestTraceCannotEchoInjectedCredentials(t *testing.T) {
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "message/http")
		r.Write(w) // the request line and every header, as received
	}))
	t.Cleanup(echo.Close)
	c := newClient("billing")
	t.Setenv("OUTGATE_TEST_TRACE_KEY", "TRACESECRET")
	u, _ := url.Parse(echo.URL)
	g := start(t, fmt.Sprintf(`
listen: 127.0.0.1:0
proxy_listen: 127.0.0.1:0
upstreams:
  pay:
    url: %[1]s/v1
    inject_headers: {Authorization: "Bearer ${secret:env:OUTGATE_TEST_TRACE_KEY}"}
  open: {url: "%[1]s/v1"}
clients:
  - {name: billing, key_sha256: %[2]s, upstreams: [pay, open], hosts: ["%[3]s"]}
network: {allow_cidrs: [127.0.0.1/32]}
`, echo.URL, c.hash, u.Host))

	resp, body := do(t, nil, relayReq(t, g, "TRACE", "/pay/x", c.key, nil))
	if strings.Contains(body, "TRACESECRET") {
		t.Errorf("relay TRACE: the client read the injected credential: %d %s", resp.StatusCode, body)
	}
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("relay TRACE to an upstream with credentials: %d %s", resp.StatusCode, body)
	}
	// TRACK is IIS's TRACE; a server that folds case takes "trace" for it.
	for _, m := range []string{"TRACK", "trace"} {
		if resp, body := do(t, nil, relayReq(t, g, m, "/pay/x", c.key, nil)); resp.StatusCode != http.StatusMethodNotAllowed || strings.Contains(body, "TRACESECRET") {
			t.Errorf("relay %s: %d %s", m, resp.StatusCode, body)
		}
	}
	conn, _, presp, pbody := rawProxy(t, g, "TRACE "+echo.URL+"/v1/x HTTP/1.1", "Host: "+u.Host, "Proxy-Authorization: "+basic(c.name, c.key), "Connection: close")
	conn.Close()
	if strings.Contains(pbody, "TRACESECRET") || presp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("proxy TRACE under the base path: %d %s", presp.StatusCode, pbody)
	}
	// Without credentials TRACE goes as before.
	if resp, body := do(t, nil, relayReq(t, g, "TRACE", "/open/x", c.key, nil)); resp.StatusCode != 200 || !strings.HasPrefix(body, "TRACE /v1/x") {
		t.Errorf("relay TRACE to an upstream without credentials: %d %s", resp.StatusCode, body)
	}
	conn, _, presp, pbody = rawProxy(t, g, "TRACE "+echo.URL+"/elsewhere HTTP/1.1", "Host: "+u.Host, "Proxy-Authorization: "+basic(c.name, c.key), "Connection: close")
	conn.Close()
	if presp.StatusCode != 200 || strings.Contains(pbody, "TRACESECRET") {
		t.Errorf("proxy TRACE outside the base path: %d %s", presp.StatusCode, pbody)
	}
}
