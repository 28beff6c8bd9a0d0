package config

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"net/textproto"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/outgate/outgate/internal/hop"
	"github.com/outgate/outgate/internal/hostname"
	"github.com/outgate/outgate/internal/netguard"
)

type validator struct {
	c   *Config
	pos map[string]*yaml.Node
	e   *Error
	dir string
}

func dirOf(source string) string {
	if source == "" || strings.HasPrefix(source, "$") {
		return "."
	}
	return filepath.Dir(source)
}

// errf reports a problem at the value stored under path (or at the nearest
// parent that exists, for keys that were left out).
func (v *validator) errf(path, format string, args ...any) {
	line, col := v.at(path)
	v.e.add(line, col, path, format, args...)
}

// warnf records a warning the same way: the config stays valid.
func (v *validator) warnf(path, format string, args ...any) {
	line, col := v.at(path)
	v.c.Warnings = append(v.c.Warnings, Problem{Line: line, Column: col, Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (v *validator) at(path string) (line, col int) {
	for p := path; ; {
		if n, ok := v.pos[p]; ok {
			line, col = n.Line, n.Column
			break
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return line, col
}

var (
	upstreamName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)
	clientName   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)
	hexSHA256    = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)
	// headerName is RFC 9110's token.
	headerName = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
)

func (v *validator) validate() {
	c := v.c
	if c.Listen == "" {
		c.Listen = "127.0.0.1:8080"
	}
	v.listenAddr("listen", c.Listen)
	if c.ProxyListen != "" {
		v.listenAddr("proxy_listen", c.ProxyListen)
	}
	if c.AdminListen != "" {
		v.listenAddr("admin_listen", c.AdminListen)
	}
	v.distinctListeners()
	if c.EgressCheckURL == "" {
		c.EgressCheckURL = DefaultEgressCheckURL
	}
	if u, err := url.Parse(c.EgressCheckURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
		v.errf("egress_check_url", "must be an http:// or https:// URL with a host, got %q", c.EgressCheckURL)
	}
	v.upstreams()
	v.clients()
	v.network()
	v.limits()
	v.secrets()
	v.idempotencyStore()
	v.tls("tls", &c.TLS)
	v.tls("proxy_tls", &c.ProxyTLS)
	if c.ProxyTLS.Enabled() && c.ProxyListen == "" {
		v.errf("proxy_tls", "is for the proxy listener: set proxy_listen too")
	}
	if c.SharedListener() && c.ProxyTLS.Enabled() && c.ProxyTLS != c.TLS {
		v.errf("proxy_tls", "proxy_listen is listen (one listener for relay and proxy), which serves tls's certificate: leave proxy_tls out or make it the same as tls")
	}
	switch c.Log.Level {
	case "":
		c.Log.Level = "info"
	case "debug", "info", "warn", "error":
	default:
		v.errf("log.level", "must be one of debug, info, warn, error; got %q", c.Log.Level)
	}
}

func (v *validator) listenAddr(path, addr string) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		v.errf(path, "must be host:port (for example 127.0.0.1:8080), got %q", addr)
		return
	}
	if port != "0" {
		if _, err := hostname.ParsePort(port); err != nil {
			v.errf(path, "%v", err)
		}
	}
	if host != "" && host != "localhost" {
		if _, err := netip.ParseAddr(host); err != nil {
			v.errf(path, "host must be an IP address, localhost or empty (all interfaces), got %q", host)
		}
	}
}

// distinctListeners refuses two listeners on one address, except
// proxy_listen equal to listen: one listener for relay and proxy.
func (v *validator) distinctListeners() {
	seen := map[string]string{}
	for _, l := range []struct{ path, addr string }{{"listen", v.c.Listen}, {"proxy_listen", v.c.ProxyListen}, {"admin_listen", v.c.AdminListen}} {
		if l.addr == "" || strings.HasSuffix(l.addr, ":0") || (l.path == "proxy_listen" && v.c.SharedListener()) {
			continue
		}
		if other, ok := seen[l.addr]; ok {
			v.errf(l.path, "%s is already used by %s", l.addr, other)
		}
		seen[l.addr] = l.path
	}
}

func (v *validator) upstreams() {
	for name, up := range v.c.Upstreams {
		path := "upstreams." + name
		if !upstreamName.MatchString(name) {
			v.errf(path+"#key", "upstream name %q must be 1-63 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit", name)
		}
		u, err := url.Parse(up.URL)
		switch {
		case up.URL == "":
			v.errf(path+".url", "is required")
		case err != nil || !u.IsAbs() || u.Host == "" || u.Opaque != "":
			v.errf(path+".url", "must be an absolute URL such as https://api.partner.example/v2, got %q", up.URL)
		case u.Scheme != "https" && u.Scheme != "http":
			v.errf(path+".url", "scheme must be https or http, got %q", u.Scheme)
		case u.User != nil:
			v.errf(path+".url", "must not contain credentials (user:password@)")
		case u.RawQuery != "" || u.Fragment != "":
			v.errf(path+".url", "must not have a query or fragment")
		default:
			if host, _, err := hostname.SplitTarget(u.Host, 443); err != nil {
				v.errf(path+".url", "bad host: %v", err)
			} else if c := sensitiveHost(host); c != "" {
				v.warnf(path+".url", "%s is %s: a client of this upstream reaches it whenever allow_cidrs lets it through", host, c)
			}
			u.Path = strings.TrimSuffix(u.Path, "/")
			u.RawPath = strings.TrimSuffix(u.RawPath, "/")
			up.Parsed = u
		}
		if up.Timeout != "" {
			d, err := ParseDuration(up.Timeout)
			if err != nil {
				v.errf(path+".timeout", "%v", err)
			}
			up.HeaderTimeout = d
		}
		up.ForwardHeaders = v.forwardHeaders(path+".forward_headers", up.ForwardHeaders)
		v.allowBodyOn(path, &up)
		v.partnerSecrets(path, &up)
		v.idempotency(path, &up)
		v.c.Upstreams[name] = up
	}
}

// forwardHeaders checks an upstream's forward_headers and returns them in
// canonical form. Only headers outgate drops by default can be named: any
// other header is forwarded anyway, and outgate's own and hop-by-hop ones
// never are.
func (v *validator) forwardHeaders(path string, names []string) []string {
	var out []string
	seen := map[string]bool{}
	for i, n := range names {
		p := fmt.Sprintf("%s[%d]", path, i)
		c := textproto.CanonicalMIMEHeaderKey(n)
		switch {
		case !headerName.MatchString(n):
			v.errf(p, "%q is not a header name", n)
		case strings.Contains(n, "_"):
			// hop drops the '_' spellings whatever keep says: a partner that
			// reads headers as CGI variables takes them for the dashed name.
			v.errf(p, "%q has '_': name the header with '-' (the '_' spelling is never forwarded)", n)
		case !hop.ClientHeader(n):
			v.errf(p, "%q is forwarded anyway or never: only %s can be named", n, strings.Join(hop.ClientHeaderNames(), ", "))
		case seen[c]:
			v.errf(p, "%s is listed twice", c)
		default:
			seen[c] = true
			out = append(out, c)
		}
	}
	return out
}

func (v *validator) clients() {
	c := v.c
	if len(c.Clients) == 0 {
		v.errf("clients", "at least one client is required: the gateway denies everyone else")
		return
	}
	names := map[string]int{}
	hashes := map[[32]byte]string{}
	for i := range c.Clients {
		cl := &c.Clients[i]
		path := fmt.Sprintf("clients[%d]", i)
		switch {
		case cl.Name == "":
			v.errf(path+".name", "is required")
		case !clientName.MatchString(cl.Name):
			v.errf(path+".name", "%q must be 1-63 letters, digits, '.', '_' or '-' (it is the proxy user name, so no ':')", cl.Name)
		default:
			if j, dup := names[cl.Name]; dup {
				v.errf(path+".name", "duplicate client name %q (also clients[%d])", cl.Name, j)
			}
			names[cl.Name] = i
		}
		if len(cl.KeySHA256) == 0 {
			v.errf(path+".key_sha256", "is required: generate a key with `outgate keys new` and put its key_sha256 here")
		}
		for k, h := range cl.KeySHA256 {
			kp := path + ".key_sha256"
			if len(cl.KeySHA256) > 1 {
				kp = fmt.Sprintf("%s[%d]", kp, k)
			}
			if strings.HasPrefix(h, "og_") {
				v.errf(kp, "this is a key, not its hash: store only the key_sha256 printed by `outgate keys new`")
				continue
			}
			if !hexSHA256.MatchString(h) {
				v.errf(kp, "must be 64 hex digits (the SHA-256 of the key)")
				continue
			}
			var sum [32]byte
			hex.Decode(sum[:], []byte(strings.ToLower(h)))
			if other, dup := hashes[sum]; dup {
				v.errf(kp, "the same key hash is already used by client %q; every client needs its own key", other)
			}
			hashes[sum] = cl.Name
			cl.KeyHashes = append(cl.KeyHashes, sum)
		}
		seenUp := map[string]bool{}
		for j, u := range cl.Upstreams {
			up := fmt.Sprintf("%s.upstreams[%d]", path, j)
			if _, ok := c.Upstreams[u]; !ok {
				v.errf(up, "unknown upstream %q (define it under upstreams:)", u)
			}
			if seenUp[u] {
				v.errf(up, "upstream %q is listed twice", u)
			}
			seenUp[u] = true
		}
		seenHost := map[hostname.Pattern]bool{}
		for j, h := range cl.Hosts {
			hp := fmt.Sprintf("%s.hosts[%d]", path, j)
			p, err := hostname.ParsePattern(h)
			if err != nil {
				v.errf(hp, "%v", err)
				continue
			}
			if seenHost[p] {
				v.errf(hp, "%s is listed twice", p)
			}
			if c := sensitivePattern(p); c != "" {
				v.warnf(hp, "%s covers %s: this client reaches it whenever allow_cidrs lets it through", p, c)
			}
			seenHost[p] = true
			cl.Patterns = append(cl.Patterns, p)
		}
		cl.RawPatterns = v.rawTunnels(path, cl.RawTunnels, seenHost)
		if len(cl.Upstreams) == 0 && len(cl.Hosts) == 0 {
			v.errf(path, "client %q has no rights: list the upstreams (relay) or hosts (proxy) it may reach", cl.Name)
		}
		v.perClient(path+".limits", cl.Limits.RequestsPerSecond, cl.Limits.Burst, cl.Limits.MaxConcurrent, cl.Limits.MaxTunnels)
	}
}

// rawTunnels checks a client's raw_tunnels: each must be one of its hosts,
// spelled as there, so opting out of the TLS check never widens its rights.
func (v *validator) rawTunnels(path string, raw []string, hosts map[hostname.Pattern]bool) []hostname.Pattern {
	var out []hostname.Pattern
	seen := map[hostname.Pattern]bool{}
	for j, h := range raw {
		rp := fmt.Sprintf("%s.raw_tunnels[%d]", path, j)
		p, err := hostname.ParsePattern(h)
		switch {
		case err != nil:
			v.errf(rp, "%v", err)
		case !hosts[p]:
			v.errf(rp, "%s is not in this client's hosts: a raw tunnel is a host the client may already reach", p)
		case seen[p]:
			v.errf(rp, "%s is listed twice", p)
		default:
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}

func (v *validator) network() {
	n := &v.c.Network
	for i, s := range n.AllowCIDRs {
		path := fmt.Sprintf("network.allow_cidrs[%d]", i)
		p, err := netip.ParsePrefix(s)
		if err != nil {
			if ip, ierr := netip.ParseAddr(s); ierr == nil {
				v.errf(path, "%q is an address, not a CIDR: write %s/%d", s, ip, ip.BitLen())
			} else {
				v.errf(path, "%q is not a CIDR such as 127.0.0.0/8", s)
			}
			continue
		}
		if p.Masked() != p {
			v.errf(path, "%q has host bits set: did you mean %s?", s, p.Masked())
			continue
		}
		if p.Bits() == 0 {
			v.errf(path, "%q would allow every address and turn off the egress address policy", s)
			continue
		}
		if a, c := netguard.SensitivePrefix(p); c != netguard.Global {
			v.warnf(path, "%s lets requests reach %s (%s): only do this on purpose", p, a, c)
		}
		n.Allow = append(n.Allow, p)
	}
	// The policy is deny by default; allow_cidrs opens private ranges and a
	// few partner addresses. Counting the union (overlaps once, IPv6 forms
	// of IPv4 included) stops 0.0.0.0/0 coming back as two /1s.
	if v4, v6 := netguard.Coverage(n.Allow); v4.Cmp(maxPublic4) > 0 || v6.Cmp(maxPublic6) > 0 {
		v.errf("network.allow_cidrs", "together these entries let through %s public IPv4 and %s public IPv6 addresses; "+
			"the most allowed is a /8's worth (%s IPv4 or 2^120 IPv6). allow_cidrs is for the private range a partner is on: "+
			"public destinations need no entry, and a range this wide opens every blocked range inside it", v4, v6, maxPublic4)
	}
	for i, s := range n.Resolvers {
		path := fmt.Sprintf("network.resolvers[%d]", i)
		ap, err := netip.ParseAddrPort(s)
		if err != nil {
			ip, ierr := netip.ParseAddr(s)
			if ierr != nil {
				v.errf(path, "%q is not ip or ip:port", s)
				continue
			}
			ap = netip.AddrPortFrom(ip, 53)
		}
		n.ResolverAddrs = append(n.ResolverAddrs, ap)
	}
	for i, f := range n.CAFiles {
		path := fmt.Sprintf("network.ca_files[%d]", i)
		if !filepath.IsAbs(f) {
			f = filepath.Join(v.dir, f)
			n.CAFiles[i] = f
		}
		pem, err := os.ReadFile(f)
		if err != nil {
			v.errf(path, "cannot read: %v", err)
			continue
		}
		if !x509.NewCertPool().AppendCertsFromPEM(pem) {
			v.errf(path, "%s has no PEM certificates", f)
		}
	}
}

var (
	maxPublic4 = big.NewInt(1 << 24)
	maxPublic6 = new(big.Int).Lsh(big.NewInt(1), 120)
)

// sensitiveHost reports why a canonical host (name or IP literal) is
// loopback or a cloud metadata service, or "".
func sensitiveHost(host string) netguard.Class {
	if ip, err := netip.ParseAddr(host); err == nil {
		return netguard.Sensitive(ip)
	}
	return netguard.SensitiveName(host)
}

// sensitivePattern is sensitiveHost for a host pattern, wildcards included
// (*.internal covers metadata.google.internal).
func sensitivePattern(p hostname.Pattern) string {
	if !p.Wildcard {
		if c := sensitiveHost(p.Host); c != "" {
			return p.Host + " (" + string(c) + ")"
		}
		return ""
	}
	for _, n := range append(netguard.SensitiveNames(), "a."+p.Host) {
		if c := netguard.SensitiveName(n); c != "" && p.Match(n, p.Port) {
			return n + " (" + string(c) + ")"
		}
	}
	return ""
}

func (v *validator) tls(path string, t *TLS) {
	if (t.CertFile == "") != (t.KeyFile == "") {
		v.errf(path, "cert_file and key_file go together")
		return
	}
	if !t.Enabled() {
		return
	}
	for _, f := range []*string{&t.CertFile, &t.KeyFile} {
		if !filepath.IsAbs(*f) {
			*f = filepath.Join(v.dir, *f)
		}
	}
	if _, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile); err != nil {
		v.errf(path+".cert_file", "cannot load the certificate and key: %v", err)
	}
}

func (v *validator) limits() {
	l := &v.c.Limits
	r := Defaults
	v.size("limits.max_body", l.MaxBody, &r.MaxBodyBytes)
	v.size("limits.max_header", l.MaxHeader, &r.MaxHeaderBytes)
	v.duration("limits.read_header_timeout", l.ReadHeaderTimeout, &r.ReadHeaderTimeout)
	v.duration("limits.read_timeout", l.ReadTimeout, &r.ReadTimeout)
	v.duration("limits.idle_timeout", l.IdleTimeout, &r.IdleTimeout)
	v.duration("limits.dial_timeout", l.DialTimeout, &r.DialTimeout)
	v.duration("limits.tls_handshake_timeout", l.TLSHandshakeTimeout, &r.TLSHandshakeTimeout)
	v.duration("limits.response_header_timeout", l.ResponseHeaderTimeout, &r.ResponseHeaderTimeout)
	v.duration("limits.upstream_idle_timeout", l.UpstreamIdleTimeout, &r.UpstreamIdleTimeout)
	v.duration("limits.tunnel_idle_timeout", l.TunnelIdleTimeout, &r.TunnelIdleTimeout)
	v.duration("limits.shutdown_grace", l.ShutdownGrace, &r.ShutdownGrace)
	v.duration("limits.auth_timeout", l.AuthTimeout, &r.AuthTimeout)
	v.duration("limits.write_idle_timeout", l.WriteIdleTimeout, &r.WriteIdleTimeout)
	if p := l.MaxConnectionsPerIP; p != nil {
		if *p < 1 || *p > 1_000_000 {
			v.errf("limits.max_connections_per_ip", "must be from 1 to 1000000")
		}
		r.MaxConnectionsPerIP = *p
	}
	if p := l.MaxConnections; p != nil {
		if *p < 1 || *p > 1_000_000 {
			v.errf("limits.max_connections", "must be from 1 to 1000000")
		}
		r.MaxConnections = *p
	}
	v.perClient("limits", l.RequestsPerSecond, l.Burst, l.MaxConcurrent, l.MaxTunnels)
	if p := l.RequestsPerSecond; p != nil {
		r.PerClient.RequestsPerSecond = *p
	}
	if p := l.Burst; p != nil {
		r.PerClient.Burst = *p
	}
	if p := l.MaxConcurrent; p != nil {
		r.PerClient.MaxConcurrent = *p
	}
	if p := l.MaxTunnels; p != nil {
		r.PerClient.MaxTunnels = *p
	}
	l.Resolved = r
}

func (v *validator) perClient(path string, rps *float64, burst, conc, tunnels *int) {
	if rps != nil && !(*rps > 0 && *rps <= 1e6) {
		v.errf(path+".requests_per_second", "must be more than 0 and at most 1000000")
	}
	for _, f := range []struct {
		key string
		v   *int
	}{{"burst", burst}, {"max_concurrent", conc}, {"max_tunnels", tunnels}} {
		if f.v != nil && (*f.v < 1 || *f.v > 1_000_000) {
			v.errf(path+"."+f.key, "must be from 1 to 1000000")
		}
	}
}

func (v *validator) size(path, s string, dst *int64) {
	if s == "" {
		return
	}
	n, err := ParseSize(s)
	if err != nil {
		v.errf(path, "%v", err)
		return
	}
	*dst = n
}

func (v *validator) duration(path, s string, dst *time.Duration) {
	if s == "" {
		return
	}
	d, err := ParseDuration(s)
	if err != nil {
		v.errf(path, "%v", err)
		return
	}
	*dst = d
}
