package core

import (
	"context"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/outgate/outgate/internal/apierr"
	"github.com/outgate/outgate/internal/audit"
	"github.com/outgate/outgate/internal/config"
	"github.com/outgate/outgate/internal/hostname"
	"github.com/outgate/outgate/internal/idempotency"
	"github.com/outgate/outgate/internal/inject"
	"github.com/outgate/outgate/internal/upstream"
)

// idempotencyLeaseExtra is how long past the response-header timeout a
// claim may stay in flight (its lease): room for the answer's body to
// stream. Duplicates are told outcome_unknown past it, and an answer still
// streaming then is cut off and its key marked unknown: the record expires
// a ttl after the claim, and an exchange that outlived it (a partner that
// drips its answer a byte per upstream_idle_timeout) would leave the key
// free while its request is still in flight. A ttl is at least an hour past
// the response-header timeout, so the record outlives the lease by 55
// minutes. A variable for tests only.
var idempotencyLeaseExtra = 5 * time.Minute

// Idempotent is the upstream whose idempotency applies to a request.
type Idempotent struct {
	Upstream string
	Policy   *idempotency.Policy
}

// Origin is scheme://host:port, the key under which absolute-form proxy
// requests find the upstreams of their destination.
func Origin(scheme, host string, port uint16) string {
	return scheme + "://" + hostname.JoinTarget(host, port)
}

// proxyRoute is an upstream as an absolute-form proxy request finds it:
// by its origin, then by its escaped base path (config drops a trailing
// '/'), which must hold the request's path.
type proxyRoute struct {
	name, base string
}

// proxyRoutes maps the origins of the upstreams whose requests get more
// than forwarding (idempotency, partner credentials) to them, sorted by
// name. Upstreams without either are left out, so a proxy request in a
// config that uses neither costs a length check.
func proxyRoutes(cfg *config.Config) map[string][]proxyRoute {
	names := make([]string, 0, len(cfg.Upstreams))
	for n, u := range cfg.Upstreams {
		if u.Parsed != nil && (u.Idempotency != nil || !u.Partner.Empty()) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	out := map[string][]proxyRoute{}
	for _, n := range names {
		u := cfg.Upstreams[n]
		def := uint16(443)
		if u.Parsed.Scheme == "http" {
			def = 80
		}
		host, port, err := hostname.SplitTarget(u.Parsed.Host, def)
		if err != nil {
			continue
		}
		o := Origin(u.Parsed.Scheme, host, port)
		out[o] = append(out[o], proxyRoute{name: n, base: u.Parsed.EscapedPath()})
	}
	return out
}

// ProxyUpstream returns the upstream, among those at origin that want
// accepts, whose base path holds escapedPath: the longest such base path,
// as the relay would have filed the request under it. Both the partner
// credentials a proxy request gets and the key space of its idempotency
// key are found this way, so they always name the same upstream.
func (c *Core) ProxyUpstream(origin, escapedPath string, want func(name string) bool) (string, bool) {
	best, bestLen := "", -1
	for _, r := range c.proxyRoutes[origin] {
		if (escapedPath == r.base || strings.HasPrefix(escapedPath, r.base+"/")) && len(r.base) > bestLen && want(r.name) {
			best, bestLen = r.name, len(r.base)
		}
	}
	return best, bestLen >= 0
}

// AtOrigin returns the first upstream by name at origin that want
// accepts, whatever its base path: a proxy request to that origin is one
// the relay's path rule must hold (no dot segment in any spelling), or it
// could aim that upstream's credentials or key space at another path.
func (c *Core) AtOrigin(origin string, want func(name string) bool) (string, bool) {
	for _, r := range c.proxyRoutes[origin] {
		if want(r.name) {
			return r.name, true
		}
	}
	return "", false
}

// HasProxyRoutes reports whether any upstream needs ProxyUpstream.
func (c *Core) HasProxyRoutes() bool { return len(c.proxyRoutes) > 0 }

// IdempotentFor returns the idempotency that covers a proxy request to
// origin with this escaped path, if any: that of the upstream ProxyUpstream
// finds among those with idempotency, else the first of the origin's by
// name (a keyed request outside every base path is still never sent twice).
func (c *Core) IdempotentFor(origin, escapedPath string) (Idempotent, bool) {
	withIdem := func(name string) bool { return c.Config.Upstreams[name].Idempotency != nil }
	name, ok := c.ProxyUpstream(origin, escapedPath, withIdem)
	if !ok {
		name, ok = c.AtOrigin(origin, withIdem)
	}
	if !ok {
		return Idempotent{}, false
	}
	return Idempotent{Upstream: name, Policy: c.Config.Upstreams[name].Idempotency.Policy}, true
}

// SendOnce applies an upstream's idempotency to a request: it claims the
// key, sends the request (or replays, or refuses), and settles the claim
// from how the forwarding ended. path is the upstream path, so a key used
// through the relay and the proxy to one partner names one request.
// r's body must be bounded already; the upstream request (target, host,
// keep: as upstream.Request takes them) is built after the claim, since the
// body is read for the fingerprint first. It takes plain values, not a
// closure, so the relay's path without idempotency allocates nothing more.
// creds are the partner credentials the request carries (nil: none), put on
// it as on a request without idempotency.
func (c *Core) SendOnce(w http.ResponseWriter, r *http.Request, cl *Client, idem Idempotent, path string, header time.Duration,
	target, host string, keep []string, creds *inject.Upstream, rec *audit.Record) (e *apierr.E) {
	t := c.Timeouts(header)
	lease := t.Header + idempotencyLeaseExtra
	claimed := time.Now() // no later than the store's own claim time
	call, replay, outcome, e, storeErr := idempotency.Begin(r.Context(), c.Idempotency, idem.Policy, cl.Name, idem.Upstream, w, r, path, lease)
	rec.Idempotency = outcome
	if storeErr != nil {
		rec.Decision, rec.Detail = audit.Error, "idempotency store: "+storeErr.Error()
	}
	if e != nil {
		return e
	}
	if replay != nil {
		rec.Status = replay.Status
		rec.BytesOut = idempotency.Replay(w, replay)
		return nil
	}
	ctx := r.Context()
	if call != nil {
		// The exchange ends with the lease (see idempotencyLeaseExtra).
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, claimed.Add(lease))
		defer cancel()
	}
	out, err := upstream.Request(ctx, r, target, host, keep)
	if err != nil {
		if call != nil {
			call.Release(r.Context())
			rec.Idempotency = idempotency.OutcomeReleased
		}
		return apierr.New(http.StatusBadRequest, apierr.CodeBadRequest, "cannot build the upstream request")
	}
	creds.Apply(out.Header)
	eg := cl.Egress.WithCert(creds.Cert())
	if call == nil {
		return upstream.Do(w, out, eg, t, rec)
	}
	defer func() {
		if p := recover(); p != nil {
			// A response broken off midway (http.ErrAbortHandler).
			rec.Idempotency = idempotency.OutcomeMarkedUnknown
			if err := call.Abort(context.WithoutCancel(r.Context())); err != nil {
				c.Log.Error("idempotency store: cannot mark a key unknown", "request_id", rec.RequestID, "error", err.Error())
			}
			panic(p)
		}
	}()
	e = upstream.Do(call.Writer(w), out, eg, t, rec)
	outcome, err = call.End(r.Context(), e, rec.Decision == audit.Error)
	rec.Idempotency = outcome
	if err != nil {
		// The record stays in flight, then reads as unknown: never sent twice.
		c.Log.Error("idempotency store: cannot settle a key", "request_id", rec.RequestID, "outcome", outcome, "error", err.Error())
	}
	return e
}
