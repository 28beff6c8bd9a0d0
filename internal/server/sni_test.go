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

	"github.com/outgate/outgate/internal/testutil"
)

// cdn is one TLS server for many tenants, as on a CDN's shared address: its
// certificate covers example.com and *.example.com, and it answers with the
// name the client asked for. It counts the bytes it receives from clients.
type cdn struct {
	srv      *httptest.Server
	ca, port string
	got      atomic.Int64
}

type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, n: l.n}, nil
}

type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	k, err := c.Conn.Read(p)
	c.n.Add(int64(k))
	return k, err
}

func newCDN(t *testing.T) *cdn {
	c := &cdn{}
	c.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "tenant "+r.TLS.ServerName)
	}))
	c.srv.Listener = countingListener{c.srv.Listener, &c.got}
	c.srv.StartTLS()
	t.Cleanup(c.srv.Close)
	c.ca = testutil.WriteCA(t, c.srv)
	_, c.port, _ = net.SplitHostPort(c.srv.Listener.Addr().String())
	return c
}

// sniSetup: client "billing" may reach api.example.com and 127.0.0.1 on the
// CDN's port; other.example.com (another tenant) resolves to the same
// address but is not in its hosts.
func sniSetup(t *testing.T, extraClient string) (*cdn, *gateway, client) {
	c := newCDN(t)
	dns := testutil.NewDNS(t)
	dns.Set("api.example.com", "127.0.0.1")
	dns.Set("other.example.com", "127.0.0.1")
	cl := newClient("billing")
	cfg := proxyConfig(cl, []string{"api.example.com:" + c.port, "127.0.0.1:" + c.port},
		extraClient+fmt.Sprintf("network: {allow_cidrs: [127.0.0.0/8], resolvers: [%q], ca_files: [%s]}\nlimits: {read_header_timeout: 2s}\n", dns.Addr, c.ca))
	return c, start(t, cfg), cl
}

// tunnelTLS opens CONNECT authority and runs a TLS handshake with sni
// through it, then one GET; it returns the answer or the error.
func tunnelTLS(t *testing.T, g *gateway, cl client, ca, authority, sni string) (string, error) {
	t.Helper()
	conn, br, resp, _ := rawProxy(t, g, "CONNECT "+authority+" HTTP/1.1", "Host: "+authority, "Proxy-Authorization: "+basic(cl.name, cl.key))
	if resp.StatusCode != 200 {
		t.Fatalf("CONNECT %s: %d", authority, resp.StatusCode)
	}
	conf := testutil.TLSConfig(ca)
	conf.ServerName = sni
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	tc := tls.Client(&bufConn{Conn: conn, r: br}, conf)
	if err := tc.Handshake(); err != nil {
		return "", err
	}
	fmt.Fprintf(tc, "GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", sni)
	r, err := http.ReadResponse(bufio.NewReader(tc), nil)
	if err != nil {
		return "", err
	}
	b, _ := io.ReadAll(r.Body)
	return string(b), nil
}

type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// waitAudit waits for a connect audit line for target that matches want.
func waitAudit(t *testing.T, g *gateway, target string, want map[string]any) map[string]any {
	t.Helper()
	for i := 0; i < 1000; i++ {
		for _, l := range g.logs.lines("request") {
			if l["mode"] != "connect" || l["target"] != target {
				continue
			}
			ok := true
			for k, v := range want {
				if k == "detail" {
					ok = ok && strings.Contains(fmt.Sprint(l[k]), v.(string))
				} else {
					ok = ok && l[k] == v
				}
			}
			if ok {
				return l
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no connect audit line for %s with %v:\n%s", target, want, g.logs.String())
	return nil
}

// TestConnectChecksSNI: a tunnel to an allowed name whose ClientHello asks
// for another tenant on the same address is closed before any byte reaches
// it, and audited as sni_not_allowed; allowed names (and, for an IP
// destination, no name) go through.
func TestConnectChecksSNI(t *testing.T) {
	c, g, cl := sniSetup(t, "")
	api, ip := "api.example.com:"+c.port, "127.0.0.1:"+c.port

	if body, err := tunnelTLS(t, g, cl, c.ca, api, "api.example.com"); err != nil || body != "tenant api.example.com" {
		t.Fatalf("allowed name: %q, %v", body, err)
	}
	before := c.got.Load()
	if body, err := tunnelTLS(t, g, cl, c.ca, api, "other.example.com"); err == nil {
		t.Fatalf("CONNECT %s with SNI other.example.com reached %q", api, body)
	}
	a := waitAudit(t, g, api, map[string]any{"reason": "sni_not_allowed"})
	if a["decision"] != "deny" || !strings.Contains(fmt.Sprint(a["detail"]), "other.example.com") {
		t.Errorf("audit line %v", a)
	}
	// An IP destination: no SNI (Go sends none for an IP) is that address;
	// an allowed name is fine; another tenant's name is not.
	if body, err := tunnelTLS(t, g, cl, c.ca, ip, "127.0.0.1"); err != nil || body != "tenant " {
		t.Errorf("IP destination without SNI: %q, %v", body, err)
	}
	if body, err := tunnelTLS(t, g, cl, c.ca, ip, "api.example.com"); err == nil {
		// api.example.com is allowed on this port, and the certificate covers it.
		if body != "tenant api.example.com" {
			t.Errorf("IP destination, allowed SNI: %q", body)
		}
	} else {
		t.Errorf("IP destination, allowed SNI: %v", err)
	}
	if body, err := tunnelTLS(t, g, cl, c.ca, ip, "other.example.com"); err == nil {
		t.Errorf("CONNECT %s with SNI other.example.com reached %q", ip, body)
	}
	waitAudit(t, g, ip, map[string]any{"reason": "sni_not_allowed", "decision": "deny"})

	// The refused tunnels sent nothing on: the CDN received bytes only from
	// the three allowed handshakes (counted before and after).
	allowedAfter := c.got.Load()
	if _, err := tunnelTLS(t, g, cl, c.ca, api, "other.example.com"); err == nil {
		t.Fatal("refused tunnel went through")
	}
	waitAudit(t, g, api, map[string]any{"reason": "sni_not_allowed", "detail": "other.example.com"})
	if got := c.got.Load(); got != allowedAfter || before == 0 {
		t.Errorf("the other tenant's address received %d bytes from a refused tunnel", got-allowedAfter)
	}
}

// TestConnectSNISplitClientHello: a ClientHello that arrives one byte per TCP
// segment is read whole and checked like any other.
func TestConnectSNISplitClientHello(t *testing.T) {
	c, g, cl := sniSetup(t, "")
	api := "api.example.com:" + c.port
	for _, tt := range []struct {
		sni  string
		pass bool
	}{{"api.example.com", true}, {"other.example.com", false}} {
		conn, br, resp, _ := rawProxy(t, g, "CONNECT "+api+" HTTP/1.1", "Host: "+api, "Proxy-Authorization: "+basic(cl.name, cl.key))
		if resp.StatusCode != 200 {
			t.Fatalf("CONNECT: %d", resp.StatusCode)
		}
		conf := testutil.TLSConfig(c.ca)
		conf.ServerName = tt.sni
		conn.SetDeadline(time.Now().Add(20 * time.Second))
		tc := tls.Client(&trickleConn{Conn: conn, r: br}, conf)
		err := tc.Handshake()
		if tt.pass != (err == nil) {
			t.Errorf("SNI %s sent a byte at a time: handshake error %v", tt.sni, err)
		}
	}
	waitAudit(t, g, api, map[string]any{"reason": "sni_not_allowed", "detail": "other.example.com"})
}

// trickleConn writes one byte per Write, each its own TCP segment (Nagle off).
type trickleConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *trickleConn) Read(p []byte) (int, error) { return c.r.Read(p) }
func (c *trickleConn) Write(p []byte) (int, error) {
	c.Conn.(*net.TCPConn).SetNoDelay(true)
	for i := range p {
		if _, err := c.Conn.Write(p[i : i+1]); err != nil {
			return i, err
		}
	}
	return len(p), nil
}

// TestConnectSNIWithCurl: curl through the proxy, with --connect-to sending
// a CONNECT for the allowed name but SNI for the other tenant.
func TestConnectSNIWithCurl(t *testing.T) {
	curl := testutil.Tool(t, "curl")
	c, g, cl := sniSetup(t, "")
	proxyURL := fmt.Sprintf("http://%s:%s@%s", cl.name, cl.key, g.Proxy)
	out, err := exec.Command(curl, "-sS", "--max-time", "20", "--cacert", c.ca, "-x", proxyURL,
		"https://api.example.com:"+c.port+"/").CombinedOutput()
	if err != nil || string(out) != "tenant api.example.com" {
		t.Errorf("curl, allowed name: %q, %v", out, err)
	}
	out, err = exec.Command(curl, "-sS", "--max-time", "20", "--cacert", c.ca, "-x", proxyURL,
		"--connect-to", "other.example.com:"+c.port+":api.example.com:"+c.port,
		"https://other.example.com:"+c.port+"/").CombinedOutput()
	if err == nil || strings.Contains(string(out), "tenant") {
		t.Errorf("curl, SNI other.example.com in a tunnel to api.example.com: %q, %v", out, err)
	}
	waitAudit(t, g, "api.example.com:"+c.port, map[string]any{"reason": "sni_not_allowed", "decision": "deny", "detail": "other.example.com"})
}

// TestConnectSNIWithOpenSSL: openssl s_client's ClientHello (another TLS
// stack than Go's) through a tunnel, with -proxy.
func TestConnectSNIWithOpenSSL(t *testing.T) {
	openssl := testutil.Tool(t, "openssl")
	c, g, cl := sniSetup(t, "")
	api := "api.example.com:" + c.port
	run := func(sni string) string {
		cmd := exec.Command(openssl, "s_client", "-connect", api, "-proxy", g.Proxy, "-proxy_user", cl.name, "-proxy_pass", "pass:"+cl.key,
			"-servername", sni, "-CAfile", c.ca, "-verify_return_error", "-brief", "-ign_eof")
		cmd.Stdin = strings.NewReader("GET / HTTP/1.0\r\nHost: " + sni + "\r\n\r\n")
		out, _ := cmd.CombinedOutput()
		return string(out)
	}
	if out := run("api.example.com"); !strings.Contains(out, "tenant api.example.com") {
		t.Errorf("openssl, allowed name:\n%s", out)
	}
	if out := run("other.example.com"); strings.Contains(out, "tenant") {
		t.Errorf("openssl, other tenant's name reached it:\n%s", out)
	}
	waitAudit(t, g, api, map[string]any{"reason": "sni_not_allowed", "detail": "other.example.com"})
}

// TestConnectNonTLS: bytes that are not a TLS handshake are refused unless
// the destination is in raw_tunnels; a server that speaks first (SSH, SMTP)
// works through a raw tunnel, and without one the tunnel waits only
// read_header_timeout for the client's bytes.
func TestConnectNonTLS(t *testing.T) {
	var got atomic.Int64
	banner := testutil.NewTCPServer(t, func(c net.Conn) {
		defer c.Close()
		io.WriteString(c, "SSH-2.0-partner\r\n")
		n, _ := io.Copy(io.Discard, c)
		got.Add(n)
	})
	e := echo(t)
	cl := newClient("billing")
	g := start(t, proxyConfig(cl, []string{banner.Addr, e, "127.0.0.1:1"},
		fmt.Sprintf("    raw_tunnels: [%q]\nnetwork: {allow_cidrs: [127.0.0.0/8]}\nlimits: {read_header_timeout: 1s}\n", banner.Addr)))
	auth := "Proxy-Authorization: " + basic(cl.name, cl.key)

	// Raw tunnel: the banner arrives without the client sending anything.
	conn, br, resp, _ := rawProxy(t, g, "CONNECT "+banner.Addr+" HTTP/1.1", "Host: "+banner.Addr, auth)
	if resp.StatusCode != 200 {
		t.Fatalf("CONNECT: %d", resp.StatusCode)
	}
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if line, err := br.ReadString('\n'); err != nil || line != "SSH-2.0-partner\r\n" {
		t.Fatalf("raw tunnel: banner %q, %v", line, err)
	}
	conn.Close()

	// Not in raw_tunnels: plain text is refused before the echo sees it.
	conn, br, resp, _ = rawProxy(t, g, "CONNECT "+e+" HTTP/1.1", "Host: "+e, auth)
	if resp.StatusCode != 200 {
		t.Fatalf("CONNECT: %d", resp.StatusCode)
	}
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(conn, "ping\n")
	if line, err := br.ReadString('\n'); err == nil {
		t.Errorf("a non-TLS tunnel carried %q", line)
	}
	waitAudit(t, g, e, map[string]any{"reason": "tunnel_not_tls", "decision": "deny", "detail": "not a TLS ClientHello"})

	// Not in raw_tunnels and silent: closed after read_header_timeout.
	conn, br, resp, _ = rawProxy(t, g, "CONNECT "+e+" HTTP/1.1", "Host: "+e, auth)
	if resp.StatusCode != 200 {
		t.Fatalf("CONNECT: %d", resp.StatusCode)
	}
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := br.ReadByte(); err == nil {
		t.Error("read from a silent tunnel")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Error("a silent non-raw tunnel was not closed by the gateway")
	}
	waitAudit(t, g, e, map[string]any{"reason": "tunnel_not_tls", "detail": "read_header_timeout"})
}

// TestRawTunnelsConfig: raw_tunnels entries must be hosts of the client.
func TestRawTunnelsConfig(t *testing.T) {
	cl := newClient("billing")
	err := runOnce(t, proxyConfig(cl, []string{"sftp.partner.example:22"},
		"    raw_tunnels: [\"sftp.partner.example:2222\", \"sftp.partner.example:22\", \"sftp.partner.example:22\", \"*bad\"]\n"))
	if err == nil {
		t.Fatal("a bad raw_tunnels list was accepted")
	}
	for _, want := range []string{
		"clients[0].raw_tunnels[0]: sftp.partner.example:2222 is not in this client's hosts",
		"clients[0].raw_tunnels[2]: sftp.partner.example:22 is listed twice",
		"clients[0].raw_tunnels[3]:",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}
