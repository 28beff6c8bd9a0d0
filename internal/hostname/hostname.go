// Package hostname turns the host names and host:port targets that clients
// and operators write into one canonical form, so that policy compares like
// with like: lower case, punycode for IDNs, no trailing dot, canonical IP
// literals, and nothing ambiguous (numeric IPv4 spellings, zones, userinfo).
package hostname

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// Normalize returns the canonical form of a host name or IP literal (without
// brackets or port). IP literals come back in netip's canonical spelling.
func Normalize(host string) (string, error) {
	if host == "" {
		return "", errors.New("empty host")
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Zone() != "" {
			return "", errors.New("IPv6 zone identifiers are not allowed")
		}
		return ip.String(), nil
	}
	for _, r := range host {
		if r <= ' ' || r == 0x7f || strings.ContainsRune(`@/\%?#[]:,;"'<>`+"`", r) {
			return "", fmt.Errorf("host %q contains %q", host, r)
		}
	}
	if !utf8.ValidString(host) {
		return "", fmt.Errorf("host %q is not valid UTF-8", host)
	}
	h := strings.TrimSuffix(host, ".")
	ascii, err := idna.Lookup.ToASCII(h)
	if err != nil || ascii == "" {
		return "", fmt.Errorf("host %q is not a valid domain name", host)
	}
	// The canonical form must be a fixed point, or two spellings of one
	// name could compare unequal further on.
	if again, err := idna.Lookup.ToASCII(ascii); err != nil || again != ascii {
		return "", fmt.Errorf("host %q is not a valid domain name", host)
	}
	ascii = strings.ToLower(ascii)
	if len(ascii) > 253 {
		return "", fmt.Errorf("host name longer than 253 characters")
	}
	labels := strings.Split(ascii, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 {
			return "", fmt.Errorf("host %q has an empty or over-long label", host)
		}
	}
	// Resolvers and browsers read "2130706433", "0177.0.0.1", "127.1" and
	// "0x7f.1" as IPv4 addresses. A real domain's last label is never numeric,
	// so refuse them instead of guessing which interpretation a peer would use.
	if last := labels[len(labels)-1]; isNumeric(last) {
		return "", fmt.Errorf("host %q looks like an IPv4 address in a non-standard form", host)
	}
	return ascii, nil
}

func isNumeric(label string) bool {
	l := strings.ToLower(label)
	if strings.HasPrefix(l, "0x") {
		l = l[2:]
		if l == "" {
			return true
		}
		for _, c := range l {
			if !strings.ContainsRune("0123456789abcdef", c) {
				return false
			}
		}
		return true
	}
	for _, c := range l {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// SplitTarget parses "host:port" (IPv6 in brackets) into a normalized host and
// a port. With defaultPort > 0 a missing port is allowed and defaults to it.
func SplitTarget(target string, defaultPort uint16) (string, uint16, error) {
	host, portStr, err := net.SplitHostPort(target)
	if err != nil {
		if defaultPort == 0 || strings.Count(target, ":") > 0 && !strings.HasPrefix(target, "[") {
			return "", 0, fmt.Errorf("%q is not host:port", target)
		}
		host = strings.TrimSuffix(strings.TrimPrefix(target, "["), "]")
		portStr = strconv.Itoa(int(defaultPort))
	}
	port, err := ParsePort(portStr)
	if err != nil {
		return "", 0, err
	}
	h, err := Normalize(host)
	if err != nil {
		return "", 0, err
	}
	return h, port, nil
}

// ParsePort accepts a decimal port 1-65535 with no sign or leading zeros.
func ParsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 || (len(s) > 1 && s[0] == '0') {
		return 0, fmt.Errorf("port %q is not a number from 1 to 65535", s)
	}
	return uint16(n), nil
}

// JoinTarget is the inverse of SplitTarget for normalized hosts.
func JoinTarget(host string, port uint16) string {
	return net.JoinHostPort(host, strconv.Itoa(int(port)))
}

// Pattern is a destination a client may reach: an exact host, or "*.suffix"
// for any name below suffix (at any depth, never suffix itself), on one port.
type Pattern struct {
	Host     string // normalized; for wildcards, the suffix without "*."
	Wildcard bool
	Port     uint16
}

// DefaultPort is the port a pattern without one gets: partner APIs speak HTTPS.
const DefaultPort = 443

// ParsePattern parses "api.example:443", "*.example", "203.0.113.7:8443" or
// "[2001:db8::1]:443". Wildcards other than one leading "*." are refused.
func ParsePattern(s string) (Pattern, error) {
	var p Pattern
	rest := s
	if strings.HasPrefix(rest, "*.") {
		p.Wildcard = true
		rest = rest[2:]
	}
	if strings.Contains(rest, "*") {
		return p, fmt.Errorf("%q: only a leading \"*.\" wildcard is supported", s)
	}
	host, port, err := SplitTarget(rest, DefaultPort)
	if err != nil {
		return p, fmt.Errorf("%q: %v", s, err)
	}
	if p.Wildcard {
		if _, err := netip.ParseAddr(host); err == nil {
			return p, fmt.Errorf("%q: a wildcard cannot apply to an IP address", s)
		}
		if !strings.Contains(host, ".") {
			return p, fmt.Errorf("%q: a wildcard needs at least two labels after \"*.\"", s)
		}
	}
	p.Host, p.Port = host, port
	return p, nil
}

// Match reports whether a normalized host and port fall under the pattern.
func (p Pattern) Match(host string, port uint16) bool {
	if port != p.Port {
		return false
	}
	if !p.Wildcard {
		return host == p.Host
	}
	return len(host) > len(p.Host)+1 && strings.HasSuffix(host, p.Host) && host[len(host)-len(p.Host)-1] == '.'
}

func (p Pattern) String() string {
	h := p.Host
	if p.Wildcard {
		h = "*." + h
	}
	return JoinTarget(h, p.Port)
}
