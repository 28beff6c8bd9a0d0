package netguard_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/outgate/outgate/internal/netguard"
	"github.com/outgate/outgate/internal/testutil"
)

// listen starts a TCP listener on loopback that accepts and counts connections.
func listen(t *testing.T) (port uint16, accepted *atomic.Int32) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	accepted = new(atomic.Int32)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	return uint16(l.Addr().(*net.TCPAddr).Port), accepted
}

func TestDialerChecksResolvedAddresses(t *testing.T) {
	port, accepted := listen(t)
	dns := testutil.NewDNS(t)
	dns.Set("public.test", "127.0.0.1")         // allowed via Allow below
	dns.Set("metadata.test", "169.254.169.254") // never allowed
	dns.Set("mixed.test", "127.0.0.1", "10.0.0.1")
	dns.Set("v6loop.test", "::1")
	var flip atomic.Int32
	// A rebinding name: the first lookup (its A and AAAA questions) gets an
	// allowed answer, every later one an internal address.
	dns.SetFunc("rebind.test", func() []netip.Addr {
		if flip.Add(1) <= 2 {
			return []netip.Addr{netip.MustParseAddr("127.0.0.1")}
		}
		return []netip.Addr{netip.MustParseAddr("10.0.0.1")}
	})

	d := &netguard.Dialer{
		Policy:   &netguard.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}},
		Resolver: testutil.Resolver(dns.Addr),
	}
	target := func(host string) string { return net.JoinHostPort(host, strconv.Itoa(int(port))) }

	tests := []struct {
		host    string
		blocked bool
	}{
		{"public.test", false},
		{"127.0.0.1", false},
		{"metadata.test", true},
		{"mixed.test", true}, // one internal answer denies the name
		{"v6loop.test", true},
		{"169.254.169.254", true},
		{"::ffff:169.254.169.254", true},
		{"fe80::1%lo", true},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			conn, err := d.DialContext(context.Background(), "tcp", target(tt.host))
			var be *netguard.BlockedError
			if tt.blocked {
				if !errors.As(err, &be) {
					t.Fatalf("dial %s: err = %v, want a BlockedError", tt.host, err)
				}
				if be.Host != tt.host {
					t.Errorf("BlockedError.Host = %q, want %q", be.Host, tt.host)
				}
				return
			}
			if err != nil {
				t.Fatalf("dial %s: %v", tt.host, err)
			}
			conn.Close()
		})
	}

	// Rebinding: the first lookup is allowed and dialed; the second lookup
	// returns an internal address and must be refused, not dialed.
	before := accepted.Load()
	c, err := d.DialContext(context.Background(), "tcp", target("rebind.test"))
	if err != nil {
		t.Fatalf("first rebind dial: %v", err)
	}
	c.Close()
	if _, err := d.DialContext(context.Background(), "tcp", target("rebind.test")); err == nil {
		t.Fatal("second rebind dial succeeded; it resolved to 10.0.0.1 and must be blocked")
	}
	if n := dns.Queries("rebind.test"); n < 2 {
		t.Fatalf("rebind.test was looked up %d times; the test needs a fresh lookup per dial", n)
	}
	if got := accepted.Load() - before; got > 1 {
		t.Fatalf("the listener accepted %d connections; only the first rebind dial may connect", got)
	}
}

func TestDialerRefusesSelf(t *testing.T) {
	port, accepted := listen(t)
	self := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)
	d := &netguard.Dialer{Policy: &netguard.Policy{
		Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		Self:  []netip.AddrPort{self},
	}}
	_, err := d.DialContext(context.Background(), "tcp", self.String())
	var be *netguard.BlockedError
	if !errors.As(err, &be) {
		t.Fatalf("dialing the gateway's own listener: err = %v, want BlockedError", err)
	}
	if accepted.Load() != 0 {
		t.Fatal("a connection reached the listener although it was refused")
	}
}
