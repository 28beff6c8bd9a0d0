package server_test

import (
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/outgate/outgate/internal/server"
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
