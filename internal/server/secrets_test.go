package server_test

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/outgate/outgate/internal/testutil"
)

// headerPartner is a plain-http partner that keeps the headers of the last
// request it got.
type headerPartner struct {
	*httptest.Server
	mu   sync.Mutex
	last http.Header
	path string
}

func newHeaderPartner(t *testing.T) *headerPartner {
	p := &headerPartner{}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.last, p.path = r.Header.Clone(), r.URL.EscapedPath()
		p.mu.Unlock()
		io.WriteString(w, "ok")
	}))
	t.Cleanup(p.Close)
	return p
}

// seen returns every value the partner got under a spelling of name ('_'
// for '-', any case), by the spelling it came in.
func (p *headerPartner) seen(name string) map[string][]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string][]string{}
	for k, v := range p.last {
		if strings.EqualFold(strings.ReplaceAll(k, "_", "-"), name) {
			out[k] = v
		}
	}
	return out
}

func secretFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// waitLog waits for the n-th log line with msg (reloads are asynchronous).
func waitLog(t *testing.T, g *gateway, msg string, n int) map[string]any {
	t.Helper()
	var lines []map[string]any
	waitFor(t, func() bool { lines = g.logs.lines(msg); return len(lines) >= n })
	return lines[n-1]
}

// TestRelayInjectsPartnerSecrets: the partner gets the credentials the
// gateway holds, and none of the client's own copies of those headers in
// any spelling; a reload picks up a changed secret, and a reload whose
// secret cannot be read is refused while the old one keeps serving. Plain
// http proxy requests to the upstream's origin and base path get them too.
// No value appears in the gateway's log.
func TestRelayInjectsPartnerSecrets(t *testing.T) {
	p := newHeaderPartner(t)
	c := newClient("billing")
	dir := t.TempDir()
	basic := secretFile(t, dir, "basic", "dXNlcjpGSUxFU0VDUkVU\n")
	t.Setenv("OUTGATE_TEST_PAY_KEY", "ENVSECRET-1")
	u, _ := url.Parse(p.URL)
	cfg := fmt.Sprintf(`
listen: 127.0.0.1:0
proxy_listen: 127.0.0.1:0
upstreams:
  pay:
    url: %[1]s/v1
    inject_headers:
      Authorization: "Basic ${secret:file:%[2]s}"
      X-Api-Key: "${secret:env:OUTGATE_TEST_PAY_KEY}"
  open: {url: "%[1]s/v1"}
clients:
  - name: billing
    key_sha256: %[3]s
    upstreams: [pay, open]
    hosts: ["%[4]s"]
network: {allow_cidrs: [127.0.0.0/8]}
`, p.URL, basic, c.hash, u.Host)
	g := start(t, cfg)

	relay := func(route string) {
		t.Helper()
		req := relayReq(t, g, "POST", "/"+route+"/pay", c.key, strings.NewReader("{}"))
		req.Header["Authorization"] = []string{"Bearer client-own"}
		req.Header["authorization"] = []string{"Bearer client-lower"}
		req.Header["X_Api_Key"] = []string{"client-underscore"}
		req.Header["X-API-KEY"] = []string{"client-upper"}
		if resp, body := do(t, nil, req); resp.StatusCode != 200 {
			t.Fatalf("relay %s: %d %s", route, resp.StatusCode, body)
		}
	}
	want := func(auth, key string) {
		t.Helper()
		if got := p.seen("Authorization"); len(got) != 1 || strings.Join(got["Authorization"], "|") != auth {
			t.Errorf("Authorization at the partner: %q, want only %q", got, auth)
		}
		if got := p.seen("X-Api-Key"); len(got) != 1 || strings.Join(got["X-Api-Key"], "|") != key {
			t.Errorf("X-Api-Key at the partner: %q, want only %q", got, key)
		}
	}
	relay("pay")
	want("Basic dXNlcjpGSUxFU0VDUkVU", "ENVSECRET-1")

	// An upstream without inject_headers passes the client's own
	// Authorization and injects nothing.
	relay("open")
	if got := p.seen("Authorization"); strings.Contains(fmt.Sprint(got), "SECRET") || len(got["Authorization"]) == 0 {
		t.Errorf("open upstream: Authorization %q", got)
	}
	if got := p.seen("X-Api-Key"); len(got) != 0 {
		t.Errorf("open upstream: X-Api-Key %q", got)
	}

	// Plain-http proxy requests to the upstream's origin under its base
	// path get the credentials; elsewhere on the same host they do not.
	proxyURL, _ := url.Parse("http://" + g.Proxy)
	proxyURL.User = url.UserPassword(c.name, c.key)
	pc := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL)}, Timeout: 30 * time.Second}
	proxied := func(path string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("GET", p.URL+path, nil)
		req.Header.Set("Authorization", "Bearer client-own")
		resp, _ := do(t, pc, req)
		return resp
	}
	if resp := proxied("/v1/pay"); resp.StatusCode != 200 {
		t.Fatalf("proxy: %d", resp.StatusCode)
	}
	want("Basic dXNlcjpGSUxFU0VDUkVU", "ENVSECRET-1")
	if resp := proxied("/v10/other"); resp.StatusCode != 200 {
		t.Fatalf("proxy outside the base path: %d", resp.StatusCode)
	}
	if got := p.seen("Authorization"); strings.Join(got["Authorization"], "") != "Bearer client-own" || len(p.seen("X-Api-Key")) != 0 {
		t.Errorf("outside the base path the partner got %q", got)
	}
	if resp, body := rawProxyGet(t, g, c, p.URL+"/v1/%2e%2e/admin"); resp.StatusCode != 400 {
		t.Errorf("a dot segment toward the upstream's partner: %d %s", resp.StatusCode, body)
	}

	// Rotation: a reload fetches the secrets again.
	secretFile(t, dir, "basic", "ROTATEDSECRET")
	t.Setenv("OUTGATE_TEST_PAY_KEY", "ENVSECRET-2")
	g.rewrite(t, cfg)
	waitLog(t, g, "config reloaded", 1)
	relay("pay")
	want("Basic ROTATEDSECRET", "ENVSECRET-2")

	// A secret that cannot be read fails the reload, not the requests.
	if err := os.Chmod(basic, 0o644); err != nil {
		t.Fatal(err)
	}
	g.rewrite(t, cfg)
	refused := waitLog(t, g, "config reload refused; the previous config keeps serving", 1)
	if e := fmt.Sprint(refused["error"]); !strings.Contains(e, "${secret:file:"+basic+"}") {
		t.Errorf("the refusal does not name the reference: %s", e)
	}
	relay("pay")
	want("Basic ROTATEDSECRET", "ENVSECRET-2")

	for _, v := range []string{"FILESECRET", "dXNlcjpGSUxFU0VDUkVU", "ENVSECRET", "ROTATEDSECRET"} {
		if strings.Contains(g.logs.String(), v) {
			t.Errorf("the log holds a secret value %q", v)
		}
	}
}

// rawProxyGet sends an absolute-form GET whose path Go's client would not
// keep as written.
func rawProxyGet(t *testing.T, g *gateway, c client, target string) (*http.Response, string) {
	t.Helper()
	conn, br, resp, body := rawProxy(t, g, "GET "+target+" HTTP/1.1", "Host: x", "Proxy-Authorization: "+basic(c.name, c.key))
	_ = br
	conn.Close()
	return resp, body
}

// TestRelayMutualTLS: a loopback partner that refuses any connection
// without a client certificate from its CA. The upstream with client_cert
// reaches it; another upstream to the same partner without one is refused,
// before and after the first's connection is pooled; a reload with a new
// certificate presents the new one.
func TestRelayMutualTLS(t *testing.T) {
	ca := testutil.NewClientCA(t)
	var mu sync.Mutex
	var conns []string
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		conns = append(conns, r.RemoteAddr)
		mu.Unlock()
		io.WriteString(w, r.TLS.PeerCertificates[0].Subject.CommonName)
	}))
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.Pool}
	srv.StartTLS()
	t.Cleanup(srv.Close)

	dir := t.TempDir()
	certPEM, keyPEM := ca.Issue(t, "outgate-pay-1")
	certFile := secretFile(t, dir, "pay.crt", certPEM)
	keyFile := secretFile(t, dir, "pay.key", keyPEM)
	c := newClient("billing")
	u, _ := url.Parse(srv.URL)
	cfg := fmt.Sprintf(`
listen: 127.0.0.1:0
proxy_listen: 127.0.0.1:0
upstreams:
  pay:
    url: %[1]s
    client_cert: "${secret:file:%[2]s}"
    client_key: "${secret:file:%[3]s}"
  nocert: {url: "%[1]s"}
clients:
  - name: billing
    key_sha256: %[4]s
    upstreams: [pay, nocert]
    hosts: ["%[6]s"]
network: {allow_cidrs: [127.0.0.0/8], ca_files: [%[5]s]}
`, srv.URL, certFile, keyFile, c.hash, testutil.WriteCA(t, srv), u.Host)
	g := start(t, cfg)

	call := func(route string) (int, string) {
		t.Helper()
		resp, body := do(t, nil, relayReq(t, g, "GET", "/"+route+"/x", c.key, nil))
		return resp.StatusCode, body
	}
	if st, body := call("nocert"); st != 502 {
		t.Fatalf("without a certificate: %d %s", st, body)
	}
	for i := 0; i < 3; i++ {
		if st, body := call("pay"); st != 200 || body != "outgate-pay-1" {
			t.Fatalf("with the certificate: %d %s", st, body)
		}
	}
	mu.Lock()
	pooled := conns[1] == conns[2]
	mu.Unlock()
	if !pooled {
		t.Errorf("requests with the same certificate did not reuse a connection: %v", conns)
	}
	if st, body := call("nocert"); st != 502 {
		t.Fatalf("without a certificate, after the pay upstream's connection was pooled: %d %s", st, body)
	}

	// An absolute-form https proxy request to the upstream's origin goes
	// out with the certificate; a CONNECT tunnel is the client's own TLS,
	// which the gateway cannot add a certificate to: the partner refuses it.
	if resp, body := rawProxyGet(t, g, c, srv.URL+"/x"); resp.StatusCode != 200 || body != "outgate-pay-1" {
		t.Errorf("absolute-form https through the proxy: %d %s", resp.StatusCode, body)
	}
	conn, br, resp, _ := rawProxy(t, g, "CONNECT "+u.Host+" HTTP/1.1", "Host: "+u.Host, "Proxy-Authorization: "+basic(c.name, c.key))
	if resp.StatusCode != 200 || br.Buffered() != 0 {
		t.Fatalf("CONNECT: %d", resp.StatusCode)
	}
	tc := tls.Client(conn, &tls.Config{RootCAs: srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs, ServerName: "127.0.0.1"})
	req, _ := http.NewRequest("GET", srv.URL+"/x", nil)
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	if err := req.Write(tc); err == nil {
		if resp, err := http.ReadResponse(bufio.NewReader(tc), req); err == nil {
			t.Errorf("a CONNECT tunnel without the client's own certificate was answered: %d", resp.StatusCode)
		}
	}

	certPEM, keyPEM = ca.Issue(t, "outgate-pay-2")
	secretFile(t, dir, "pay.crt", certPEM)
	secretFile(t, dir, "pay.key", keyPEM)
	g.rewrite(t, cfg)
	waitLog(t, g, "config reloaded", 1)
	if st, body := call("pay"); st != 200 || body != "outgate-pay-2" {
		t.Fatalf("after rotation: %d %s", st, body)
	}
	if strings.Contains(g.logs.String(), "PRIVATE KEY") {
		t.Error("the log holds the key")
	}
}

// TestStartFailsOnMissingSecret: a secret that cannot be read stops the
// start, naming the reference and not another secret's value.
func TestStartFailsOnMissingSecret(t *testing.T) {
	t.Setenv("OUTGATE_TEST_PRESENT", "PRESENTSECRET")
	c := newClient("billing")
	err := runOnce(t, fmt.Sprintf(`
listen: 127.0.0.1:0
upstreams:
  pay:
    url: https://api.pay.example
    inject_headers:
      X-Api-Key: "${secret:env:OUTGATE_TEST_ABSENT}"
      X-Other: "${secret:env:OUTGATE_TEST_PRESENT}"
clients: [{name: billing, key_sha256: %s, upstreams: [pay]}]
`, c.hash))
	if err == nil || !strings.Contains(err.Error(), "${secret:env:OUTGATE_TEST_ABSENT}: the environment variable is not set") || strings.Contains(err.Error(), "PRESENTSECRET") {
		t.Fatalf("start: %v", err)
	}
}
