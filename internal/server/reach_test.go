package server_test

import (
	"fmt"
	"net"
	"net/netip"
	"testing"

	"github.com/outgate/outgate/internal/server"
)

// TestReachKeepsTheWildcardListenerFromLooping: with Options.Reach (instance
// mode, listening on :443), a listener on 0.0.0.0 is the gateway itself at
// the Reach addresses (an Elastic IP NAT'd to the machine) and at every
// loopback address, on its port: CONNECT there is refused before any dial,
// so no request loops back in. (That every other address on the port, a
// partner's :443, goes through is e2e/instance_netns_test.go's: it needs a
// second machine's address, which a namespace gives.)
func TestReachKeepsTheWildcardListenerFromLooping(t *testing.T) {
	_, port, _ := net.SplitHostPort(freePort(t))
	addr := "127.0.0.1:" + port
	eip := "198.51.100.7"
	c := newClient("billing")
	targets := []string{eip + ":" + port, "127.0.0.2:" + port, "127.0.0.1:" + port}
	cfg := fmt.Sprintf(`
listen: 0.0.0.0:%[1]s
proxy_listen: 0.0.0.0:%[1]s
clients:
  - name: %[2]s
    key_sha256: %[3]s
    hosts: ["%[4]s", "%[5]s", "%[6]s"]
network:
  allow_cidrs: [127.0.0.0/8, 198.51.100.0/24]
`, port, c.name, c.hash, targets[0], targets[1], targets[2])
	startWith(t, cfg, func(o *server.Options) { o.Reach = []netip.Addr{netip.MustParseAddr(eip)} })
	auth := basic(c.name, c.key)
	for _, target := range targets {
		t.Run(target, func(t *testing.T) {
			resp, body := wire(t, addr, nil, fmt.Sprintf("CONNECT %[1]s HTTP/1.1\r\nHost: %[1]s\r\nProxy-Authorization: %[2]s\r\n\r\n", target, auth))
			wantError(t, resp, body, 403, "destination_blocked")
		})
	}
}
