package server_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outgate/outgate/internal/testutil"
)

// rawUpstream accepts TCP connections and hands each to behave.
func rawUpstream(t *testing.T, behave func(net.Conn)) string {
	return testutil.NewTCPServer(t, behave).Addr
}

func readRequest(c net.Conn) *http.Request {
	r, err := http.ReadRequest(bufio.NewReader(c))
	if err != nil {
		return nil
	}
	io.Copy(io.Discard, r.Body)
	return r
}

// TestUpstreamFaults: each misbehaving partner gets the documented error or
// a visibly broken response, the audit line says what happened, and nothing
// hangs past its timeout.
func TestUpstreamFaults(t *testing.T) {
	stop := make(chan struct{})
	resetMid := rawUpstream(t, func(c net.Conn) {
		readRequest(c)
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789")
		c.(*net.TCPConn).SetLinger(0) // RST, not FIN
	})
	endless := rawUpstream(t, func(c net.Conn) {
		readRequest(c)
		io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
		select {
		case <-stop:
		case <-time.After(20 * time.Second):
		}
	})
	tlsStall := rawUpstream(t, func(c net.Conn) {
		select { // accepts TCP, never says a TLS word
		case <-stop:
		case <-time.After(20 * time.Second):
		}
	})
	t.Cleanup(func() { close(stop) })
	good := newPartner(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprintf(w, "proto %d", r.ProtoMajor) })
	h2 := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintf(w, "proto %d", r.ProtoMajor) }))
	h2.EnableHTTP2 = true
	h2.StartTLS()
	defer h2.Close()
	dns := testutil.NewDNS(t)
	dns.Set("wrong-name.test", "127.0.0.1") // the test certificate is not valid for this name
	_, goodPort, _ := net.SplitHostPort(strings.TrimPrefix(good.URL, "https://"))

	c := newClient("billing")
	cfg := fmt.Sprintf(`
listen: 127.0.0.1:0
upstreams:
  reset: {url: "http://%s"}
  endless: {url: "http://%s"}
  tlsstall: {url: "https://%s"}
  wrongname: {url: "https://wrong-name.test:%s"}
  h2: {url: "%s"}
clients:
  - {name: billing, key_sha256: %s, upstreams: [reset, endless, tlsstall, wrongname, h2]}
network: {allow_cidrs: [127.0.0.0/8], resolvers: ["%s"], ca_files: [%s, %s]}
limits: {upstream_idle_timeout: 300ms, tls_handshake_timeout: 300ms}
`, resetMid, endless, tlsStall, goodPort, h2.URL, c.hash, dns.Addr, good.ca, testutil.WriteCA(t, h2))
	g := start(t, cfg)

	t.Run("http2 partner", func(t *testing.T) {
		resp, body := do(t, nil, relayReq(t, g, "GET", "/h2/x", c.key, nil))
		if resp.StatusCode != 200 || body != "proto 2" {
			t.Errorf("%d %q", resp.StatusCode, body)
		}
	})
	for _, tt := range []struct {
		route, code string
		status      int
	}{{"tlsstall", "upstream_timeout", 504}, {"wrongname", "bad_gateway", 502}} {
		t.Run(tt.route, func(t *testing.T) {
			resp, body := do(t, nil, relayReq(t, g, "GET", "/"+tt.route+"/x", c.key, nil))
			wantError(t, resp, body, tt.status, tt.code)
		})
	}
	for _, tt := range []struct{ route, reason string }{{"reset", "upstream_body_broken"}, {"endless", "upstream_body_idle"}} {
		t.Run(tt.route, func(t *testing.T) {
			// The client must never see a complete response: either the
			// request fails, or the body does, and promptly.
			resp, err := (&http.Client{Timeout: 15 * time.Second}).Do(relayReq(t, g, "GET", "/"+tt.route+"/x", c.key, nil))
			if err == nil {
				_, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			if err == nil || strings.Contains(err.Error(), "Client.Timeout") {
				t.Fatalf("err = %v; the client must see the response break, promptly", err)
			}
			waitFor(t, func() bool {
				for _, a := range g.logs.lines("request") {
					if a["route"] == tt.route && a["reason"] == tt.reason && a["decision"] == "error" {
						return true
					}
				}
				return false
			})
		})
	}
}

// TestNeverSendsTwice: a POST whose connection breaks after the partner
// read it is answered 502 and reaches the partner once, even on a reused
// connection and with an Idempotency-Key (which Go's transport would
// otherwise treat as permission to re-send).
func TestNeverSendsTwice(t *testing.T) {
	var posts atomic.Int32
	var lastKey atomic.Value
	up := rawUpstream(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			r, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, r.Body)
			if r.Method == http.MethodPost {
				posts.Add(1)
				lastKey.Store(r.Header.Get("Idempotency-Key"))
				return // processed, then the connection dies before the answer
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	c := newClient("billing")
	g := start(t, fmt.Sprintf(`
listen: 127.0.0.1:0
upstreams: {pay: {url: "http://%s"}}
clients: [{name: billing, key_sha256: %s, upstreams: [pay]}]
network: {allow_cidrs: [127.0.0.0/8]}
`, up, c.hash))
	for _, body := range []string{"", `{"amount":1000}`} {
		posts.Store(0)
		// Warm a keep-alive connection to the partner, then POST on it.
		if resp, _ := do(t, nil, relayReq(t, g, "GET", "/pay/warm", c.key, nil)); resp.StatusCode != 200 {
			t.Fatalf("warm-up: %d", resp.StatusCode)
		}
		req := relayReq(t, g, "POST", "/pay/transfer", c.key, strings.NewReader(body))
		req.Header.Set("Idempotency-Key", "transfer-42")
		resp, b := do(t, nil, req)
		wantError(t, resp, b, 502, "bad_gateway")
		if n := posts.Load(); n != 1 {
			t.Fatalf("body %q: the partner received the POST %d times", body, n)
		}
		if k := lastKey.Load(); k != "transfer-42" {
			t.Errorf("Idempotency-Key reached the partner as %q", k)
		}
	}
}

// TestHostileClients: each trick is refused or bounded, and the gateway
// keeps serving others.
func TestHostileClients(t *testing.T) {
	var partnerReqs atomic.Int32
	p := newPartner(t, func(w http.ResponseWriter, r *http.Request) {
		partnerReqs.Add(1)
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s %q", r.Method, r.URL.Path, b)
	})
	c := newClient("billing")
	g := start(t, relayConfig(p, c, "", "proxy_listen: 127.0.0.1:0\nlimits: {read_header_timeout: 300ms, read_timeout: 1s}\n"))
	healthy := func() {
		t.Helper()
		if resp, body := do(t, nil, relayReq(t, g, "GET", "/partner/ok", c.key, nil)); resp.StatusCode != 200 {
			t.Fatalf("the gateway stopped serving: %d %s", resp.StatusCode, body)
		}
	}
	raw := func(payload string) string {
		conn, err := net.Dial("tcp", g.Relay)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(conn, payload)
		b, _ := io.ReadAll(conn)
		return string(b)
	}

	t.Run("slowloris headers", func(t *testing.T) {
		conn, _ := net.Dial("tcp", g.Relay)
		defer conn.Close()
		io.WriteString(conn, "GET /partner/x HTTP/1.1\r\nHost: x\r\n")
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		for i := 0; i < 20; i++ { // a header byte every 100ms, never finishing
			if _, err := io.WriteString(conn, "X"); err != nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
			healthy()
		}
		b := make([]byte, 1)
		_, err := conn.Read(b)
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatal("the gateway kept a slow-header connection open")
		}
	})
	t.Run("trickling body", func(t *testing.T) {
		conn, _ := net.Dial("tcp", g.Relay)
		defer conn.Close()
		fmt.Fprintf(conn, "POST /partner/x HTTP/1.1\r\nHost: x\r\nOutgate-Key: %s\r\nContent-Length: 1000\r\n\r\n", c.key)
		for i := 0; i < 30; i++ {
			if _, err := io.WriteString(conn, "a"); err != nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		// The gateway ends the exchange itself (an answer or a close), never
		// with the partner's 200; a read that times out means it kept waiting.
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		b, err := io.ReadAll(conn)
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Errorf("the gateway kept a trickling body's connection open: %q", b)
		}
		if strings.Contains(string(b), "200 OK") {
			t.Errorf("trickled body reached the partner: %q", b)
		}
		healthy()
	})
	t.Run("content-length and transfer-encoding together", func(t *testing.T) {
		// The gateway parses the body as chunked (Go drops Content-Length),
		// so the "smuggled" request is a separate request to the gateway,
		// which checks it on its own: without a key it never reaches the partner.
		smuggled := "GET /partner/smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
		out := raw(fmt.Sprintf("POST /partner/x HTTP/1.1\r\nHost: x\r\nOutgate-Key: %s\r\nContent-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n%s", c.key, 5+len(smuggled), smuggled))
		if strings.Contains(out, "/v2/smuggled") {
			t.Errorf("the smuggled request reached the partner: %q", out)
		}
		if !strings.Contains(out, `"code":"unauthorized"`) {
			t.Errorf("the second request was not checked on its own: %q", out)
		}
	})
	t.Run("two different content-lengths", func(t *testing.T) {
		out := raw("POST /partner/x HTTP/1.1\r\nHost: x\r\nOutgate-Key: " + c.key + "\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nabcde")
		if !strings.HasPrefix(out, "HTTP/1.1 400") {
			t.Errorf("got %q", out)
		}
	})
	t.Run("a thousand connections without a key", func(t *testing.T) {
		var wg sync.WaitGroup
		var refused, other atomic.Int32
		var firstErr atomic.Value
		for i := 0; i < 1000; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := http.Get("http://" + g.Relay + "/partner/x")
				if err != nil {
					firstErr.CompareAndSwap(nil, err.Error())
					other.Add(1)
					return
				}
				resp.Body.Close()
				if resp.StatusCode == 401 {
					refused.Add(1)
				} else {
					other.Add(1)
				}
			}()
			if i%100 == 99 {
				wg.Wait()
			}
		}
		wg.Wait()
		if refused.Load() != 1000 {
			t.Errorf("%d refused with 401, %d other outcomes (first error: %v)", refused.Load(), other.Load(), firstErr.Load())
		}
		healthy()
	})
	t.Run("odd spellings of a forbidden host on the proxy", func(t *testing.T) {
		for _, target := range []string{"HTTP://169.254.169.254/latest", "http://user@169.254.169.254/latest", "http://169.254.169.254./latest",
			"http://[::ffff:169.254.169.254]/latest", "http://2852039166/latest", "http://0xa9.0xfe.0xa9.0xfe/latest"} {
			_, _, resp, body := rawProxy(t, g, "GET "+target+" HTTP/1.1", "Host: 169.254.169.254", "Proxy-Authorization: "+basic(c.name, c.key))
			if resp.StatusCode != 400 && resp.StatusCode != 403 {
				t.Errorf("%s: %d %s", target, resp.StatusCode, body)
			}
		}
		healthy()
	})
}
