package config

import (
	"net"
	"net/textproto"
	"sort"
	"strings"
	"time"

	"github.com/outgate/outgate/internal/hop"
	"github.com/outgate/outgate/internal/secrets"
)

// Secrets is the top-level `secrets:` block.
type Secrets struct {
	// TTL is how long fetched values are used before they are fetched
	// again (default secrets.DefaultTTL).
	TTL string `yaml:"ttl"`

	ResolvedTTL time.Duration `yaml:"-"`
}

// PartnerSecrets are an upstream's inject_headers and client certificate,
// parsed. The values are not in the config: internal/inject fetches them.
type PartnerSecrets struct {
	Headers []InjectHeader // sorted by name
	// Cert and Key are set together, or neither is.
	Cert, Key *secrets.Ref
}

// InjectHeader is one header an upstream's requests get from secrets.
type InjectHeader struct {
	Name  string // canonical
	Value secrets.Template
}

// Empty reports whether the upstream uses no secret.
func (p PartnerSecrets) Empty() bool { return len(p.Headers) == 0 && p.Cert == nil }

// Names are the injected header names (canonical).
func (p PartnerSecrets) Names() []string {
	out := make([]string, len(p.Headers))
	for i, h := range p.Headers {
		out[i] = h.Name
	}
	return out
}

// MaxInjectHeaders bounds an upstream's inject_headers.
const MaxInjectHeaders = 16

// MinSecretsTTL keeps a short ttl from turning into a stream of calls to
// SSM or Secrets Manager from every gateway.
const MinSecretsTTL = 10 * time.Second

// SecretRefs lists every reference in the config, in a stable order.
func (c *Config) SecretRefs() []secrets.Ref {
	var names []string
	for n := range c.Upstreams {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []secrets.Ref
	for _, n := range names {
		p := c.Upstreams[n].Partner
		for _, h := range p.Headers {
			out = append(out, h.Value.Refs()...)
		}
		if p.Cert != nil {
			out = append(out, *p.Cert, *p.Key)
		}
	}
	return out
}

// notInjectable are headers a partner's credentials never go in: the
// framing and routing of the request, hop-by-hop ones (removed on the way),
// and outgate's own.
var notInjectable = map[string]bool{
	"Host": true, "Content-Length": true, "Transfer-Encoding": true, "Connection": true,
	"Keep-Alive": true, "Te": true, "Trailer": true, "Upgrade": true, "Proxy-Connection": true,
	"Proxy-Authorization": true, "Proxy-Authenticate": true, "Expect": true,
}

func (v *validator) partnerSecrets(path string, up *Upstream) {
	var ps PartnerSecrets
	if len(up.InjectHeaders) > MaxInjectHeaders {
		v.errf(path+".inject_headers", "at most %d headers", MaxInjectHeaders)
	}
	seen := map[string]string{}
	for name, val := range up.InjectHeaders {
		p := path + ".inject_headers." + name
		c := textproto.CanonicalMIMEHeaderKey(name)
		switch {
		case !headerName.MatchString(name):
			v.errf(p+"#key", "%q is not a header name", name)
			continue
		case strings.Contains(name, "_"):
			v.errf(p+"#key", "%q has '_': name the header with '-' (outgate removes the client's '_' spellings of it too)", name)
			continue
		case notInjectable[c] || strings.HasPrefix(c, hop.OwnPrefix):
			v.errf(p+"#key", "%s cannot be injected", c)
			continue
		case seen[c] != "":
			v.errf(p+"#key", "%s is listed twice (as %s)", c, seen[c])
			continue
		}
		seen[c] = name
		for _, f := range up.ForwardHeaders {
			if f == c {
				v.errf(p+"#key", "%s is also in forward_headers: the client's copy is always replaced by the injected one", c)
			}
		}
		t, err := secrets.ParseTemplate(val)
		if err != nil {
			v.errf(p, "%v", err)
			continue
		}
		if len(t.Refs()) == 0 {
			v.errf(p, "has no ${secret:...} reference: a fixed header belongs in the client's request, not here")
			continue
		}
		for _, ch := range []byte(val) {
			if ch < 0x20 && ch != '\t' || ch == 0x7f {
				v.errf(p, "has a control character")
				break
			}
		}
		for _, r := range t.Refs() {
			v.secretAt(r, p)
		}
		ps.Headers = append(ps.Headers, InjectHeader{Name: c, Value: t})
	}
	sort.Slice(ps.Headers, func(i, j int) bool { return ps.Headers[i].Name < ps.Headers[j].Name })
	if len(ps.Headers) > 0 && up.Parsed != nil && up.Parsed.Scheme == "http" && !loopbackHost(up.Parsed.Hostname()) {
		v.warnf(path+".inject_headers", "the url is http://: these credentials cross the network unencrypted, readable and reusable by anyone on the way; use the partner's https:// url")
	}

	switch {
	case up.ClientCert == "" && up.ClientKey == "":
	case up.ClientCert == "" || up.ClientKey == "":
		v.errf(path, "client_cert and client_key go together")
	default:
		cert, errC := secrets.ParseWhole(up.ClientCert)
		if errC != nil {
			v.errf(path+".client_cert", "%v", errC)
		}
		key, errK := secrets.ParseWhole(up.ClientKey)
		if errK != nil {
			v.errf(path+".client_key", "%v", errK)
		}
		if up.Parsed != nil && up.Parsed.Scheme != "https" {
			v.errf(path+".client_cert", "a client certificate needs an https:// url")
		}
		if errC == nil && errK == nil {
			ps.Cert, ps.Key = &cert, &key
			v.secretAt(cert, path+".client_cert")
			v.secretAt(key, path+".client_key")
		}
	}
	up.Partner = ps
}

// loopbackHost: a partner on the gateway's own machine, where http:// has
// no network to cross (tests, a local sidecar).
func loopbackHost(h string) bool {
	if strings.EqualFold(strings.TrimSuffix(h, "."), "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

func (v *validator) secrets() {
	s := &v.c.Secrets
	s.ResolvedTTL = secrets.DefaultTTL
	if s.TTL == "" {
		return
	}
	d, err := ParseDuration(s.TTL)
	switch {
	case err != nil:
		v.errf("secrets.ttl", "%v", err)
	case d < MinSecretsTTL || d > 24*time.Hour:
		v.errf("secrets.ttl", "must be between %s and 24h, got %s", MinSecretsTTL, s.TTL)
	default:
		s.ResolvedTTL = d
	}
}

func (v *validator) secretAt(r secrets.Ref, path string) {
	if v.c.SecretAt == nil {
		v.c.SecretAt = map[secrets.Ref]Problem{}
	}
	if _, ok := v.c.SecretAt[r]; ok {
		return
	}
	line, col := v.at(path)
	v.c.SecretAt[r] = Problem{Line: line, Column: col, Path: path}
}

// SecretProblem formats a failed reference at its place in the file, as
// "file:line:col: path: message" (a warning when warn).
func (c *Config) SecretProblem(r secrets.Ref, msg string, warn bool) string {
	p := c.SecretAt[r]
	p.Msg = msg
	var b strings.Builder
	kind := ""
	if warn {
		kind = "warning: "
	}
	p.write(&b, c.Source, kind)
	return b.String()
}
