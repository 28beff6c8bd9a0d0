// Package netguard decides whether the gateway may connect to an IP address
// and enforces that decision on the address actually dialed, so that DNS
// answers (including rebinding ones) cannot steer a connection somewhere the
// policy never saw.
package netguard

import (
	"fmt"
	"net/netip"
)

// Class names why an address is blocked. The zero value means "global": the
// address is an ordinary public destination.
type Class string

const (
	Global Class = ""
)

type block struct {
	prefix netip.Prefix
	class  Class
}

func mustBlocks(list [][2]string) []block {
	out := make([]block, 0, len(list))
	for _, b := range list {
		out = append(out, block{netip.MustParsePrefix(b[0]), Class(b[1])})
	}
	return out
}

// v4Blocks lists every IPv4 block that is not globally reachable, taken from
// the IANA IPv4 Special-Purpose Address Registry (entries with Globally
// Reachable = False or N/A), plus multicast and the cloud metadata addresses
// that fall inside them. Whole blocks are denied even where the registry marks
// a few anycast hosts inside as global (192.0.0.9, 192.0.0.10): no partner API
// lives there, and a shorter rule is easier to trust.
var v4Blocks = mustBlocks([][2]string{
	{"169.254.169.254/32", "cloud metadata (AWS, GCP, Azure)"},
	{"100.100.100.200/32", "cloud metadata (Alibaba)"},
	{"192.0.0.192/32", "cloud metadata (Oracle)"},
	{"0.0.0.0/8", "this network"},
	{"10.0.0.0/8", "private"},
	{"100.64.0.0/10", "shared address space"},
	{"127.0.0.0/8", "loopback"},
	{"169.254.0.0/16", "link-local"},
	{"172.16.0.0/12", "private"},
	{"192.0.0.0/24", "IETF protocol assignments"},
	{"192.0.2.0/24", "documentation"},
	{"192.88.99.0/24", "6to4 relay anycast"},
	{"192.168.0.0/16", "private"},
	{"198.18.0.0/15", "benchmarking"},
	{"198.51.100.0/24", "documentation"},
	{"203.0.113.0/24", "documentation"},
	{"224.0.0.0/4", "multicast"},
	{"255.255.255.255/32", "broadcast"},
	{"240.0.0.0/4", "reserved"},
})

// v6Blocks lists the IPv6 special-purpose blocks inside global unicast
// (2000::/3) that are not globally reachable (IANA IPv6 Special-Purpose
// Address Registry). Everything outside 2000::/3 is denied separately, apart
// from the prefixes that embed an IPv4 address, which are decoded instead.
var v6Blocks = mustBlocks([][2]string{
	{"2001::/32", "Teredo"},
	{"2001::/23", "IETF protocol assignments"},
	{"2001:db8::/32", "documentation"},
	{"3fff::/20", "documentation"},
})

var (
	globalUnicast6 = netip.MustParsePrefix("2000::/3")
	nat64          = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour      = netip.MustParsePrefix("2002::/16")
	v4Compatible   = netip.MustParsePrefix("::/96")
	teredo         = netip.MustParsePrefix("2001::/32")

	awsMetadata6 = netip.MustParsePrefix("fd00:ec2::254/128")
	// Named so the reason says what the address is; fc00::/7 would deny it anyway.
	v6Named = mustBlocks([][2]string{
		{"::/128", "unspecified"},
		{"::1/128", "loopback"},
		{"64:ff9b:1::/48", "local-use IPv4/IPv6 translation"},
		{"100::/64", "discard-only"},
		{"5f00::/16", "SRv6 SIDs"},
		{"fc00::/7", "unique local"},
		{"fe80::/10", "link-local"},
		{"fec0::/10", "site-local (deprecated)"},
		{"ff00::/8", "multicast"},
	})
)

// Classify reports why ip is not a global destination, or Global if it is.
// IPv6 addresses that carry an IPv4 address (IPv4-mapped, IPv4-compatible,
// NAT64 64:ff9b::/96, 6to4 2002::/16, Teredo 2001::/32) are judged by the
// IPv4 address inside them, because that is where the packets end up.
func Classify(ip netip.Addr) Class {
	ip = ip.WithZone("")
	if ip.Is4In6() {
		return embedded("IPv4-mapped", ip.Unmap())
	}
	if ip.Is4() {
		for _, b := range v4Blocks {
			if b.prefix.Contains(ip) {
				return b.class
			}
		}
		return Global
	}
	if !ip.IsValid() {
		return "invalid address"
	}
	if awsMetadata6.Contains(ip) {
		return "cloud metadata (AWS IPv6)"
	}
	for _, b := range v6Named {
		if b.prefix.Contains(ip) {
			return b.class
		}
	}
	b := ip.As16()
	switch {
	case v4Compatible.Contains(ip):
		// Deprecated by RFC 4291 and never a partner's address: always denied,
		// but named after the IPv4 address inside when that one is internal.
		if c := embedded("IPv4-compatible", netip.AddrFrom4([4]byte(b[12:16]))); c != Global {
			return c
		}
		return "IPv4-compatible (deprecated)"
	case nat64.Contains(ip):
		return embedded("NAT64", netip.AddrFrom4([4]byte(b[12:16])))
	case sixToFour.Contains(ip):
		return embedded("6to4", netip.AddrFrom4([4]byte(b[2:6])))
	case teredo.Contains(ip):
		// Teredo carries the server address in bits 32-63 and the client
		// address, inverted, in bits 96-127. Report the more specific reason
		// if either is internal; the block itself is never global anyway.
		server := netip.AddrFrom4([4]byte(b[4:8]))
		client := netip.AddrFrom4([4]byte{^b[12], ^b[13], ^b[14], ^b[15]})
		for _, inner := range []netip.Addr{client, server} {
			if c := Classify(inner); c != Global {
				return Class(fmt.Sprintf("Teredo embedding %s (%s)", inner, c))
			}
		}
		return "Teredo"
	}
	if !globalUnicast6.Contains(ip) {
		return "reserved (outside 2000::/3)"
	}
	for _, blk := range v6Blocks {
		if blk.prefix.Contains(ip) {
			return blk.class
		}
	}
	return Global
}

func embedded(kind string, v4 netip.Addr) Class {
	c := Classify(v4)
	if c == Global {
		return Global
	}
	return Class(fmt.Sprintf("%s embedding %s (%s)", kind, v4, c))
}
