package server_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// dialFrom opens a raw connection to addr from a given loopback source
// address, so one test can play several client machines.
func dialFrom(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// closedByPeer waits (at most 10 s, far beyond every timeout the tests
// configure) for the gateway to close c, reading whatever it still sends.
func closedByPeer(t *testing.T, c net.Conn, what string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := io.Copy(io.Discard, c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("%s: the gateway kept the connection open", what)
	}
}

// metric reads one sample from the admin listener's /metrics.
func metric(t *testing.T, g *gateway, series string) float64 {
	t.Helper()
	resp, body := do(t, nil, mustReq(t, "GET", "http://"+g.Admin+"/metrics"))
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %d", resp.StatusCode)
	}
	for _, l := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

// TestIdleSocketsFromOneAddressDoNotStarve: a host opens 50 sockets and
// sends nothing. Only its share (max_connections_per_ip, by default half of
// max_connections) is accepted; the rest are closed at once rather than
// queued ahead of everyone else, and a client on another address is served.
func TestIdleSocketsFromOneAddressDoNotStarve(t *testing.T) {
	up := newPartner(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	c := newClient("billing")
	// Long server timeouts: only the connection rules may free a slot.
	g := start(t, relayConfig(up, c, "", "admin_listen: 127.0.0.1:0\nlimits: {max_connections: 8, read_header_timeout: 1m, idle_timeout: 1m, auth_timeout: 1m}\n"))
	var idle []net.Conn
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 5 * time.Second}
	for range 50 {
		// A refusal can beat the dial's return: that is a reset, not an error.
		if s, err := d.Dial("tcp", g.Relay); err == nil {
			t.Cleanup(func() { s.Close() })
			idle = append(idle, s)
		}
	}
	// The sockets over the share are refused one by one as the gateway
	// accepts them; wait until all 46 are.
	refused := `outgate_connections_refused_total{reason="per_source_limit"}`
	waitFor(t, func() bool { return metric(t, g, refused) == 46 })
	open := 0
	for _, s := range idle {
		s.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if _, err := s.Read(make([]byte, 1)); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				open++
			}
		}
	}
	if open != 4 {
		t.Errorf("%d sockets of the idle host are still open, want its share of 4", open)
	}
	resp, body := do(t, &http.Client{Timeout: 10 * time.Second}, relayReq(t, g, "GET", "/partner/x", c.key, nil))
	if resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("authenticated client: %d %q", resp.StatusCode, body)
	}
}

// TestUnauthenticatedConnectionsGiveTheirSlotBack: a 401 (relay) or 407
// (proxy) closes the connection, and a connection that carries no
// authenticated request within auth_timeout is closed; one that did is
// kept. With every slot taken by such connections, an authenticated client
// still gets in.
func TestUnauthenticatedConnectionsGiveTheirSlotBack(t *testing.T) {
	up := newPartner(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	c := newClient("billing")
	g := start(t, relayConfig(up, c, "    hosts: [\"127.0.0.1:1\"]\n",
		"proxy_listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\nlimits: {max_connections: 4, max_connections_per_ip: 4, read_header_timeout: 1m, idle_timeout: 1m, auth_timeout: 300ms}\n"))

	// An authenticated keep-alive connection, opened before the others.
	authed := dialFrom(t, "127.0.0.1", g.Relay)
	authedR := bufio.NewReader(authed)
	get := func(what string) {
		t.Helper()
		fmt.Fprintf(authed, "GET /partner/x HTTP/1.1\r\nHost: gw\r\nOutgate-Key: %s\r\n\r\n", c.key)
		authed.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(authedR, nil)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d", what, resp.StatusCode)
		}
	}
	get("authenticated request")

	// A wrong key on the relay and no credentials on the proxy: one answer
	// that says Connection: close, then the close.
	for _, tc := range []struct{ addr, req string }{
		{g.Relay, "GET /partner/x HTTP/1.1\r\nHost: gw\r\nOutgate-Key: og_wrong\r\n\r\n"},
		{g.Proxy, "GET http://127.0.0.1:1/ HTTP/1.1\r\nHost: 127.0.0.1:1\r\n\r\n"},
	} {
		s := dialFrom(t, "127.0.0.1", tc.addr)
		io.WriteString(s, tc.req)
		s.SetReadDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(s)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != 401 && resp.StatusCode != 407 || !resp.Close {
			t.Errorf("%s: %d, Connection: %q; want 401/407 and close", tc.req, resp.StatusCode, resp.Header.Get("Connection"))
		}
		closedByPeer(t, s, "after "+strconv.Itoa(resp.StatusCode))
	}

	// Unauthenticated keep-alive: the health endpoint needs no key. Both
	// were opened after the authenticated connection, so its auth timer
	// would have fired first had it not been stopped.
	var health []net.Conn
	for range 3 {
		s := dialFrom(t, "127.0.0.1", g.Relay)
		io.WriteString(s, "GET /_outgate/health HTTP/1.1\r\nHost: gw\r\n\r\n")
		health = append(health, s)
	}
	for i, s := range health {
		closedByPeer(t, s, fmt.Sprintf("health connection %d", i))
	}
	if n := metric(t, g, `outgate_connections_refused_total{reason="auth_timeout"}`); n != 3 {
		t.Errorf("auth_timeout refusals = %v, want 3", n)
	}
	get("second request on the authenticated connection")
}
