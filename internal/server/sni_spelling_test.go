package server_test

import (
	"testing"
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
