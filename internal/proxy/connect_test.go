package proxy

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/outgate/outgate/internal/config"
	"github.com/outgate/outgate/internal/core"
	"github.com/outgate/outgate/internal/keys"
	"github.com/outgate/outgate/internal/testutil"
)

// TestRefuseAnswersShuttingDown: once the drain begins (Refuse), a CONNECT
// is answered 503 shutting_down on the wire and audited, while a tunnel
// opened before keeps carrying bytes. (Through `outgate serve` the window
// between Refuse and net/http's own Shutdown is an instant, so the code is
// provoked here, on the handler behind a real listener.)
func TestRefuseAnswersShuttingDown(t *testing.T) {
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	key, hash := keys.New()
	target := echo.Addr().String()
	cfg, err := config.Parse([]byte(fmt.Sprintf(`
listen: 127.0.0.1:0
proxy_listen: 127.0.0.1:0
clients:
  - name: billing
    key_sha256: %s
    hosts: [%q]
    raw_tunnels: [%q]
network:
  allow_cidrs: [127.0.0.0/8]
`, hash, target, target)), "outgate.yaml")
	if err != nil {
		t.Fatal(err)
	}
	audit := &testutil.SafeBuffer{}
	c, err := core.New(cfg, core.Deps{Audit: audit})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tunnels := &Tunnels{}
	srv := httptest.NewServer(&Handler{Core: func() *core.Core { return c }, Tunnels: tunnels})
	defer srv.Close()

	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte("billing:"+key))
	connect := func() (net.Conn, *bufio.Reader, *http.Response) {
		conn, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(conn, "CONNECT %s HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: %s\r\n\r\n", target, target, auth)
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, &http.Request{Method: "CONNECT"})
		if err != nil {
			t.Fatal(err)
		}
		return conn, br, resp
	}
	before, br, resp := connect()
	defer before.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("CONNECT before the drain: %d", resp.StatusCode)
	}

	tunnels.Refuse()
	after, _, resp := connect()
	defer after.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 503 || resp.Header.Get("Outgate-Error") != "shutting_down" || !strings.Contains(string(body), `"code":"shutting_down"`) {
		t.Errorf("CONNECT during the drain: %d %q %s", resp.StatusCode, resp.Header.Get("Outgate-Error"), body)
	}

	io.WriteString(before, "still here\n")
	if line, err := br.ReadString('\n'); err != nil || line != "still here\n" {
		t.Errorf("the tunnel opened before the drain: %q %v", line, err)
	}
	before.Close()
	c.Close() // flushes the audit lines
	if lines := audit.String(); !strings.Contains(lines, `"reason":"shutting_down"`) {
		t.Errorf("no audit line for the refused CONNECT:\n%s", audit.String())
	}
}
