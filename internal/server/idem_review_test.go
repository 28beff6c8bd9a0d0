package server_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"sync/atomic"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/outgate/outgate/internal/config"
	"github.com/outgate/outgate/internal/idempotency"
	"github.com/outgate/outgate/internal/server"
	"github.com/outgate/outgate/internal/testutil"
)

// A web page that rebound its own name to 127.0.0.1 (DNS rebinding) is
// same-origin with the admin listener in the browser: it may add
// Outgate-Admin-Action without a preflight, and its connection comes from
// loopback. Only its Host header tells it apart: the name of the page's
// site, never an address. The clear is refused, and the key stays unknown.
func TestIdempotencyClearRefusesReboundHost(t *testing.T) {
	cp, p := newCountingPartner(t)
	a, b := newClient("shop"), newClient("other")
	g := start(t, idemConfig(p, a, b, ""))
	resp, body := do(t, nil, keyed(t, g, a, "POST", "/bank/hang", "r1", "x"))
	wantError(t, resp, body, 504, "upstream_timeout")

	_, port, _ := net.SplitHostPort(g.Admin)
	for _, host := range []string{"rebind.attacker.example:" + port, "rebind.attacker.example", "localhost.attacker.example:" + port} {
		req := clearReq(t, g, host, "client="+a.name+"&upstream=bank&key=r1")
		if resp, body := do(t, nil, req); resp.StatusCode != 403 {
			t.Errorf("clear with Host %q: %d %s; want 403", host, resp.StatusCode, body)
		}
	}
	resp, body = do(t, nil, keyed(t, g, a, "POST", "/bank/hang", "r1", "x"))
	wantError(t, resp, body, 409, "outcome_unknown")
	if n := cp.count("r1"); n != 1 {
		t.Fatalf("the partner saw r1 %d times", n)
	}

	// The operator's own spellings still work: an address, or localhost.
	for i, host := range []string{g.Admin, "localhost:" + port, "[::1]:" + port} {
		req := clearReq(t, g, host, "client="+a.name+"&upstream=bank&key=r1")
		resp, body := do(t, nil, req)
		if want := `{"cleared":` + map[bool]string{true: "true", false: "false"}[i == 0] + `}`; resp.StatusCode != 200 || strings.TrimSpace(body) != want {
			t.Errorf("clear with Host %q: %d %s; want 200 %s", host, resp.StatusCode, body, want)
		}
	}
}

// clearReq is what `outgate idempotency clear` sends, with another Host.
func clearReq(t *testing.T, g *gateway, host, form string) *http.Request {
	t.Helper()
	req, err := http.NewRequest("POST", "http://"+g.Admin+server.AdminClearPath, strings.NewReader(form))
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Outgate-Admin-Action", "clear")
	return req
}

// Two upstreams on one partner origin (two API versions, two products): a
// request retried through the proxy instead of the relay, with the same
// key, is the same request and must never be sent again. The proxy must
// file it under the upstream whose base path it is under, as the relay
// does, not under the first upstream of that origin by name.
func TestIdempotencyProxySharedOriginUsesTheRelaysKeySpace(t *testing.T) {
	cp := &countingPartner{seen: map[string]int{}}
	plain := httptest.NewServer(http.HandlerFunc(cp.handler))
	defer plain.Close()
	c := newClient("shop")
	host := strings.TrimPrefix(plain.URL, "http://")
	g := start(t, fmt.Sprintf(`
listen: 127.0.0.1:0
proxy_listen: 127.0.0.1:0
upstreams:
  apay: {url: "%s/v1", idempotency: {}}
  bpay: {url: "%s/v2", idempotency: {}}
clients:
  - {name: %s, key_sha256: %s, hosts: ["%s"], upstreams: [apay, bpay]}
network:
  allow_cidrs: [127.0.0.0/8]
`, plain.URL, plain.URL, c.name, c.hash, host))
	resp, body := do(t, nil, keyed(t, g, c, "POST", "/bpay/send", "s1", "hi"))
	if resp.StatusCode != 201 || body != "paid s1 (hi) #1" {
		t.Fatalf("relay: %d %q", resp.StatusCode, body)
	}
	pu := &url.URL{Scheme: "http", User: url.UserPassword(c.name, c.key), Host: g.Proxy}
	hc := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu)}}
	req, _ := http.NewRequest("POST", plain.URL+"/v2/send", strings.NewReader("hi"))
	req.Header.Set("Idempotency-Key", "s1")
	resp, body = do(t, hc, req)
	if resp.StatusCode != 201 || body != "paid s1 (hi) #1" || resp.Header.Get("Outgate-Idempotent-Replay") != "true" {
		t.Errorf("proxy retry: %d %q replay=%q; want the relay's answer replayed", resp.StatusCode, body, resp.Header.Get("Outgate-Idempotent-Replay"))
	}
	if n := cp.count("s1"); n != 1 {
		t.Fatalf("the partner saw s1 %d times", n)
	}
	// Under apay's base path the key is apay's: a new request there.
	req, _ = http.NewRequest("POST", plain.URL+"/v1/send", strings.NewReader("hi"))
	req.Header.Set("Idempotency-Key", "s1")
	resp, body = do(t, hc, req)
	if resp.StatusCode != 201 || resp.Header.Get("Outgate-Idempotent-Replay") != "" {
		t.Errorf("proxy to apay: %d %q", resp.StatusCode, body)
	}
	if a := g.logs.audit(t, resp.Header.Get("Outgate-Request-Id")); a["route"] != "apay" {
		t.Errorf("audit route = %v, want apay", a["route"])
	}
	// A path that climbs from one base path into another is refused, not
	// filed under the base it starts in.
	req, _ = http.NewRequest("POST", plain.URL+"/v2/%2e%2e/v1/send", strings.NewReader("hi"))
	req.Header.Set("Idempotency-Key", "s2")
	resp, body = do(t, hc, req)
	wantError(t, resp, body, 400, "bad_request")
	if n := cp.count("s2"); n != 0 {
		t.Fatalf("the partner saw s2 %d times", n)
	}
}

// resettingH2Partner is an HTTP/2 partner that takes each request and
// then resets its stream with PROTOCOL_ERROR (a careless partner, or a
// proxy in front of one): the request reached it, and may have moved money.
// Go's HTTP/2 transport retries a bodiless request after exactly that
// reset, on its own. It counts the requests it got.
func resettingH2Partner(t *testing.T) (url, ca string, seen *atomic.Int32) {
	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	srv.EnableHTTP2 = true
	srv.StartTLS() // for its certificate only
	t.Cleanup(srv.Close)
	cfg := srv.TLS.Clone()
	cfg.NextProtos = []string{"h2"}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	seen = &atomic.Int32{}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
			go func() {
				defer c.Close()
				preface := make([]byte, len(http2.ClientPreface))
				if _, err := io.ReadFull(c, preface); err != nil {
					return
				}
				fr := http2.NewFramer(c, c)
				fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
				if fr.WriteSettings() != nil {
					return
				}
				for { // ends when the connection closes
					f, err := fr.ReadFrame()
					if err != nil {
						return
					}
					switch f := f.(type) {
					case *http2.SettingsFrame:
						if !f.IsAck() {
							fr.WriteSettingsAck()
						}
					case *http2.MetaHeadersFrame:
						if strings.HasSuffix(f.PseudoValue("path"), "/hello") {
							// A plain answer, so the gateway learns the
							// partner speaks HTTP/2.
							var b bytes.Buffer
							hpack.NewEncoder(&b).WriteField(hpack.HeaderField{Name: ":status", Value: "204"})
							fr.WriteHeaders(http2.HeadersFrameParam{StreamID: f.StreamID, BlockFragment: b.Bytes(), EndStream: true, EndHeaders: true})
							continue
						}
						seen.Add(1)
						fr.WriteRSTStream(f.StreamID, http2.ErrCodeProtocol)
					}
				}
			}()
		}
	}()
	return "https://" + ln.Addr().String(), testutil.WriteCA(t, srv), seen
}

// A keyed request without a body (POST /payouts/po_1/execute) to an HTTP/2
// partner that resets the stream after taking it must not be sent again by
// the transport's own retry: outgate promises one send per key.
func TestIdempotentBodilessRequestIsNotRetriedByHTTP2(t *testing.T) {
	u, ca, seen := resettingH2Partner(t)
	c := newClient("shop")
	g := start(t, fmt.Sprintf(`
listen: 127.0.0.1:0
upstreams:
  bank: {url: "%s/v1", timeout: 2s, idempotency: {}}
clients:
  - {name: %s, key_sha256: %s, upstreams: [bank]}
network:
  allow_cidrs: [127.0.0.0/8]
  ca_files: [%s]
`, u, c.name, c.hash, ca))
	resp, body := do(t, nil, keyed(t, g, c, "POST", "/bank/payouts/po_1/execute", "x1", ""))
	if n := seen.Load(); n != 1 {
		t.Errorf("the partner got the request %d times", n)
	}
	wantError(t, resp, body, 502, "bad_gateway")
	resp, body = do(t, nil, keyed(t, g, c, "POST", "/bank/payouts/po_1/execute", "x1", ""))
	wantError(t, resp, body, 409, "outcome_unknown")
	if n := seen.Load(); n != 1 {
		t.Fatalf("after the retry the partner got the request %d times", n)
	}

	// Once the gateway knows the partner speaks HTTP/2 (its pooled
	// HTTP/2 connections), the same holds.
	resp, body = do(t, nil, relayReq(t, g, "GET", "/bank/hello", c.key, nil))
	if resp.StatusCode != 204 || resp.ProtoMajor != 1 {
		t.Fatalf("hello: %d %s", resp.StatusCode, body)
	}
	resp, body = do(t, nil, keyed(t, g, c, "DELETE", "/bank/mandates/m_1", "x2", ""))
	if n := seen.Load(); n != 2 {
		t.Errorf("the partner got the DELETE %d times", n-1)
	}
	wantError(t, resp, body, 502, "bad_gateway")
}

// Clearing a key whose request is on its way to the partner right now
// would let a retry go out beside it: the running gateway refuses, and the
// request settles as usual.
func TestIdempotencyClearRefusesAKeyInFlight(t *testing.T) {
	cp, p := newCountingPartner(t)
	a, b := newClient("shop"), newClient("other")
	g := start(t, idemConfig(p, a, b, ""))
	cfg, err := config.Load(g.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg.AdminListen = g.Admin

	type result struct {
		resp *http.Response
		body string
	}
	first := make(chan result, 1)
	go func() {
		req := keyed(t, g, a, "POST", "/strict/slow", "f1", "x")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			first <- result{}
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		first <- result{resp, string(body)}
	}()
	<-cp.arrived // the partner has the request; its answer is pending
	ok, err := server.ClearKey(context.Background(), cfg, idempotency.Key{Client: a.name, Upstream: "strict", Key: "f1"})
	if err == nil || ok || !strings.Contains(err.Error(), "in flight") {
		t.Errorf("clear of a key in flight = %v, %v; want refused", ok, err)
	}
	resp, body := do(t, nil, keyed(t, g, a, "POST", "/strict/slow", "f1", "x"))
	wantError(t, resp, body, 409, "idempotency_in_flight")
	cp.release <- struct{}{}
	if r := <-first; r.resp == nil || r.resp.StatusCode != 201 {
		t.Fatalf("the first request: %+v", r)
	}
	resp, _ = do(t, nil, keyed(t, g, a, "POST", "/strict/slow", "f1", "x"))
	if resp.StatusCode != 201 || resp.Header.Get("Outgate-Idempotent-Replay") != "true" {
		t.Errorf("after the answer: %d, replay %q", resp.StatusCode, resp.Header.Get("Outgate-Idempotent-Replay"))
	}
	if n := cp.count("f1"); n != 1 {
		t.Fatalf("the partner saw f1 %d times", n)
	}
}
