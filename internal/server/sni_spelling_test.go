package server_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/outgate/outgate/internal/testutil"
)

// TestConnectSNIMustBeASCII: a ClientHello whose server name only maps to
// an allowed one (fullwidth letters, an ideographic full stop, a U-label)
// is not that name to the partner: TLS servers match SNI bytes (ASCII case
// aside) and send an unknown name to their default server, on a shared
// address another tenant, exactly as with no SNI at all. RFC 6066 section
// 3 has the name as ASCII; such a tunnel is refused before a byte goes on.
// Upper case is the same name to every server and still goes through.
func TestConnectSNIMustBeASCII(t *testing.T) {
	c, g, cl := sniSetup(t, "")
	api := "api.example.com:" + c.port
	if body, err := tunnelTLS(t, g, cl, c.ca, api, "API.Example.COM"); err != nil || body != "tenant API.Example.COM" {
		t.Fatalf("upper-case SNI of an allowed name: %q, %v", body, err)
	}
	for _, sni := range []string{
		"\uff41\uff50\uff49.example.com", // fullwidth "api"
		"api\u3002example\u3002com",      // ideographic full stops
		"api.ex\u00e4mple.com",           // a U-label: the allowed name's is not this one anyway
	} {
		before := c.got.Load()
		if body, err := tunnelTLS(t, g, cl, c.ca, api, sni); err == nil {
			t.Errorf("SNI %q reached %q", sni, body)
		}
		waitAudit(t, g, api, map[string]any{"reason": "sni_not_allowed", "detail": "ASCII"})
		if got := c.got.Load(); got != before {
			t.Errorf("SNI %q: the shared address received %d bytes from a tunnel that should have been refused", sni, got-before)
		}
	}
}

// TestConnectSNINotAnIP: RFC 6066 section 3 forbids an IP address as the
// server name, and a server matches none of its names with one: it takes
// the tunnel to its default host, as with no SNI. A client allowed some IP
// could so reach the default host of any address it may name. openssl
// s_client sends the literal it is given.
func TestConnectSNINotAnIP(t *testing.T) {
	openssl := testutil.Tool(t, "openssl")
	c, g, cl := sniSetup(t, "")
	api := "api.example.com:" + c.port
	before := c.got.Load()
	cmd := exec.Command(openssl, "s_client", "-connect", api, "-proxy", g.Proxy, "-proxy_user", cl.name, "-proxy_pass", "pass:"+cl.key,
		"-servername", "127.0.0.1", "-CAfile", c.ca, "-brief", "-ign_eof")
	cmd.Stdin = strings.NewReader("GET / HTTP/1.0\r\nHost: api.example.com\r\n\r\n")
	out, _ := cmd.CombinedOutput()
	if strings.Contains(string(out), "tenant") {
		t.Errorf("CONNECT %s with SNI 127.0.0.1 reached the partner:\n%s", api, out)
	}
	waitAudit(t, g, api, map[string]any{"reason": "sni_not_allowed", "detail": "IP"})
	if got := c.got.Load(); got != before {
		t.Errorf("the partner received %d bytes from a tunnel with an IP as SNI", got-before)
	}
}
