package netguard

import (
	"math/big"
	"net/netip"
	"testing"
)

func prefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func total(s []span) *big.Int {
	t := new(big.Int)
	for _, x := range s {
		t.Add(t, new(big.Int).Sub(x.hi, x.lo)).Add(t, big.NewInt(1))
	}
	return t
}

func pow2(n uint) *big.Int { return new(big.Int).Lsh(big.NewInt(1), n) }

func TestCoverage(t *testing.T) {
	all4, all6 := total(public4), total(public6)
	tests := []struct {
		allow  []netip.Prefix
		v4, v6 *big.Int
	}{
		{prefixes("10.0.0.0/8", "127.0.0.0/8", "fc00::/7"), big.NewInt(0), big.NewInt(0)},
		{prefixes("8.0.0.0/8"), pow2(24), big.NewInt(0)},
		{prefixes("8.0.0.0/8", "8.8.0.0/16", "8.8.8.8/32"), pow2(24), big.NewInt(0)}, // overlaps count once
		{prefixes("8.0.0.0/9", "8.128.0.0/9"), pow2(24), big.NewInt(0)},
		{prefixes("0.0.0.0/1", "128.0.0.0/1"), all4, big.NewInt(0)},
		{prefixes("0.0.0.0/2", "64.0.0.0/2", "128.0.0.0/2", "192.0.0.0/2"), all4, big.NewInt(0)},
		{prefixes("::ffff:0:0/96"), all4, big.NewInt(0)},
		{prefixes("64:ff9b::/96"), all4, big.NewInt(0)},
		// RFC 8215 local-use NAT64, in RFC 6052's /96 layout (64:ff9b:1::/96)
		{prefixes("64:ff9b:1::/48"), all4, big.NewInt(0)},
		{prefixes("64:ff9b:1::/96"), all4, big.NewInt(0)},
		{prefixes("64:ff9b:1::808:800/120"), big.NewInt(256), big.NewInt(0)},
		{prefixes("::/96"), all4, big.NewInt(0)},
		{prefixes("2002::/16"), all4, big.NewInt(0)},
		{prefixes("2002:808::/32"), pow2(16), big.NewInt(0)}, // 6to4 of 8.8.0.0/16
		{prefixes("::ffff:8.8.8.0/120"), big.NewInt(256), big.NewInt(0)},
		{prefixes("::/0"), all4, all6},
		{prefixes("::/1", "8000::/1"), all4, all6},
		{prefixes("2000::/3"), all4, all6}, // 2002::/16 inside reaches every IPv4 address
		{prefixes("2001:db8::/32"), big.NewInt(0), big.NewInt(0)},
		{prefixes("2600::/8"), big.NewInt(0), pow2(120)},
	}
	for _, tt := range tests {
		v4, v6 := Coverage(tt.allow)
		if v4.Cmp(tt.v4) != 0 || v6.Cmp(tt.v6) != 0 {
			t.Errorf("Coverage(%v) = %v, %v; want %v, %v", tt.allow, v4, v6, tt.v4, tt.v6)
		}
	}
}

// TestPublicSpansMatchClassify: the public spans Coverage counts against
// begin and end exactly where Classify's Global addresses do.
func TestPublicSpansMatchClassify(t *testing.T) {
	for _, list := range [][]span{public4, public6} {
		for _, s := range list {
			lo, hi := addrOf(s.lo, list), addrOf(s.hi, list)
			if Classify(lo) != Global || Classify(hi) != Global {
				t.Errorf("span %v-%v: ends are %q, %q", lo, hi, Classify(lo), Classify(hi))
			}
			if p := lo.Prev(); p.IsValid() && Classify(p) == Global {
				t.Errorf("span %v-%v: %v before it is Global too", lo, hi, p)
			}
			if n := hi.Next(); n.IsValid() && Classify(n) == Global {
				t.Errorf("span %v-%v: %v after it is Global too", lo, hi, n)
			}
		}
	}
	if got := total(public4); got.Cmp(big.NewInt(3_702_258_432)) > 0 || got.Cmp(big.NewInt(3_000_000_000)) < 0 {
		t.Errorf("public IPv4 = %v addresses", got)
	}
}

func addrOf(n *big.Int, list []span) netip.Addr {
	if &list[0] == &public4[0] {
		var b [4]byte
		n.FillBytes(b[:])
		return netip.AddrFrom4(b)
	}
	var b [16]byte
	n.FillBytes(b[:])
	return netip.AddrFrom16(b)
}

func TestSensitive(t *testing.T) {
	for _, s := range []string{"127.0.0.1", "::1", "169.254.169.254", "fd00:ec2::254", "100.100.100.200", "192.0.0.192", "::ffff:127.0.0.1", "64:ff9b::a9fe:a9fe"} {
		if Sensitive(netip.MustParseAddr(s)) == Global {
			t.Errorf("Sensitive(%s) = Global", s)
		}
	}
	for _, s := range []string{"10.0.0.1", "8.8.8.8", "169.254.1.1", "2001:db8::1"} {
		if c := Sensitive(netip.MustParseAddr(s)); c != Global {
			t.Errorf("Sensitive(%s) = %q", s, c)
		}
	}
	for _, tt := range []struct {
		p    string
		want string
	}{
		{"127.0.0.0/8", "127.0.0.0"}, {"127.0.0.1/32", "127.0.0.1"}, {"0.0.0.0/1", "127.0.0.0"}, {"169.254.0.0/16", "169.254.169.254"},
		{"100.64.0.0/10", "100.100.100.200"}, {"fd00::/8", "fd00:ec2::254"}, {"::ffff:127.0.0.0/104", "127.0.0.0"},
		{"64:ff9b:1::a9fe:a9fe/128", "169.254.169.254"},
		{"10.0.0.0/8", "invalid IP"}, {"172.16.0.0/12", "invalid IP"}, {"fc00::/8", "invalid IP"},
	} {
		if a, _ := SensitivePrefix(netip.MustParsePrefix(tt.p)); a.String() != tt.want {
			t.Errorf("SensitivePrefix(%s) = %v, want %s", tt.p, a, tt.want)
		}
	}
	for _, n := range []string{"localhost", "a.localhost", "metadata.google.internal", "metadata.goog"} {
		if SensitiveName(n) == Global {
			t.Errorf("SensitiveName(%s) = Global", n)
		}
	}
	if SensitiveName("api.partner.example") != Global {
		t.Error("an ordinary name is sensitive")
	}
}
