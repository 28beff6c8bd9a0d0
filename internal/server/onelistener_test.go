package server_test

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outgate/outgate/internal/server"
	"github.com/outgate/outgate/internal/testutil"
)

// sharedConfig is a config with relay and proxy on one listener at addr:
// the relay upstream "partner" on p, and proxy hosts.
func sharedConfig(addr string, p *partner, c client, hosts []string, extra string) string {
	return fmt.Sprintf(`
listen: %s
proxy_listen: %s
upstreams:
  partner:
    url: %s/v2
clients:
  - name: %s
    key_sha256: %s
    upstreams: [partner]
    hosts: ["%s"]
network:
  allow_cidrs: [127.0.0.0/8]
  ca_files: [%s]
%s`, addr, addr, p.URL, c.name, c.hash, strings.Join(hosts, `", "`), p.ca, extra)
}

// countingServer is a plain-HTTP partner that counts the requests it gets.
func countingServer(t *testing.T) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		fmt.Fprintf(w, "plain partner %s auth=%q key=%q", r.URL.Path, r.Header.Get("Proxy-Authorization"), r.Header.Get("Outgate-Key"))
	}))
	t.Cleanup(s.Close)
	return s, &n
}

// wire sends raw request bytes on a new connection to addr (through TLS
// when tlsConf is set) and reads one response.
func wire(t *testing.T, addr string, tlsConf *tls.Config, raw string) (*http.Response, string) {
	t.Helper()
	var conn net.Conn
	var err error
	if tlsConf != nil {
		conn, err = tls.Dial("tcp", addr, tlsConf)
	} else {
		conn, err = net.DialTimeout("tcp", addr, 5*time.Second)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(conn, raw)
	method, _, _ := strings.Cut(raw, " ")
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("%q: %v", raw, err)
	}
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestOneListenerServesRelayAndProxy: proxy_listen equal to listen is one
// socket where origin-form requests are relayed and CONNECT and
// absolute-form requests are proxied, on one keep-alive connection too.
func TestOneListenerServesRelayAndProxy(t *testing.T) {
	p := newPartner(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "tls partner "+r.URL.Path) })
	plain, _ := countingServer(t)
	plainHost := strings.TrimPrefix(plain.URL, "http://")
	pHost := strings.TrimPrefix(p.URL, "https://")
	c := newClient("billing")
	addr := freePort(t)
	g := start(t, sharedConfig(addr, p, c, []string{pHost, plainHost}, ""))
	if g.Relay != addr || g.Proxy != addr {
		t.Fatalf("addresses = %q and %q, want both %q", g.Relay, g.Proxy, addr)
	}

	resp, body := do(t, nil, relayReq(t, g, "GET", "/partner/pay", c.key, nil))
	if resp.StatusCode != 200 || body != "tls partner /v2/pay" {
		t.Errorf("relay: %d %q", resp.StatusCode, body)
	}
	pc := proxyClient(g, c, p.ca)
	defer pc.Transport.(*http.Transport).CloseIdleConnections() // the tunnel, or shutdown waits for it
	for target, want := range map[string]string{p.URL + "/tunnel": "tls partner /tunnel", plain.URL + "/abs": `plain partner /abs auth="" key=""`} {
		resp, body := do(t, pc, mustReq(t, "GET", target))
		if resp.StatusCode != 200 || body != want {
			t.Errorf("proxy %s: %d %q", target, resp.StatusCode, body)
		}
	}

	// One connection, a proxy request then a relay request: each goes by
	// its own form.
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(conn)
	fmt.Fprintf(conn, "GET %s/first HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: %s\r\n\r\n", plain.URL, plainHost, basic(c.name, c.key))
	fmt.Fprintf(conn, "GET /partner/second HTTP/1.1\r\nHost: gw\r\nOutgate-Key: %s\r\n\r\n", c.key)
	for _, want := range []string{"plain partner /first", "tls partner /v2/second"} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || !strings.HasPrefix(string(b), want) {
			t.Errorf("keep-alive: %d %q, want %q", resp.StatusCode, b, want)
		}
	}
}

// TestOneListenerRefusesCrossedCredentials: on the shared listener, the
// form of the request decides the handler and each handler takes only its
// own credentials. A relay key does not open the proxy, a proxy credential
// does not open the relay, a relay path in absolute form is a proxy request
// (to an address the client may not reach), and Host picks nothing.
func TestOneListenerRefusesCrossedCredentials(t *testing.T) {
	relayHits := atomic.Int64{}
	p := newPartner(t, func(w http.ResponseWriter, r *http.Request) {
		relayHits.Add(1)
		fmt.Fprintf(w, "tls partner %s auth=%q", r.URL.Path, r.Header.Get("Proxy-Authorization"))
	})
	plain, plainHits := countingServer(t)
	plainHost := strings.TrimPrefix(plain.URL, "http://")
	c := newClient("billing")
	addr := freePort(t)
	_, gwPort, _ := net.SplitHostPort(addr)
	// The client may even name the gateway's own address as a proxy
	// destination: the egress policy still refuses it.
	start(t, sharedConfig(addr, p, c, []string{plainHost, "127.0.0.1:" + gwPort, "localhost:" + gwPort}, ""))
	auth := basic(c.name, c.key)

	for _, tt := range []struct {
		name   string
		raw    string
		status int
		code   string
	}{
		{"relay key on an absolute-form request", fmt.Sprintf("GET %s/x HTTP/1.1\r\nHost: %s\r\nOutgate-Key: %s\r\n\r\n", plain.URL, plainHost, c.key), 407, "proxy_auth_required"},
		{"relay key on CONNECT", fmt.Sprintf("CONNECT %s HTTP/1.1\r\nHost: %s\r\nOutgate-Key: %s\r\n\r\n", plainHost, plainHost, c.key), 407, "proxy_auth_required"},
		{"proxy credential on a relay request", fmt.Sprintf("GET /partner/x HTTP/1.1\r\nHost: gw\r\nProxy-Authorization: %s\r\n\r\n", auth), 401, "unauthorized"},
		{"proxy credential as the relay key", fmt.Sprintf("GET /partner/x HTTP/1.1\r\nHost: gw\r\nOutgate-Key: %s\r\n\r\n", auth), 401, "unauthorized"},
		{"Host naming a proxy destination on a relay request", fmt.Sprintf("GET /x HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: %s\r\n\r\n", plainHost, auth), 401, "unauthorized"},
		{"relay path in absolute form, relay key", fmt.Sprintf("GET http://%s/partner/x HTTP/1.1\r\nHost: %s\r\nOutgate-Key: %s\r\n\r\n", addr, addr, c.key), 407, "proxy_auth_required"},
		{"relay path in absolute form to the gateway itself", fmt.Sprintf("GET http://%s/partner/x HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: %s\r\nOutgate-Key: %s\r\n\r\n", addr, addr, auth, c.key), 403, "destination_blocked"},
		{"endpoint path in absolute form to the gateway by name", fmt.Sprintf("GET http://localhost:%s/_outgate/whoami HTTP/1.1\r\nHost: localhost:%s\r\nProxy-Authorization: %s\r\n\r\n", gwPort, gwPort, auth), 403, "destination_blocked"},
		{"relay path in absolute form to a host not allowed", fmt.Sprintf("GET http://api.partner.example/partner/x HTTP/1.1\r\nHost: api.partner.example\r\nProxy-Authorization: %s\r\nOutgate-Key: %s\r\n\r\n", auth, c.key), 403, "forbidden"},
		{"CONNECT to the gateway itself", fmt.Sprintf("CONNECT %s HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: %s\r\n\r\n", addr, addr, auth), 403, "destination_blocked"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := wire(t, addr, nil, tt.raw)
			wantError(t, resp, body, tt.status, tt.code)
		})
	}
	if n := relayHits.Load(); n != 0 {
		t.Errorf("the relay's partner got %d requests, want none", n)
	}
	if n := plainHits.Load(); n != 0 {
		t.Errorf("the proxy destination got %d requests, want none", n)
	}

	// A relay request with a valid key and a Proxy-Authorization header:
	// relayed, and the proxy credential goes no further.
	resp, body := wire(t, addr, nil, fmt.Sprintf("GET /partner/x HTTP/1.1\r\nHost: gw\r\nOutgate-Key: %s\r\nProxy-Authorization: %s\r\n\r\n", c.key, auth))
	if resp.StatusCode != 200 || body != `tls partner /v2/x auth=""` {
		t.Errorf("relay with a stray Proxy-Authorization: %d %q", resp.StatusCode, body)
	}
	// A proxy request with a valid credential and an Outgate-Key: proxied,
	// and the key goes no further.
	resp, body = wire(t, addr, nil, fmt.Sprintf("GET %s/y HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: %s\r\nOutgate-Key: %s\r\n\r\n", plain.URL, plainHost, auth, c.key))
	if resp.StatusCode != 200 || body != `plain partner /y auth="" key=""` {
		t.Errorf("proxy with a stray Outgate-Key: %d %q", resp.StatusCode, body)
	}
}

// TestOneListenerConnectionRules: a connection to the shared listener is
// counted once and owes one authenticated request, relay or proxy, within
// auth_timeout; the per-source bound covers both kinds of request.
func TestOneListenerConnectionRules(t *testing.T) {
	p := newPartner(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	plain, _ := countingServer(t)
	plainHost := strings.TrimPrefix(plain.URL, "http://")
	c := newClient("billing")
	addr := freePort(t)
	g := start(t, sharedConfig(addr, p, c, []string{plainHost},
		"admin_listen: 127.0.0.1:0\nlimits: {max_connections: 8, max_connections_per_ip: 3, read_header_timeout: 1m, idle_timeout: 1m, auth_timeout: 300ms}\n"))

	// Three connections from one source: one authenticated by a proxy
	// request, one by a relay request, one idle.
	proxyConn := dialFrom(t, "127.0.0.1", addr)
	relayConn := dialFrom(t, "127.0.0.1", addr)
	idle := dialFrom(t, "127.0.0.1", addr)
	send := func(conn net.Conn, raw string) {
		t.Helper()
		io.WriteString(conn, raw)
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("%q: %d", raw, resp.StatusCode)
		}
	}
	send(proxyConn, fmt.Sprintf("GET %s/a HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: %s\r\n\r\n", plain.URL, plainHost, basic(c.name, c.key)))
	send(relayConn, fmt.Sprintf("GET /partner/a HTTP/1.1\r\nHost: gw\r\nOutgate-Key: %s\r\n\r\n", c.key))
	if n := metric(t, g, "outgate_connections_open"); n != 3 {
		t.Errorf("connections open = %v, want 3 (each counted once)", n)
	}
	// A fourth from the same source is over max_connections_per_ip: reset.
	// A refusal can beat the dial's return: that is a reset too.
	if fourth, err := net.DialTimeout("tcp", addr, 5*time.Second); err == nil {
		closedByPeer(t, fourth, "fourth connection from one source")
		fourth.Close()
	}
	waitFor(t, func() bool { return metric(t, g, `outgate_connections_refused_total{reason="per_source_limit"}`) == 1 })
	// The idle one is closed at auth_timeout; the authenticated ones stay.
	closedByPeer(t, idle, "unauthenticated connection")
	if n := metric(t, g, `outgate_connections_refused_total{reason="auth_timeout"}`); n != 1 {
		t.Errorf("auth_timeout refusals = %v, want 1", n)
	}
	send(proxyConn, fmt.Sprintf("GET /partner/b HTTP/1.1\r\nHost: gw\r\nOutgate-Key: %s\r\n\r\n", c.key))
	send(relayConn, fmt.Sprintf("GET %s/b HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: %s\r\n\r\n", plain.URL, plainHost, basic(c.name, c.key)))
}

// TestOneListenerOverTLS: with tls, the shared listener is an HTTPS relay
// and an HTTPS proxy on one port (HTTP/1.1 only: a forward proxy cannot
// speak HTTP/2), as curl and Go use it.
func TestOneListenerOverTLS(t *testing.T) {
	p := newPartner(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "tls partner "+r.URL.Path) })
	pHost := strings.TrimPrefix(p.URL, "https://")
	c := newClient("billing")
	cert, key := testutil.SelfSigned(t, "gw")
	addr := freePort(t)
	start(t, sharedConfig(addr, p, c, []string{pHost}, fmt.Sprintf("tls: {cert_file: %s, key_file: %s}\n", cert, key)))

	tr := &http.Transport{TLSClientConfig: testutil.TLSConfig(cert), ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest("GET", "https://"+addr+"/partner/pay", nil)
	req.Header.Set("Outgate-Key", c.key)
	resp, body := do(t, &http.Client{Transport: tr, Timeout: 10 * time.Second}, req)
	if resp.StatusCode != 200 || body != "tls partner /v2/pay" || resp.ProtoMajor != 1 {
		t.Errorf("HTTPS relay: %s %d %q", resp.Proto, resp.StatusCode, body)
	}

	curl := testutil.Tool(t, "curl")
	proxyURL := fmt.Sprintf("https://%s:%s@%s", c.name, c.key, addr)
	out, err := exec.Command(curl, "-sS", "--max-time", "20", "--cacert", p.ca, "--proxy-cacert", cert, "-x", proxyURL, p.URL+"/via-proxy").CombinedOutput()
	if err != nil || string(out) != "tls partner /via-proxy" {
		t.Errorf("curl -x https://: %q, %v", out, err)
	}
	out, err = exec.Command(curl, "-sS", "--max-time", "20", "--cacert", cert, "-H", "Outgate-Key: "+c.key, "https://"+addr+"/partner/via-curl").CombinedOutput()
	if err != nil || string(out) != "tls partner /v2/via-curl" {
		t.Errorf("curl relay: %q, %v", out, err)
	}
	// Plain HTTP on the TLS listener is not served.
	raw := fmt.Sprintf("GET /partner/x HTTP/1.1\r\nHost: gw\r\nOutgate-Key: %s\r\n\r\n", c.key)
	if resp, body := wire(t, addr, nil, raw); resp.StatusCode != 400 || strings.Contains(body, "tls partner") {
		t.Errorf("plain HTTP on the TLS listener: %d %q", resp.StatusCode, body)
	}
}

// TestOptionsTLS: server.Options.TLS makes the relay and proxy listeners
// speak TLS with its certificates although the config has no tls, with TLS
// 1.2 at least, whatever the given config allows.
func TestOptionsTLS(t *testing.T) {
	p := newPartner(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "tls partner "+r.URL.Path) })
	pHost := strings.TrimPrefix(p.URL, "https://")
	c := newClient("billing")
	certFile, keyFile := testutil.SelfSigned(t, "instance")
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	var served atomic.Int64
	given := &tls.Config{MinVersion: tls.VersionTLS10, GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		served.Add(1)
		return &cert, nil
	}}
	cfg := relayConfig(p, c, fmt.Sprintf("    hosts: [%q]\n", pHost), "proxy_listen: 127.0.0.1:0\n")
	g := startWith(t, cfg, func(o *server.Options) { o.TLS = given })

	tr := &http.Transport{TLSClientConfig: testutil.TLSConfig(certFile), ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest("GET", "https://"+g.Relay+"/partner/pay", nil)
	req.Header.Set("Outgate-Key", c.key)
	resp, body := do(t, &http.Client{Transport: tr, Timeout: 10 * time.Second}, req)
	if resp.StatusCode != 200 || body != "tls partner /v2/pay" || resp.ProtoMajor != 2 {
		t.Errorf("relay over Options.TLS: %s %d %q", resp.Proto, resp.StatusCode, body)
	}
	curl := testutil.Tool(t, "curl")
	out, err := exec.Command(curl, "-sS", "--max-time", "20", "--cacert", p.ca, "--proxy-cacert", certFile,
		"-x", fmt.Sprintf("https://%s:%s@%s", c.name, c.key, g.Proxy), p.URL+"/via-proxy").CombinedOutput()
	if err != nil || string(out) != "tls partner /via-proxy" {
		t.Errorf("curl through the proxy over Options.TLS: %q, %v", out, err)
	}
	if served.Load() < 2 {
		t.Errorf("Options.TLS's GetCertificate was called %d times, want once per listener at least", served.Load())
	}
	old := testutil.TLSConfig(certFile)
	old.MaxVersion = tls.VersionTLS11
	if conn, err := tls.Dial("tcp", g.Relay, old); err == nil {
		conn.Close()
		t.Error("TLS 1.1 was accepted")
	}
}

// TestOptionsPlainListen: instance mode with plain HTTP asked for: beside
// the TLS listener, Options.PlainListen serves relay and proxy by form in
// plain HTTP, with the same credentials rules.
func TestOptionsPlainListen(t *testing.T) {
	p := newPartner(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "tls partner "+r.URL.Path) })
	plain, plainHits := countingServer(t)
	plainHost := strings.TrimPrefix(plain.URL, "http://")
	c := newClient("billing")
	certFile, keyFile := testutil.SelfSigned(t, "instance")
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	addr := freePort(t)
	g := startWith(t, sharedConfig(addr, p, c, []string{plainHost}, "admin_listen: 127.0.0.1:0\n"), func(o *server.Options) {
		o.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
		o.PlainListen = "127.0.0.1:0"
	})
	if g.Plain == "" || g.Plain == addr {
		t.Fatalf("plain listener at %q", g.Plain)
	}
	resp, body := wire(t, g.Plain, nil, fmt.Sprintf("GET /partner/plain HTTP/1.1\r\nHost: gw\r\nOutgate-Key: %s\r\n\r\n", c.key))
	if resp.StatusCode != 200 || body != "tls partner /v2/plain" {
		t.Errorf("relay on the plain listener: %d %q", resp.StatusCode, body)
	}
	resp, body = wire(t, g.Plain, nil, fmt.Sprintf("GET %s/abs HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: %s\r\n\r\n", plain.URL, plainHost, basic(c.name, c.key)))
	if resp.StatusCode != 200 || !strings.HasPrefix(body, "plain partner /abs") {
		t.Errorf("proxy on the plain listener: %d %q", resp.StatusCode, body)
	}
	resp, body = wire(t, g.Plain, nil, fmt.Sprintf("GET %s/x HTTP/1.1\r\nHost: %s\r\nOutgate-Key: %s\r\n\r\n", plain.URL, plainHost, c.key))
	wantError(t, resp, body, 407, "proxy_auth_required")
	if n := plainHits.Load(); n != 1 {
		t.Errorf("proxy destination hit %d times, want 1", n)
	}
	// The main listener speaks TLS only.
	if resp, body := wire(t, addr, nil, fmt.Sprintf("GET /partner/x HTTP/1.1\r\nHost: gw\r\nOutgate-Key: %s\r\n\r\n", c.key)); resp.StatusCode != 400 || strings.Contains(body, "tls partner") {
		t.Errorf("plain HTTP on the TLS listener: %d %q", resp.StatusCode, body)
	}
	resp, body = wire(t, addr, testutil.TLSConfig(certFile), fmt.Sprintf("GET /partner/tls HTTP/1.1\r\nHost: gw\r\nOutgate-Key: %s\r\n\r\n", c.key))
	if resp.StatusCode != 200 || body != "tls partner /v2/tls" {
		t.Errorf("relay over TLS: %d %q", resp.StatusCode, body)
	}
}
