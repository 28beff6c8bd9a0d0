// Package inject puts the partner credentials the gateway holds on the
// requests it forwards: each upstream's inject_headers (the client's own
// copies removed first, in every spelling a partner might read as the same
// header) and its client certificate for mutual TLS. The values come from
// internal/secrets and change when it refreshes them; the functions calling
// through outgate never hold them.
package inject

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"

	"golang.org/x/net/http/httpguts"

	"github.com/outgate/outgate/internal/apierr"
	"github.com/outgate/outgate/internal/config"
	"github.com/outgate/outgate/internal/egress"
	"github.com/outgate/outgate/internal/hop"
	"github.com/outgate/outgate/internal/secrets"
)

// Creds are the credentials of one config's upstreams.
type Creds struct {
	set *secrets.Set
	ups map[string]*Upstream
}

// Upstream is what one upstream's requests get.
type Upstream struct {
	name    string
	headers []config.InjectHeader
	drop    map[string]bool // injected names, canonical and '-' spelled
	cert    *secrets.Ref
	key     *secrets.Ref
	set     *secrets.Set

	mu        sync.Mutex
	builtFrom *secrets.Snapshot // what cached was built from
	cached    *egress.ClientCert
}

// Load fetches every secret the config names and checks that the values
// can be used (header values a request can carry, certificates that parse
// and match their keys). It fails naming the references that do not, so
// a start or a reload fails rather than a request. A config without secrets
// gives nil Creds, which inject nothing.
func Load(ctx context.Context, cfg *config.Config, src secrets.Sources, log *slog.Logger, onRefresh func(error)) (*Creds, error) {
	refs := cfg.SecretRefs()
	if len(refs) == 0 {
		return nil, nil
	}
	c := &Creds{ups: map[string]*Upstream{}}
	for name, up := range cfg.Upstreams {
		p := up.Partner
		if p.Empty() {
			continue
		}
		u := &Upstream{name: name, headers: p.Headers, cert: p.Cert, key: p.Key, drop: map[string]bool{}}
		for _, h := range p.Headers {
			u.drop[h.Name] = true
		}
		c.ups[name] = u
	}
	set, err := secrets.Load(ctx, src, refs, secrets.Options{TTL: cfg.Secrets.ResolvedTTL, Log: log, Check: c.check, OnRefresh: onRefresh})
	if err != nil {
		return nil, err
	}
	c.set = set
	for _, u := range c.ups {
		u.set = set
	}
	return c, nil
}

// check refuses values no request can use; its errors name references only.
func (c *Creds) check(v secrets.Values) error {
	var errs []error
	for _, u := range c.ups {
		for _, h := range u.headers {
			val, err := h.Value.Expand(v)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if !httpguts.ValidHeaderFieldValue(val) || strings.TrimSpace(val) != val {
				errs = append(errs, fmt.Errorf("upstream %s: inject_headers.%s: a value from %s has a line break, a control character or surrounding spaces, which a header cannot carry", u.name, h.Name, refList(h.Value.Refs())))
			}
		}
		if u.cert != nil {
			if _, err := u.certFrom(v); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func refList(refs []secrets.Ref) string {
	s := make([]string, len(refs))
	for i, r := range refs {
		s[i] = r.String()
	}
	return strings.Join(s, ", ")
}

// certFrom builds the client certificate from the values. Its error does not
// pass on crypto/tls's, which may quote PEM block types but never key bytes;
// still, it names only the references.
func (u *Upstream) certFrom(v secrets.Values) (*egress.ClientCert, error) {
	certPEM, keyPEM := v[*u.cert], v[*u.key]
	pair, err := tls.X509KeyPair([]byte(certPEM), []byte(keyPEM))
	if err != nil {
		return nil, fmt.Errorf("upstream %s: client_cert %s and client_key %s are not a PEM certificate and its private key", u.name, u.cert, u.key)
	}
	sum := sha256.New()
	for _, der := range pair.Certificate {
		sum.Write(der)
	}
	id := u.name + "/" + hex.EncodeToString(sum.Sum(nil)[:16])
	return &egress.ClientCert{ID: id, Slot: u.name, Cert: &pair}, nil
}

// For returns what requests to the upstream get, or nil.
func (c *Creds) For(upstream string) *Upstream {
	if c == nil {
		return nil
	}
	return c.ups[upstream]
}

// Wait waits for a background refresh (a replaced Core, tests).
func (c *Creds) Wait() {
	if c != nil {
		c.set.Wait()
	}
}

// Refresh fetches every secret again now (tests; the ttl does it otherwise).
func (c *Creds) Refresh(ctx context.Context) error {
	if c == nil {
		return nil
	}
	return c.set.Refresh(ctx)
}

// Apply removes the client's own copies of the injected headers from h, in
// any case and with '_' for '-' (a partner reading headers as CGI
// variables takes X_Api_Key for X-Api-Key), then sets the injected values.
func (u *Upstream) Apply(h http.Header) {
	if u == nil || len(u.headers) == 0 {
		return
	}
	for k := range h {
		if u.drop[k] || u.drop[hop.AsPartnerReads(k)] {
			delete(h, k)
		}
	}
	v := u.set.Current().Values
	for _, ih := range u.headers {
		// Load and every refresh checked that the values expand.
		if val, err := ih.Value.Expand(v); err == nil {
			h[ih.Name] = []string{val}
		}
	}
}

// RefuseMethod returns the error for a request whose method may not carry
// the credentials, or nil. TRACE asks the partner to send the request back
// as it received it, injected headers included, and TRACK is IIS's TRACE:
// RFC 9110 9.3.8 says a client "MUST NOT generate fields in a TRACE request
// containing sensitive data that might be disclosed by the response", and
// here the gateway is that client. Methods are case-sensitive, but a server
// that folds case would take "trace" for TRACE.
func (u *Upstream) RefuseMethod(method string) *apierr.E {
	if u == nil {
		return nil
	}
	if strings.EqualFold(method, "TRACE") || strings.EqualFold(method, "TRACK") {
		return apierr.New(http.StatusMethodNotAllowed, apierr.CodeMethodNotAllowed,
			method+" is not sent with the partner credentials the gateway adds: the partner would echo them back")
	}
	return nil
}

// Cert returns the client certificate to present, or nil. It is rebuilt
// only when the secrets were refreshed.
func (u *Upstream) Cert() *egress.ClientCert {
	if u == nil || u.cert == nil {
		return nil
	}
	snap := u.set.Current()
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.builtFrom != snap {
		// Load and every refresh checked that the pair parses.
		if cc, err := u.certFrom(snap.Values); err == nil {
			u.cached, u.builtFrom = cc, snap
		}
	}
	return u.cached
}
