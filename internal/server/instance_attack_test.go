package server_test

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outgate/outgate/internal/server"
	"github.com/outgate/outgate/internal/testutil"
)

// instanceTLS is the shape of what instance mode hands to Options.TLS:
// a certificate and, as certmagic's config does, h2, http/1.1 and
// acme-tls/1 offered, with nothing refused that the listener must refuse.
func instanceTLS(t *testing.T) (*tls.Config, string) {
	t.Helper()
	certFile, keyFile := testutil.SelfSigned(t, "instance")
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	// MinVersion TLS 1.0: the listener must raise it itself.
	return &tls.Config{MinVersion: tls.VersionTLS10, Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1", "acme-tls/1"}}, certFile
}

// TestInstanceListenerProtocolGames attacks the one TLS listener of
// instance mode (relay and proxy by request form) with what a hostile
// client can put on one connection: HTTP/2 by ALPN or by preface, the
// ACME challenge protocol (Go's server closes a connection that negotiated
// a protocol it has no handler for), a CONNECT pipelined after a relay
// request, an h2c Upgrade and `OPTIONS *`. None reaches a partner
// except the authenticated requests themselves.
func TestInstanceListenerProtocolGames(t *testing.T) {
	var relayHits atomic.Int64
	var upgradeSeen atomic.Value
	upgradeSeen.Store("")
	p := newPartner(t, func(w http.ResponseWriter, r *http.Request) {
		relayHits.Add(1)
		if u := r.Header.Get("Upgrade") + r.Header.Get("Http2-Settings"); u != "" {
			upgradeSeen.Store(u)
		}
		io.WriteString(w, "tls partner "+r.URL.Path)
	})
	plain, plainHits := countingServer(t)
	plainHost := strings.TrimPrefix(plain.URL, "http://")
	c := newClient("billing")
	conf, certFile := instanceTLS(t)
	addr := freePort(t)
	g := startWith(t, sharedConfig(addr, p, c, []string{plainHost}, "admin_listen: 127.0.0.1:0\n"), func(o *server.Options) { o.TLS = conf })
	client := func(protos ...string) *tls.Config {
		tc := testutil.TLSConfig(certFile)
		tc.NextProtos = protos
		return tc
	}

	t.Run("h2 by ALPN is never negotiated", func(t *testing.T) {
		conn, err := tls.Dial("tcp", g.Relay, client("h2"))
		if err == nil {
			defer conn.Close()
			if np := conn.ConnectionState().NegotiatedProtocol; np == "h2" {
				t.Fatal("the shared listener negotiated h2: a forward proxy's CONNECT cannot work over it")
			}
		}
		conn, err = tls.Dial("tcp", g.Relay, client("h2", "http/1.1"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if np := conn.ConnectionState().NegotiatedProtocol; np != "http/1.1" {
			t.Errorf("negotiated %q, want http/1.1", np)
		}
	})

	t.Run("TLS 1.0 and 1.1 are refused", func(t *testing.T) {
		for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11} {
			old := client("http/1.1")
			old.MinVersion, old.MaxVersion = v, v
			if conn, err := tls.Dial("tcp", g.Relay, old); err == nil {
				conn.Close()
				t.Errorf("%s accepted", tls.VersionName(v))
			}
		}
	})

	t.Run("an HTTP/2 preface on an HTTP/1.1 connection", func(t *testing.T) {
		before := relayHits.Load()
		conn, err := tls.Dial("tcp", g.Relay, client("http/1.1"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(conn, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
		b, _ := io.ReadAll(conn)
		if strings.Contains(string(b), " 200 ") || relayHits.Load() != before {
			t.Errorf("the h2 preface was served: %q", b)
		}
	})

	t.Run("acme-tls/1 serves no HTTP", func(t *testing.T) {
		before := relayHits.Load()
		conn, err := tls.Dial("tcp", g.Relay, client("acme-tls/1"))
		if err != nil {
			t.Logf("handshake refused: %v", err)
			return // refused at the handshake: nothing served
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		t.Logf("negotiated %q", conn.ConnectionState().NegotiatedProtocol)
		fmt.Fprintf(conn, "GET /partner/acme HTTP/1.1\r\nHost: gw\r\nOutgate-Key: %s\r\n\r\n", c.key)
		b, _ := io.ReadAll(conn)
		if len(b) != 0 || relayHits.Load() != before {
			t.Errorf("a connection that negotiated acme-tls/1 was served HTTP: %q", b)
		}
	})

	t.Run("CONNECT pipelined after a relay request owes its own credential", func(t *testing.T) {
		conn, err := tls.Dial("tcp", g.Relay, client("http/1.1"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(conn, "GET /partner/first HTTP/1.1\r\nHost: gw\r\nOutgate-Key: %s\r\n\r\nCONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", c.key, plainHost, plainHost)
		br := bufio.NewReader(conn)
		first, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(first.Body)
		if first.StatusCode != 200 || string(b) != "tls partner /v2/first" {
			t.Errorf("relay request: %d %q", first.StatusCode, b)
		}
		second, err := http.ReadResponse(br, &http.Request{Method: "CONNECT"})
		if err != nil {
			t.Fatal(err)
		}
		b, _ = io.ReadAll(second.Body)
		wantError(t, second, string(b), 407, "proxy_auth_required")
	})

	t.Run("Host naming an allowed destination does not stand for the request-target", func(t *testing.T) {
		auth := basic(c.name, c.key)
		for _, raw := range []string{
			fmt.Sprintf("CONNECT 127.0.0.1:1 HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: %s\r\n\r\n", plainHost, auth),
			fmt.Sprintf("GET http://127.0.0.1:1/x HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: %s\r\n\r\n", plainHost, auth),
		} {
			resp, body := wire(t, g.Relay, client("http/1.1"), raw)
			wantError(t, resp, body, 403, "forbidden")
		}
	})

	t.Run("an h2c Upgrade is neither honoured nor forwarded", func(t *testing.T) {
		raw := fmt.Sprintf("GET /partner/up HTTP/1.1\r\nHost: gw\r\nOutgate-Key: %s\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n", c.key)
		resp, body := wire(t, g.Relay, client("http/1.1"), raw)
		if resp.StatusCode != 200 || resp.ProtoMajor != 1 || body != "tls partner /v2/up" {
			t.Errorf("upgrade: %s %d %q", resp.Proto, resp.StatusCode, body)
		}
		if u := upgradeSeen.Load().(string); u != "" {
			t.Errorf("the partner got the client's upgrade headers: %q", u)
		}
	})

	t.Run("OPTIONS * reaches no handler", func(t *testing.T) {
		before := relayHits.Load()
		resp, _ := wire(t, g.Relay, client("http/1.1"), "OPTIONS * HTTP/1.1\r\nHost: gw\r\n\r\n")
		if relayHits.Load() != before || plainHits.Load() != 0 {
			t.Errorf("OPTIONS * reached a partner (%d)", resp.StatusCode)
		}
	})
}

// TestGateHoldsOnAKeptAliveConnection: the gate is asked for every
// request, not once per connection, so a connection opened (and
// authenticated) while the gate was open gets 503 for its next request
// once the gate closes.
func TestGateHoldsOnAKeptAliveConnection(t *testing.T) {
	var hits atomic.Int64
	p := newPartner(t, func(w http.ResponseWriter, r *http.Request) { hits.Add(1); io.WriteString(w, "partner") })
	c := newClient("billing")
	conf, certFile := instanceTLS(t)
	var gateErr atomic.Pointer[error]
	var open error
	gateErr.Store(&open)
	g := startWith(t, sharedConfig(freePort(t), p, c, []string{"api.partner.example"}, "admin_listen: 127.0.0.1:0\n"), func(o *server.Options) {
		o.TLS = conf
		o.Gate = func() error { return *gateErr.Load() }
	})
	tc := testutil.TLSConfig(certFile)
	tc.NextProtos = []string{"http/1.1"}
	conn, err := tls.Dial("tcp", g.Relay, tc)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(conn)
	get := func() (*http.Response, string) {
		fmt.Fprintf(conn, "GET /partner/x HTTP/1.1\r\nHost: gw\r\nOutgate-Key: %s\r\n\r\n", c.key)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	if resp, body := get(); resp.StatusCode != 200 {
		t.Fatalf("with the gate open: %d %q", resp.StatusCode, body)
	}
	closed := errors.New("calls leave from 198.51.100.7, not one of the deployment's IPs")
	gateErr.Store(&closed)
	resp, body := get()
	wantError(t, resp, body, 503, "egress_unverified")
	if n := hits.Load(); n != 1 {
		t.Errorf("the partner got %d requests, want the one before the gate closed", n)
	}
}

// TestSlowHandshakeGivesItsSlotBack: a client that starts a TLS handshake
// and stops (half a ClientHello) holds one of max_connections only until
// auth_timeout: it is closed, and the next client is served. The server's
// own timeouts are an hour here, so only auth_timeout can close it within
// the test's read deadline.
func TestSlowHandshakeGivesItsSlotBack(t *testing.T) {
	p := newPartner(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "partner") })
	c := newClient("billing")
	conf, certFile := instanceTLS(t)
	g := startWith(t, sharedConfig(freePort(t), p, c, []string{"api.partner.example"}, "limits: {max_connections: 1, auth_timeout: 300ms, read_header_timeout: 1h, read_timeout: 1h}\n"), func(o *server.Options) { o.TLS = conf })
	slow, err := net.DialTimeout("tcp", g.Relay, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	// The first bytes of a TLS record holding a ClientHello, and no more.
	slow.Write([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03})
	slow.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.ReadAll(slow); err != nil {
		t.Fatalf("the stalled handshake was not closed by the gateway: %v", err)
	}
	tc := testutil.TLSConfig(certFile)
	tc.NextProtos = []string{"http/1.1"}
	resp, body := wire(t, g.Relay, tc, fmt.Sprintf("GET /partner/x HTTP/1.1\r\nHost: gw\r\nOutgate-Key: %s\r\n\r\n", c.key))
	if resp.StatusCode != 200 || body != "partner" {
		t.Errorf("the next client: %d %q", resp.StatusCode, body)
	}
}

// TestPlainListenerSpeaksHTTP1Only: instance mode's plain listener (`up
// --plain-http`) takes proxy requests too, so HTTP/2 without TLS (a
// prior-knowledge preface, or an h2c Upgrade) is never switched to.
func TestPlainListenerSpeaksHTTP1Only(t *testing.T) {
	var hits atomic.Int64
	p := newPartner(t, func(w http.ResponseWriter, r *http.Request) { hits.Add(1); io.WriteString(w, "partner") })
	c := newClient("billing")
	conf, _ := instanceTLS(t)
	g := startWith(t, sharedConfig(freePort(t), p, c, []string{"api.partner.example"}, ""), func(o *server.Options) {
		o.TLS = conf
		o.PlainListen = "127.0.0.1:0"
	})
	conn, err := net.DialTimeout("tcp", g.Plain, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	// The preface and an empty SETTINGS frame.
	io.WriteString(conn, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
	b, _ := io.ReadAll(conn)
	if len(b) >= 9 && b[3] == 0x04 && !strings.HasPrefix(string(b), "HTTP/1.1") {
		t.Errorf("the plain listener answered the HTTP/2 preface with a SETTINGS frame: %q", b)
	}
	raw := fmt.Sprintf("GET /partner/up HTTP/1.1\r\nHost: gw\r\nOutgate-Key: %s\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n", c.key)
	resp, body := wire(t, g.Plain, nil, raw)
	if resp.StatusCode != 200 || resp.ProtoMajor != 1 || body != "partner" {
		t.Errorf("h2c upgrade on the plain listener: %s %d %q", resp.Proto, resp.StatusCode, body)
	}
	if n := hits.Load(); n != 1 {
		t.Errorf("the partner got %d requests, want the one HTTP/1.1 request", n)
	}
}

// TestGateClosingDuringAConnectsDial: the gate is open when a CONNECT
// arrives and closes while its destination is dialled (a dial may take
// dial_timeout, and the egress check runs meanwhile). The tunnel is
// refused with 503 egress_unverified and not one byte reaches the
// destination: the check before the handler alone would let it open after
// the agent had already ended every tunnel.
func TestGateClosingDuringAConnectsDial(t *testing.T) {
	dest, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer dest.Close()
	var got atomic.Int64
	go func() {
		for {
			c, err := dest.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				n, _ := io.Copy(io.Discard, c)
				got.Add(n)
			}()
		}
	}()
	dHost := dest.Addr().String()
	c := newClient("billing")
	var calls atomic.Int32
	closed := errors.New("calls leave from 198.51.100.7, not one of the deployment's IPs")
	addr := freePort(t)
	cfg := fmt.Sprintf("listen: %s\nproxy_listen: %s\nclients:\n  - {name: %s, key_sha256: %s, hosts: [%q], raw_tunnels: [%q]}\nnetwork: {allow_cidrs: [127.0.0.0/8]}\n",
		addr, addr, c.name, c.hash, dHost, dHost)
	g := startWith(t, cfg, func(o *server.Options) {
		// Open for the first question (before the handler), closed from
		// then on: the gate closed during the dial.
		o.Gate = func() error {
			if calls.Add(1) == 1 {
				return nil
			}
			return closed
		}
	})
	conn, err := net.DialTimeout("tcp", g.Relay, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "CONNECT %s HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: %s\r\n\r\nbytes for the destination\n", dHost, dHost, basic(c.name, c.key))
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: "CONNECT"})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	wantError(t, resp, string(b), 503, "egress_unverified")
	conn.Close()
	dest.Close()
	if n := got.Load(); n != 0 {
		t.Errorf("the destination got %d bytes through a tunnel refused by the gate", n)
	}
	if n := calls.Load(); n < 2 {
		t.Errorf("the gate was asked %d times, want again after the dial", n)
	}
}

// TestIPv4OnlyRefusesIPv6Destinations: instance mode's calls must leave
// from the deployment's Elastic IPs, which are IPv4; on a dual-stack
// subnet a call to an IPv6 address would leave from the instance's own
// IPv6 address (no partner allowlists it, and an egress check answered
// over IPv4 never sees it). With Options.IPv4Only a relay upstream, a
// proxy request and a CONNECT to an IPv6 address are refused before any
// connection; without it (serve's default) the same relay call goes
// through, which is what makes the test able to fail.
func TestIPv4OnlyRefusesIPv6Destinations(t *testing.T) {
	l, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		testutil.Unavailable(t, "no IPv6 loopback: "+err.Error())
	}
	var hits atomic.Int64
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1); io.WriteString(w, "v6 partner") })}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	v6 := l.Addr().String()
	c := newClient("billing")
	cfg := fmt.Sprintf(`listen: 127.0.0.1:0
proxy_listen: 127.0.0.1:0
upstreams: {v6: {url: "http://%s"}}
clients:
  - {name: %s, key_sha256: %s, upstreams: [v6], hosts: [%q], raw_tunnels: [%q]}
network: {allow_cidrs: ["::1/128"]}
`, v6, c.name, c.hash, v6, v6)
	relayGet := func(g *gateway) (*http.Response, string) {
		return do(t, nil, relayReq(t, g, "GET", "/v6/x", c.key, nil))
	}

	open := startWith(t, cfg, nil)
	if resp, body := relayGet(open); resp.StatusCode != 200 || body != "v6 partner" {
		t.Fatalf("without IPv4Only: %d %q", resp.StatusCode, body)
	}

	g := startWith(t, cfg, func(o *server.Options) { o.IPv4Only = true })
	before := hits.Load()
	resp, body := relayGet(g)
	wantError(t, resp, body, 403, "destination_blocked")
	_, _, presp, pbody := rawProxy(t, g, "GET http://"+v6+"/y HTTP/1.1", "Host: "+v6, "Proxy-Authorization: "+basic(c.name, c.key))
	wantError(t, presp, pbody, 403, "destination_blocked")
	_, _, cresp, cbody := rawProxy(t, g, "CONNECT "+v6+" HTTP/1.1", "Host: "+v6, "Proxy-Authorization: "+basic(c.name, c.key))
	wantError(t, cresp, cbody, 403, "destination_blocked")
	if n := hits.Load() - before; n != 0 {
		t.Errorf("the IPv6 partner got %d requests with IPv4Only", n)
	}
}
