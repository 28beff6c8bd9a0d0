package server_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"
)

// stalledAudit waits for the audit line of a response the write idle
// timeout cut off.
func stalledAudit(t *testing.T, g *gateway, mode string) map[string]any {
	t.Helper()
	var line map[string]any
	waitFor(t, func() bool {
		for _, l := range g.logs.lines("request") {
			if l["mode"] == mode && l["reason"] == "client_write_timeout" {
				line = l
				return true
			}
		}
		return false
	})
	return line
}

// smallReceiver dials addr with a small receive buffer, so a client that
// stops reading fills the path quickly (and TCP's zero-window probing then
// stalls the rest: only for clients that read nothing).
func smallReceiver(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.(*net.TCPConn).SetReadBuffer(4096)
	t.Cleanup(func() { c.Close() })
	return c
}

// TestClientThatStopsReadingIsCutOff: a relay client that reads nothing of
// a large response loses it after write_idle_timeout; the audit line says
// the response was truncated, and the connection slot and the concurrency
// slot come back (both are 1 here, so the next request proves it).
func TestClientThatStopsReadingIsCutOff(t *testing.T) {
	chunk := make([]byte, 64<<10)
	up := newPartner(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v2/big" {
			io.WriteString(w, "ok")
			return
		}
		// Up to 1 GiB, until the gateway stops taking it.
		for range 1 << 14 {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	})
	c := newClient("billing")
	g := start(t, relayConfig(up, c, "    limits: {max_concurrent: 1}\n",
		"limits: {max_connections: 1, write_idle_timeout: 300ms, read_header_timeout: 1m, idle_timeout: 1m}\n"))
	s := smallReceiver(t, g.Relay)
	fmt.Fprintf(s, "GET /partner/big HTTP/1.1\r\nHost: gw\r\nOutgate-Key: %s\r\n\r\n", c.key)
	// Read nothing at all.
	line := stalledAudit(t, g, "relay")
	if line["decision"] != "error" || line["status"] != float64(200) {
		t.Errorf("audit line of the stalled response: %v", line)
	}
	resp, body := do(t, &http.Client{Timeout: 10 * time.Second}, relayReq(t, g, "GET", "/partner/x", c.key, nil))
	if resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("next request: %d %q", resp.StatusCode, body)
	}
}

// TestSlowReaderSurvivesWriteIdle: the write deadline is a progress
// deadline. A client that reads a 16 MiB body in small steps, taking far
// longer in all than write_idle_timeout but never pausing anywhere near
// it, gets the whole body and an allowed audit line.
func TestSlowReaderSurvivesWriteIdle(t *testing.T) {
	const size = 16 << 20
	chunk := make([]byte, 64<<10)
	up := newPartner(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(size))
		for range size / len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	})
	c := newClient("billing")
	g := start(t, relayConfig(up, c, "", "limits: {write_idle_timeout: 500ms}\n"))
	// Default socket buffers: a receive buffer far under loopback's 64 KiB
	// segments makes TCP itself stall in zero-window probes.
	s, err := net.DialTimeout("tcp", g.Relay, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fmt.Fprintf(s, "GET /partner/big HTTP/1.1\r\nHost: gw\r\nOutgate-Key: %s\r\n\r\n", c.key)
	s.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReaderSize(s, 4096), nil)
	if err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	buf := make([]byte, 32<<10)
	var n int64
	for {
		k, err := resp.Body.Read(buf)
		n += int64(k)
		if err != nil {
			break
		}
		// Pacing, not synchronisation: a reader far slower than loopback.
		time.Sleep(2 * time.Millisecond)
	}
	if n != size {
		t.Fatalf("read %d bytes of %d; log:\n%s", n, size, g.logs.String())
	}
	if took := time.Since(started); took < time.Second {
		t.Logf("the slow read took only %v (not a failure, but then this test proves little)", took)
	}
	line := g.logs.audit(t, resp.Header.Get("Outgate-Request-Id"))
	if line["decision"] != "allow" || line["bytes_out"] != float64(size) {
		t.Errorf("audit line: %v", line)
	}
}

// TestStalledTunnelClientIsCutOff: CONNECT tunnels too. The destination
// sends without end, the client reads nothing after the 200; the tunnel
// closes after write_idle_timeout (not tunnel_idle_timeout: bytes keep
// arriving from the destination), its audit line says so, and the client's
// only tunnel slot comes back.
func TestStalledTunnelClientIsCutOff(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		chunk := make([]byte, 64<<10)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				for range 1 << 14 {
					if _, err := c.Write(chunk); err != nil {
						return
					}
				}
			}()
		}
	}()
	dst := l.Addr().String()
	c := newClient("billing")
	// The destination speaks first, so it is a raw tunnel: otherwise the
	// tunnel would wait read_header_timeout for a ClientHello before any
	// byte flowed toward the client.
	g := start(t, proxyConfig(c, []string{dst}, fmt.Sprintf("    raw_tunnels: [%q]\nnetwork: {allow_cidrs: [127.0.0.0/8]}\nlimits: {max_tunnels: 1, write_idle_timeout: 300ms, tunnel_idle_timeout: 1h}\n", dst)))
	s := smallReceiver(t, g.Proxy)
	fmt.Fprintf(s, "CONNECT %s HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: %s\r\n\r\n", dst, dst, basic(c.name, c.key))
	// Read nothing, not even the 200.
	line := stalledAudit(t, g, "connect")
	if line["decision"] != "error" {
		t.Errorf("audit line of the stalled tunnel: %v", line)
	}
	_, _, resp, _ := rawProxy(t, g, "CONNECT "+dst+" HTTP/1.1", "Host: "+dst, "Proxy-Authorization: "+basic(c.name, c.key))
	if resp.StatusCode != 200 {
		t.Fatalf("CONNECT after the stalled tunnel: %d", resp.StatusCode)
	}
}
