package server_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// forger is a partner that answers with outgate's own headers, in the
// header block and as trailers, and asks to drop the gateway's request id
// through Connection.
func forger(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Trailer", "Outgate-Error, X-Partner-Trailer")
	w.Header().Set("Outgate-Error", "unauthorized")
	w.Header().Set("Outgate-Request-Id", "forged-by-the-partner")
	w.Header().Set("Outgate-Client", "someone-else")
	w.Header().Set("Connection", "Outgate-Request-Id")
	w.Header().Set("X-Partner", "yes")
	io.WriteString(w, "partner body")
	w.Header().Set("Outgate-Error", "forbidden")
	w.Header().Set("X-Partner-Trailer", "kept")
	w.Header().Set(http.TrailerPrefix+"Outgate-Upstream", "undeclared")
}

// checkOwnHeaders holds a partner's answer to what the client must see:
// the partner's headers, and of outgate's only the gateway's own request id,
// the one its audit line carries.
func checkOwnHeaders(t *testing.T, g *gateway, resp *http.Response, body string) {
	t.Helper()
	if resp.StatusCode != 200 || body != "partner body" || resp.Header.Get("X-Partner") != "yes" {
		t.Fatalf("response %d %v %q", resp.StatusCode, resp.Header, body)
	}
	for k := range resp.Header {
		if strings.HasPrefix(k, "Outgate-") && k != "Outgate-Request-Id" {
			t.Errorf("the partner's %s: %q reached the client", k, resp.Header.Values(k))
		}
	}
	ids := resp.Header.Values("Outgate-Request-Id")
	if len(ids) != 1 || len(ids[0]) != 32 {
		t.Fatalf("Outgate-Request-Id = %q, want the gateway's own", ids)
	}
	for k := range resp.Trailer {
		if strings.HasPrefix(k, "Outgate-") {
			t.Errorf("the partner's trailer %s: %q reached the client", k, resp.Trailer.Values(k))
		}
	}
	if resp.Trailer.Get("X-Partner-Trailer") != "kept" {
		t.Errorf("trailers = %v, want the partner's X-Partner-Trailer", resp.Trailer)
	}
	if a := g.logs.audit(t, ids[0]); a["status"] != float64(200) {
		t.Errorf("audit line for %s: %v", ids[0], a)
	}
}

func TestPartnerCannotForgeOutgateHeaders(t *testing.T) {
	t.Run("relay", func(t *testing.T) {
		p := newPartner(t, forger)
		c := newClient("billing")
		g := start(t, relayConfig(p, c, "", ""))
		resp, body := do(t, nil, relayReq(t, g, "GET", "/partner/x", c.key, nil))
		checkOwnHeaders(t, g, resp, body)
	})
	t.Run("proxy", func(t *testing.T) {
		plain := httptest.NewServer(http.HandlerFunc(forger))
		defer plain.Close()
		c := newClient("billing")
		g := start(t, proxyConfig(c, []string{strings.TrimPrefix(plain.URL, "http://")}, "network: {allow_cidrs: [127.0.0.0/8]}\n"))
		resp, body := do(t, proxyClient(g, c, ""), mustReq(t, "GET", plain.URL+"/x"))
		checkOwnHeaders(t, g, resp, body)
	})
}

// clientClaims are headers in which a client describes itself or the hops
// before outgate. A partner that trusts them (for an allowlist, a tenant, a
// redirect host) would trust what any caller wrote.
var clientClaims = map[string]string{
	"X-Forwarded-For":    "198.51.100.1",
	"X-Forwarded-Host":   "admin.partner.example",
	"X-Forwarded-Proto":  "https",
	"X-Forwarded-Port":   "443",
	"X-Forwarded-Prefix": "/admin",
	"Forwarded":          "for=198.51.100.1;host=admin.partner.example",
	"Via":                "1.1 trusted-proxy",
	"X-Real-Ip":          "198.51.100.1",
	"True-Client-Ip":     "198.51.100.1",
	"X-Api-Key":          "front-door-key",
}

func TestClientHeadersStayBehind(t *testing.T) {
	p := newPartner(t, func(w http.ResponseWriter, r *http.Request) {})
	c := newClient("billing")
	upstreams := `  optin:
    url: %s/v2
    forward_headers: [X-Forwarded-For, x-api-key]
`
	cfg := relayConfig(p, c, "", "")
	cfg = strings.Replace(cfg, "upstreams:\n", "upstreams:\n"+fmt.Sprintf(upstreams, p.URL), 1)
	cfg = strings.Replace(cfg, "upstreams: [partner, metadata]", "upstreams: [partner, metadata, optin]", 1)
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer plain.Close()
	var seen *http.Request
	plain.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen = r })
	cfg = strings.Replace(cfg, "key_sha256: "+c.hash+"\n", "key_sha256: "+c.hash+"\n    hosts: ["+strings.TrimPrefix(plain.URL, "http://")+"]\n", 1)
	cfg = "proxy_listen: 127.0.0.1:0\n" + cfg
	g := start(t, cfg)

	send := func(req *http.Request, hc *http.Client) {
		t.Helper()
		for k, v := range clientClaims {
			req.Header.Set(k, v)
		}
		if resp, body := do(t, hc, req); resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", req.URL, resp.StatusCode, body)
		}
	}
	send(relayReq(t, g, "GET", "/partner/x", c.key, nil), nil)
	got := p.last.Load().Header
	for k := range clientClaims {
		if v := got.Values(k); len(v) != 0 {
			t.Errorf("relay: the partner received the client's %s: %q", k, v)
		}
	}

	send(mustReq(t, "GET", plain.URL+"/x"), proxyClient(g, c, ""))
	for k := range clientClaims {
		if v := seen.Header.Values(k); len(v) != 0 {
			t.Errorf("proxy: the partner received the client's %s: %q", k, v)
		}
	}

	// An upstream that asks for some gets exactly those, as the client sent them.
	send(relayReq(t, g, "GET", "/optin/x", c.key, nil), nil)
	got = p.last.Load().Header
	for k, v := range clientClaims {
		want := []string(nil)
		if k == "X-Forwarded-For" || k == "X-Api-Key" {
			want = []string{v}
		}
		if fmt.Sprint(got.Values(k)) != fmt.Sprint(want) {
			t.Errorf("opted-in upstream: %s = %q, want %q", k, got.Values(k), want)
		}
	}
}

// TestServeLogsConfigWarnings: the warnings of `config check` (here the
// metadata upstream and the loopback allow_cidrs of relayConfig) reach the
// log of `outgate serve` too.
func TestServeLogsConfigWarnings(t *testing.T) {
	p := newPartner(t, func(w http.ResponseWriter, r *http.Request) {})
	g := start(t, relayConfig(p, newClient("billing"), "", ""))
	want := []string{"upstreams.metadata.url: 169.254.169.254 is cloud metadata", "network.allow_cidrs[0]: 127.0.0.0/8 lets requests reach 127.0.0.0 (loopback)"}
	// Log lines are flushed every 100 ms: wait for them.
	waitFor(t, func() bool {
		var got []string
		for _, l := range g.logs.lines("config warning") {
			got = append(got, fmt.Sprint(l["warning"]))
		}
		for _, w := range want {
			found := false
			for _, g := range got {
				found = found || strings.Contains(g, w)
			}
			if !found {
				return false
			}
		}
		return true
	})
}
