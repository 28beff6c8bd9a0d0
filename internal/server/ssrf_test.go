package server_test

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/outgate/outgate/internal/testutil"
)

// TestSSRFChecklist runs an attacker's list against both modes. The client
// is allowed every one of these destinations by name, so only the address
// policy stands in the way; loopback is allowed (allow_cidrs) to show that
// the policy looks at each resolved and embedded address, not the name.
// Nothing may be dialed: every answer is 400 (malformed) or 403
// destination_blocked, never a 502 (which would mean a connection was tried).
func TestSSRFChecklist(t *testing.T) {
	dns := testutil.NewDNS(t)
	dns.Set("metadata.google.internal", "169.254.169.254")
	dns.Set("metadata.azure.test", "169.254.169.254")
	dns.Set("alibaba.test", "100.100.100.200")
	dns.Set("oracle.test", "192.0.0.192")
	dns.Set("aws6.test", "fd00:ec2::254")
	dns.Set("both.test", "127.0.0.1", "10.0.0.1")
	dns.Set("nat64.test", "64:ff9b::a9fe:a9fe")
	dns.Set("mapped.test", "::ffff:169.254.169.254")
	var flip atomic.Int32
	dns.SetFunc("rebind.test", func() []netip.Addr { // allowed for the first lookup (A and AAAA), internal after
		if flip.Add(1) <= 2 {
			return []netip.Addr{netip.MustParseAddr("127.0.0.1")}
		}
		return []netip.Addr{netip.MustParseAddr("169.254.169.254")}
	})

	targets := []string{
		"169.254.169.254:80", "[fd00:ec2::254]:80", "100.100.100.200:80", "192.0.0.192:80",
		"metadata.google.internal:80", "metadata.azure.test:80", "alibaba.test:80", "oracle.test:80", "aws6.test:80",
		"both.test:80", "nat64.test:80", "mapped.test:80",
		"[::ffff:169.254.169.254]:80", "[::169.254.169.254]:80", "[64:ff9b::a9fe:a9fe]:80", "[2002:a9fe:a9fe::1]:80",
		"10.0.0.1:80", "192.168.0.1:80", "172.16.0.1:80", "[fc00::1]:80", "[fe80::1]:80", "0.0.0.0:80", "[::]:80",
		"198.18.0.1:80", "240.0.0.1:80", "[::127.0.0.1]:80",
	}
	malformed := []string{"2852039166:80", "0251.0376.0251.0376:80", "0xa9fea9fe:80", "[fe80::1%25eth0]:80", "169.254.169.254.nip.io.:80x"}

	c := newClient("attacker")
	var hosts, ups, routes []string
	for i, tg := range targets {
		hosts = append(hosts, fmt.Sprintf("%q", tg))
		ups = append(ups, fmt.Sprintf("  t%d: {url: \"http://%s\"}", i, tg))
		routes = append(routes, fmt.Sprintf("t%d", i))
	}
	// The rebinding name points at a loopback port where nothing listens, so
	// no connection is kept alive and every request looks the name up again.
	_, closedPort, _ := net.SplitHostPort(freePort(t))
	hosts = append(hosts, `"rebind.test:`+closedPort+`"`)
	g := start(t, fmt.Sprintf(`
listen: 127.0.0.1:0
proxy_listen: 127.0.0.1:0
upstreams:
%s
  rebind: {url: "http://rebind.test:%s"}
clients:
  - name: attacker
    key_sha256: %s
    upstreams: [%s, rebind]
    hosts: [%s]
network: {allow_cidrs: [127.0.0.0/8], resolvers: ["%s"]}
limits: {dial_timeout: 2s, requests_per_second: 10000, burst: 10000}
`, strings.Join(ups, "\n"), closedPort, c.hash, strings.Join(routes, ", "), strings.Join(hosts, ", "), dns.Addr))
	auth := "Proxy-Authorization: " + basic(c.name, c.key)

	check := func(t *testing.T, mode, target string, status int, code string) {
		t.Helper()
		if status != 403 && status != 400 {
			t.Errorf("%s %s: status %d (%s); must be refused before any connection", mode, target, status, code)
		}
		if status == 403 && code != "destination_blocked" {
			t.Errorf("%s %s: code %s", mode, target, code)
		}
	}
	for i, tg := range targets {
		resp, _ := do(t, nil, relayReq(t, g, "GET", fmt.Sprintf("/t%d/latest/meta-data/", i), c.key, nil))
		check(t, "relay", tg, resp.StatusCode, resp.Header.Get("Outgate-Error"))
		_, _, cresp, _ := rawProxy(t, g, "CONNECT "+tg+" HTTP/1.1", "Host: "+tg, auth)
		check(t, "connect", tg, cresp.StatusCode, cresp.Header.Get("Outgate-Error"))
		_, _, aresp, _ := rawProxy(t, g, "GET http://"+tg+"/latest/meta-data/ HTTP/1.1", "Host: "+tg, auth)
		check(t, "absolute-form", tg, aresp.StatusCode, aresp.Header.Get("Outgate-Error"))
	}
	for _, tg := range malformed {
		_, _, cresp, _ := rawProxy(t, g, "CONNECT "+tg+" HTTP/1.1", "Host: "+tg, auth)
		check(t, "connect", tg, cresp.StatusCode, cresp.Header.Get("Outgate-Error"))
	}
	// DNS that answers differently on each lookup: whatever a lookup says,
	// nothing reaches 169.254.169.254. Allowed lookups dial the closed
	// loopback port (502); blocked ones are 403.
	for i := 0; i < 8; i++ {
		resp, _ := do(t, nil, relayReq(t, g, "GET", "/rebind/x", c.key, nil))
		if resp.StatusCode != 403 && resp.StatusCode != 502 {
			t.Errorf("rebind %d: %d", i, resp.StatusCode)
		}
	}
	// Audit lines are flushed every 100ms.
	waitFor(t, func() bool {
		for _, l := range g.logs.lines("request") {
			if l["route"] == "rebind" && l["reason"] == "destination_blocked" {
				return true
			}
		}
		return false // the rebinding answers were never seen blocked
	})
	if resp, _ := do(t, nil, relayReq(t, g, "GET", "/_outgate/health", "", nil)); resp.StatusCode != http.StatusOK {
		t.Error("the gateway stopped serving")
	}
}
