package netguard

import (
	"math/big"
	"net/netip"
	"slices"
	"strings"
)

// Coverage sizes what a list of allow_cidrs lets through of the public
// address space (the addresses Classify calls Global): overlapping entries
// count once, and an IPv6 prefix that embeds IPv4 addresses (IPv4-mapped,
// IPv4-compatible, NAT64 64:ff9b::/96 and 64:ff9b:1::/96, 6to4 2002::/16)
// counts as the IPv4 addresses it reaches. So 0.0.0.0/0 written as two
// /1s, or as ::ffff:0:0/96, is as large as it is.
func Coverage(allow []netip.Prefix) (v4, v6 *big.Int) {
	var s4, s6 []span
	for _, p := range allow {
		p = p.Masked()
		if p.Addr().Is4() {
			s4 = append(s4, spanOf(p))
			continue
		}
		s6 = append(s6, spanOf(p))
		for _, q := range embeddedV4(p) {
			s4 = append(s4, spanOf(q))
		}
	}
	return overlap(merge(s4), public4), overlap(merge(s6), public6)
}

// embeddings are the IPv6 prefixes whose addresses Classify judges by the
// IPv4 address at bit offset Bits() inside them, and localNAT64.
var embeddings = []netip.Prefix{
	netip.MustParsePrefix("::ffff:0:0/96"),
	v4Compatible,
	nat64,
	sixToFour,
	localNAT64,
}

// localNAT64 is RFC 8215's local-use NAT64 block (64:ff9b:1::/48) in RFC
// 6052's /96 layout, the one local translators are set up with. Classify
// blocks the block whole, but once allow_cidrs lets part of it through, a
// translator on the network carries it on to the IPv4 addresses inside,
// exactly as through 64:ff9b::/96: it is sized and checked as those.
var localNAT64 = netip.MustParsePrefix("64:ff9b:1::/96")

// embeddedV4 returns the IPv4 prefixes that the IPv6 prefix p reaches
// through an embedding.
func embeddedV4(p netip.Prefix) []netip.Prefix {
	var out []netip.Prefix
	for _, e := range embeddings {
		switch {
		case p.Bits() <= e.Bits() && p.Contains(e.Addr()):
			out = append(out, netip.MustParsePrefix("0.0.0.0/0"))
		case p.Bits() > e.Bits() && e.Contains(p.Addr()):
			b := p.Addr().As16()
			off := e.Bits() / 8
			v4 := netip.AddrFrom4([4]byte(b[off : off+4]))
			out = append(out, netip.PrefixFrom(v4, min(p.Bits()-e.Bits(), 32)).Masked())
		}
	}
	return out
}

// Sensitive reports why a request to ip would reach the gateway's own host
// or a cloud metadata service (loopback, 169.254.169.254, fd00:ec2::254,
// 100.100.100.200, also inside an IPv6 embedding), or "" if it would not.
func Sensitive(ip netip.Addr) Class {
	c := Classify(ip)
	if strings.Contains(string(c), "loopback") || strings.Contains(string(c), "cloud metadata") {
		return c
	}
	return Global
}

// sensitivePrefixes are the blocks behind Sensitive, for allow_cidrs.
var sensitivePrefixes = []netip.Prefix{
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("::1/128"),
	netip.MustParsePrefix("169.254.169.254/32"),
	netip.MustParsePrefix("100.100.100.200/32"),
	netip.MustParsePrefix("192.0.0.192/32"),
	awsMetadata6,
}

// SensitivePrefix reports the first loopback or cloud metadata address that
// the allow_cidrs entry p lets through (directly or through an IPv6
// embedding), with its class, or an invalid address if there is none.
func SensitivePrefix(p netip.Prefix) (netip.Addr, Class) {
	cands := append([]netip.Prefix{p.Masked()}, embeddedV4(p.Masked())...)
	for _, q := range cands {
		for _, s := range sensitivePrefixes {
			if q.Overlaps(s) {
				a := s.Addr()
				if q.Bits() > s.Bits() {
					a = q.Addr()
				}
				return a, Classify(a)
			}
		}
	}
	return netip.Addr{}, Global
}

// sensitiveNames resolve to a cloud metadata service or to the machine
// itself wherever outgate runs.
var sensitiveNames = map[string]Class{
	"localhost":                  "loopback",
	"metadata.google.internal":   "cloud metadata (GCP)",
	"metadata.goog":              "cloud metadata (GCP)",
	"metadata":                   "cloud metadata (GCP)",
	"instance-data":              "cloud metadata (AWS)",
	"instance-data.ec2.internal": "cloud metadata (AWS)",
	"metadata.tencentyun.com":    "cloud metadata (Tencent)",
}

// SensitiveNames lists the host names SensitiveName knows, for matching
// wildcard patterns against them.
func SensitiveNames() []string {
	names := make([]string, 0, len(sensitiveNames))
	for n := range sensitiveNames {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// SensitiveName is Sensitive for a canonical host name: localhost and its
// subdomains, and the names of cloud metadata services.
func SensitiveName(host string) Class {
	if c, ok := sensitiveNames[host]; ok {
		return c
	}
	if strings.HasSuffix(host, ".localhost") {
		return "loopback"
	}
	return Global
}

// span is an inclusive range of addresses as integers.
type span struct{ lo, hi *big.Int }

func spanOf(p netip.Prefix) span {
	a := p.Masked().Addr()
	lo := new(big.Int).SetBytes(a.AsSlice())
	host := uint(a.BitLen() - p.Bits())
	hi := new(big.Int).Lsh(big.NewInt(1), host)
	hi.Sub(hi, big.NewInt(1)).Add(hi, lo)
	return span{lo, hi}
}

// merge sorts spans and joins those that overlap or touch.
func merge(s []span) []span {
	slices.SortFunc(s, func(a, b span) int { return a.lo.Cmp(b.lo) })
	var out []span
	for _, x := range s {
		if n := len(out); n > 0 {
			next := new(big.Int).Add(out[n-1].hi, big.NewInt(1))
			if x.lo.Cmp(next) <= 0 {
				if x.hi.Cmp(out[n-1].hi) > 0 {
					out[n-1].hi = x.hi
				}
				continue
			}
		}
		out = append(out, span{new(big.Int).Set(x.lo), new(big.Int).Set(x.hi)})
	}
	return out
}

// overlap is the number of addresses in both merged lists.
func overlap(a, b []span) *big.Int {
	total := new(big.Int)
	for i, j := 0, 0; i < len(a) && j < len(b); {
		lo, hi := a[i].lo, a[i].hi
		if b[j].lo.Cmp(lo) > 0 {
			lo = b[j].lo
		}
		if b[j].hi.Cmp(hi) < 0 {
			hi = b[j].hi
		}
		if lo.Cmp(hi) <= 0 {
			total.Add(total, new(big.Int).Sub(hi, lo)).Add(total, big.NewInt(1))
		}
		if a[i].hi.Cmp(b[j].hi) < 0 {
			i++
		} else {
			j++
		}
	}
	return total
}

// complement is universe minus the merged spans in holes.
func complement(universe span, holes []span) []span {
	var out []span
	cur := new(big.Int).Set(universe.lo)
	for _, h := range holes {
		if h.lo.Cmp(cur) > 0 {
			out = append(out, span{new(big.Int).Set(cur), new(big.Int).Sub(h.lo, big.NewInt(1))})
		}
		if next := new(big.Int).Add(h.hi, big.NewInt(1)); next.Cmp(cur) > 0 {
			cur = next
		}
	}
	if cur.Cmp(universe.hi) <= 0 {
		out = append(out, span{cur, new(big.Int).Set(universe.hi)})
	}
	return out
}

// public4 and public6 are the addresses Classify calls Global, as spans.
var public4, public6 = func() ([]span, []span) {
	var h4 []span
	for _, b := range v4Blocks {
		h4 = append(h4, spanOf(b.prefix))
	}
	p4 := complement(spanOf(netip.MustParsePrefix("0.0.0.0/0")), merge(h4))
	// IPv6: global unicast less its special blocks and 6to4, whose
	// addresses are judged (and counted) by the IPv4 address inside.
	h6 := []span{spanOf(sixToFour)}
	for _, b := range v6Blocks {
		h6 = append(h6, spanOf(b.prefix))
	}
	p6 := complement(spanOf(globalUnicast6), merge(h6))
	return p4, p6
}()
