package server_test

import (
	"net"
	"net/http"
	"testing"
	"time"
)

// TestAdminSlotsFromOneAddress: the admin listener has few slots and no
// keys. One host that opens sockets to it and sends nothing (or keeps them
// alive with /healthz) must not hold them all: the load balancer's /readyz
// from another address is still answered, within a bound far below the
// read_header_timeout and idle_timeout that would otherwise free a slot.
func TestAdminSlotsFromOneAddress(t *testing.T) {
	up := newPartner(t, nil)
	c := newClient("billing")
	g := start(t, relayConfig(up, c, "", "admin_listen: 127.0.0.1:0\nlimits: {read_header_timeout: 5m, idle_timeout: 5m}\n"))
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 5 * time.Second}
	for range 100 {
		// A refusal can beat the dial's return: that is a reset, not an error.
		if s, err := d.Dial("tcp", g.Admin); err == nil {
			t.Cleanup(func() { s.Close() })
		}
	}
	hc := &http.Client{Timeout: 30 * time.Second}
	resp, body := do(t, hc, mustReq(t, "GET", "http://"+g.Admin+"/readyz"))
	if resp.StatusCode != 200 {
		t.Fatalf("/readyz from another address: %d %q", resp.StatusCode, body)
	}
}
