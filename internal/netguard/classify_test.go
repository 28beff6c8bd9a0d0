package netguard

import (
	"net/netip"
	"strings"
	"testing"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		addr    string
		blocked bool
		reason  string // substring of the reason when blocked
	}{
		// Ordinary public destinations.
		{"8.8.8.8", false, ""},
		{"1.1.1.1", false, ""},
		{"52.95.110.1", false, ""},
		{"100.63.255.255", false, ""}, // just below shared space
		{"100.128.0.0", false, ""},    // just above shared space
		{"172.15.255.255", false, ""},
		{"172.32.0.0", false, ""},
		{"192.0.1.1", false, ""},
		{"223.255.255.255", false, ""},
		{"2600:1f18::1", false, ""},
		{"2a00:1450:4001::1", false, ""},
		{"64:ff9b::808:808", false, ""}, // NAT64 of 8.8.8.8
		{"2002:808:808::1", false, ""},  // 6to4 of 8.8.8.8
		{"::ffff:8.8.8.8", false, ""},   // mapped public
		// IPv4 special-purpose registry.
		{"0.0.0.0", true, "this network"},
		{"0.1.2.3", true, "this network"},
		{"10.0.0.1", true, "private"},
		{"10.255.255.255", true, "private"},
		{"100.64.0.1", true, "shared"},
		{"127.0.0.1", true, "loopback"},
		{"127.255.255.254", true, "loopback"},
		{"169.254.0.1", true, "link-local"},
		{"172.16.0.1", true, "private"},
		{"172.31.255.255", true, "private"},
		{"192.0.0.1", true, "IETF"},
		{"192.0.0.9", true, "IETF"},
		{"192.0.2.1", true, "documentation"},
		{"192.88.99.1", true, "6to4 relay"},
		{"192.168.1.1", true, "private"},
		{"198.18.0.1", true, "benchmarking"},
		{"198.19.255.255", true, "benchmarking"},
		{"198.51.100.7", true, "documentation"},
		{"203.0.113.9", true, "documentation"},
		{"224.0.0.1", true, "multicast"},
		{"239.255.255.250", true, "multicast"},
		{"240.0.0.1", true, "reserved"},
		{"255.255.255.255", true, "broadcast"},
		// Cloud metadata services.
		{"169.254.169.254", true, "metadata (AWS"},
		{"100.100.100.200", true, "metadata (Alibaba)"},
		{"192.0.0.192", true, "metadata (Oracle)"},
		{"fd00:ec2::254", true, "metadata (AWS IPv6)"},
		// IPv6 special-purpose registry and non-unicast space.
		{"::", true, "unspecified"},
		{"::1", true, "loopback"},
		{"fe80::1", true, "link-local"},
		{"fe80::1%eth0", true, "link-local"},
		{"fc00::1", true, "unique local"},
		{"fd12:3456::1", true, "unique local"},
		{"fec0::1", true, "site-local"},
		{"ff02::1", true, "multicast"},
		{"100::1", true, "discard"},
		{"64:ff9b:1::1", true, "local-use"},
		{"2001:db8::1", true, "documentation"},
		{"3fff::1", true, "documentation"},
		{"2001:2::1", true, "IETF"},
		{"2001:10::1", true, "IETF"},
		{"5f00::1", true, "SRv6"},
		{"4000::1", true, "outside 2000::/3"},
		{"1::1", true, "outside 2000::/3"},
		// IPv4 embedded in IPv6: judged by the IPv4 address inside.
		{"::ffff:127.0.0.1", true, "IPv4-mapped embedding 127.0.0.1 (loopback)"},
		{"::ffff:169.254.169.254", true, "metadata"},
		{"::ffff:10.0.0.1", true, "private"},
		{"::127.0.0.1", true, "IPv4-compatible embedding 127.0.0.1"},
		{"::169.254.169.254", true, "IPv4-compatible embedding 169.254.169.254"},
		{"::8.8.8.8", true, "IPv4-compatible (deprecated)"},
		{"64:ff9b::a9fe:a9fe", true, "NAT64 embedding 169.254.169.254"},
		{"64:ff9b::7f00:1", true, "NAT64 embedding 127.0.0.1"},
		{"64:ff9b::c0a8:101", true, "NAT64 embedding 192.168.1.1"},
		{"2002:7f00:1::1", true, "6to4 embedding 127.0.0.1"},
		{"2002:a9fe:a9fe::", true, "6to4 embedding 169.254.169.254"},
		{"2002:c0a8:101::1", true, "6to4 embedding 192.168.1.1"},
		// Teredo: server 65.54.227.120, client 127.0.0.1 (inverted: 80ff:fffe).
		{"2001:0:4136:e378:8000:63bf:80ff:fffe", true, "Teredo embedding 127.0.0.1"},
		{"2001:0:4136:e378:8000:63bf:3fff:fdd2", true, "Teredo"},
		// Gaps seen in other egress proxies (landscape.md).
		{"198.18.0.1", true, "benchmarking"},
		{"240.0.0.1", true, "reserved"},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			c := Classify(netip.MustParseAddr(tt.addr))
			if blocked := c != Global; blocked != tt.blocked {
				t.Fatalf("Classify(%s) = %q; blocked=%v, want blocked=%v", tt.addr, c, blocked, tt.blocked)
			}
			if tt.blocked && !strings.Contains(string(c), tt.reason) {
				t.Errorf("Classify(%s) = %q, want a reason containing %q", tt.addr, c, tt.reason)
			}
		})
	}
	if len(tests) < 50 {
		t.Fatalf("the table must keep at least 50 cases, has %d", len(tests))
	}
}

func TestPolicyCheck(t *testing.T) {
	p := &Policy{
		Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("198.51.100.0/24")},
		Self:  []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:8080"), netip.MustParseAddrPort("0.0.0.0:3128")},
	}
	tests := []struct {
		ap      string
		blocked bool
	}{
		{"127.0.0.1:9000", false},          // allowed by allow_cidrs
		{"[::ffff:127.0.0.1]:9000", false}, // mapped form of an allowed address
		{"198.51.100.20:443", false},
		{"127.0.0.1:8080", true},     // the gateway's own relay listener
		{"127.0.0.2:8080", true},     // any loopback address on a loopback listener's port
		{"127.0.0.5:3128", true},     // the proxy listens on all addresses
		{"203.0.113.1:3128", true},   // ... so any address on its port is itself
		{"[::1]:9000", true},         // IPv6 loopback is not in allow_cidrs
		{"10.0.0.1:443", true},       // still blocked
		{"169.254.169.254:80", true}, // metadata stays blocked
		{"8.8.8.8:443", false},
	}
	for _, tt := range tests {
		err := p.Check(netip.MustParseAddrPort(tt.ap))
		if (err != nil) != tt.blocked {
			t.Errorf("Check(%s) = %v, want blocked=%v", tt.ap, err, tt.blocked)
		}
	}
}

func BenchmarkClassify(b *testing.B) {
	addrs := []netip.Addr{netip.MustParseAddr("52.95.110.1"), netip.MustParseAddr("2600:1f18::1"), netip.MustParseAddr("10.1.2.3")}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		Classify(addrs[i%len(addrs)])
	}
}
