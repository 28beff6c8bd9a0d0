package netguard

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"syscall"
	"time"
)

// BlockedError says a destination was refused by the address policy. Its
// message is safe to show a client: it names the requested host, never a
// resolved address, so the gateway's view of the network does not leak.
type BlockedError struct {
	Host   string     // what the client asked for
	Addr   netip.Addr // the address that was refused (for the audit log only)
	Reason Class
}

func (e *BlockedError) Error() string {
	return fmt.Sprintf("destination %s is blocked: %s", e.Host, e.Reason)
}

// Resolver is the part of *net.Resolver the guard needs.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Policy is the address policy: Classify, with operator-allowed CIDRs and the
// gateway's own listeners as exceptions in opposite directions.
type Policy struct {
	// Allow lists prefixes the operator explicitly lets through even though
	// Classify blocks them (network.allow_cidrs).
	Allow []netip.Prefix
	// Self lists the gateway's own listening sockets. A connection to one of
	// them would loop a request back into the gateway, so it is always denied.
	// An unspecified address (0.0.0.0, ::) matches any address on its port;
	// a loopback address matches every loopback address on its port (all of
	// 127.0.0.0/8 reaches a socket bound to 0.0.0.0, which a caller may list
	// as its loopback address alone).
	Self []netip.AddrPort
	// IPv4Only refuses every IPv6 destination, and the Dialer then asks
	// DNS for IPv4 addresses alone: instance mode's calls must leave from
	// the deployment's Elastic IPs, which are IPv4, and on a dual-stack
	// subnet a call to an IPv6 address would leave from the instance's own
	// IPv6 address, which no partner allowlists and no egress check over
	// IPv4 would ever see.
	IPv4Only bool
}

// Check returns nil if the gateway may connect to ap.
func (p *Policy) Check(ap netip.AddrPort) error {
	ip := ap.Addr().WithZone("").Unmap()
	if p.IPv4Only && !ip.Is4() {
		return &BlockedError{Addr: ip, Reason: "an IPv6 address: calls leave only from the deployment's IPv4 addresses"}
	}
	for _, s := range p.Self {
		sa := s.Addr().Unmap()
		if s.Port() == ap.Port() && (sa.IsUnspecified() || sa == ip || sa.IsLoopback() && ip.IsLoopback()) {
			return &BlockedError{Addr: ip, Reason: "the gateway's own listener"}
		}
	}
	for _, a := range p.Allow {
		if a.Contains(ip) {
			return nil
		}
	}
	if c := Classify(ap.Addr()); c != Global {
		return &BlockedError{Addr: ip, Reason: c}
	}
	return nil
}

// Dialer resolves a name once, checks every address it got, and dials only
// the checked address literals. The check runs again in the socket's Control
// hook on the address actually connected, which also covers any path that
// reaches the dialer with a literal.
type Dialer struct {
	Policy   *Policy
	Resolver Resolver
	// Timeout bounds the whole dial, name lookup and every connection
	// attempt together (not each attempt); 0 means 10s.
	Timeout time.Duration
	// KeepAlive for outgoing TCP connections; 0 means the net package default.
	KeepAlive time.Duration
	// OnConnect, if set, is called for every connection established.
	OnConnect func()
}

// DialContext has the signature http.Transport expects.
func (d *Dialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	host, portStr, err := net.SplitHostPort(address)
	if err != nil {
		return nil, fmt.Errorf("bad address %q: %w", address, err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil || port == 0 {
		return nil, fmt.Errorf("bad port in %q", address)
	}
	timeout := d.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	addrs, err := d.resolve(ctx, network, host)
	if err != nil {
		return nil, err
	}
	// Deny the whole name if any answer is blocked: a name that mixes public
	// and internal answers is either misconfigured or an attack, and failing
	// loudly beats silently picking one.
	for _, a := range addrs {
		if err := d.Policy.Check(netip.AddrPortFrom(a, uint16(port))); err != nil {
			be := err.(*BlockedError)
			be.Host = host
			return nil, be
		}
	}
	nd := &net.Dialer{
		KeepAlive: d.KeepAlive,
		ControlContext: func(_ context.Context, _ string, addr string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(addr)
			if err != nil {
				return &BlockedError{Host: host, Reason: "unparseable dialed address"}
			}
			if err := d.Policy.Check(ap); err != nil {
				be := err.(*BlockedError)
				be.Host = host
				return be
			}
			return nil
		},
	}
	var firstErr error
	for _, a := range addrs {
		conn, err := nd.DialContext(ctx, network, netip.AddrPortFrom(a, uint16(port)).String())
		if err == nil {
			if d.OnConnect != nil {
				d.OnConnect()
			}
			return conn, nil
		}
		var be *BlockedError
		if errors.As(err, &be) {
			return nil, be
		}
		if firstErr == nil {
			firstErr = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, firstErr
}

func (d *Dialer) resolve(ctx context.Context, network, host string) ([]netip.Addr, error) {
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Zone() != "" {
			return nil, &BlockedError{Host: host, Addr: ip, Reason: "IPv6 zone identifiers are not allowed"}
		}
		return []netip.Addr{ip}, nil
	}
	lookupNet := "ip"
	switch network {
	case "tcp4":
		lookupNet = "ip4"
	case "tcp6":
		lookupNet = "ip6"
	}
	if d.Policy != nil && d.Policy.IPv4Only {
		lookupNet = "ip4"
	}
	r := d.Resolver
	if r == nil {
		r = net.DefaultResolver
	}
	addrs, err := r.LookupNetIP(ctx, lookupNet, host)
	if err != nil {
		return nil, err
	}
	if len(addrs) == 0 {
		return nil, &net.DNSError{Err: "no addresses", Name: host, IsNotFound: true}
	}
	return addrs, nil
}
