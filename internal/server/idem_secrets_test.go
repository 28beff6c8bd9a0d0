package server_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestIdempotentRequestsCarryPartnerSecrets: an upstream with both
// idempotency and inject_headers sends its keyed requests with the
// gateway's credentials (and without the client's own copy), through the
// relay and as plain-http proxy requests, as it does unkeyed ones. The two
// features came from separate branches; the keyed path once built its
// upstream request without the credentials.
func TestIdempotentRequestsCarryPartnerSecrets(t *testing.T) {
	p := newHeaderPartner(t)
	c := newClient("billing")
	t.Setenv("OUTGATE_TEST_BANK_KEY", "ENVSECRET-IDEM")
	u, _ := url.Parse(p.URL)
	g := start(t, fmt.Sprintf(`
listen: 127.0.0.1:0
proxy_listen: 127.0.0.1:0
upstreams:
  bank:
    url: %[1]s/v1
    inject_headers: {X-Api-Key: "${secret:env:OUTGATE_TEST_BANK_KEY}"}
    idempotency: {}
clients:
  - {name: billing, key_sha256: %[2]s, upstreams: [bank], hosts: ["%[3]s"]}
network: {allow_cidrs: [127.0.0.0/8]}
`, p.URL, c.hash, u.Host))

	wantKey := func(how string) {
		t.Helper()
		if got := p.seen("X-Api-Key"); len(got) != 1 || strings.Join(got["X-Api-Key"], "|") != "ENVSECRET-IDEM" {
			t.Errorf("%s: X-Api-Key at the partner %q, want only the gateway's", how, got)
		}
	}
	req := relayReq(t, g, "POST", "/bank/pay", c.key, strings.NewReader("{}"))
	req.Header.Set("Idempotency-Key", "k-relay")
	req.Header.Set("X-Api-Key", "client-own")
	if resp, body := do(t, nil, req); resp.StatusCode != 200 {
		t.Fatalf("relay: %d %s", resp.StatusCode, body)
	}
	wantKey("relay with an idempotency key")

	proxyURL, _ := url.Parse("http://" + g.Proxy)
	proxyURL.User = url.UserPassword(c.name, c.key)
	pc := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL)}}
	preq, _ := http.NewRequest("POST", p.URL+"/v1/pay", strings.NewReader("{}"))
	preq.Header.Set("Idempotency-Key", "k-proxy")
	preq.Header.Set("X-Api-Key", "client-own")
	if resp, body := do(t, pc, preq); resp.StatusCode != 200 {
		t.Fatalf("proxy: %d %s", resp.StatusCode, body)
	}
	wantKey("proxy with an idempotency key")
}
