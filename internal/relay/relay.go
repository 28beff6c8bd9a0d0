// Package relay serves the relay mode: ANY /{upstream}/{rest}?{query} with an
// Outgate-Key header goes to the upstream's URL + /{rest}?{query}, for callers
// that cannot set a proxy. It also serves the /_outgate/* endpoints.
package relay

import (
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/outgate/outgate/internal/apierr"
	"github.com/outgate/outgate/internal/audit"
	"github.com/outgate/outgate/internal/core"
	"github.com/outgate/outgate/internal/hop"
	"github.com/outgate/outgate/internal/limits"
	"github.com/outgate/outgate/internal/upstream"
)

// Handler serves relay requests with whatever Core is current.
type Handler struct {
	Core func() *core.Core
}

// EndpointPrefix is reserved for outgate's own endpoints; no upstream can
// be named "_outgate" (upstream names start with a letter or digit).
const EndpointPrefix = "/_outgate/"

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c := h.Core()
	rec := &audit.Record{
		Start:     time.Now(),
		RequestID: audit.NewRequestID(),
		TraceID:   audit.TraceID(r.Header.Get("Traceparent")),
		Mode:      "relay",
		Method:    r.Method,
		Path:      r.URL.EscapedPath(),
		Decision:  audit.Allow,
	}
	w.Header().Set(hop.RequestIDHeader, rec.RequestID)
	defer c.Finish(rec)
	defer core.EndResponse(w, r, rec)
	if strings.HasPrefix(rec.Path, EndpointPrefix) {
		rec.Mode = "endpoint"
		h.endpoint(c, w, r, rec)
		return
	}
	if e := h.relay(c, w, r, rec); e != nil {
		fail(w, rec, e)
	}
}

// fail records and sends a gateway-made error.
func fail(w http.ResponseWriter, rec *audit.Record, e *apierr.E) {
	if rec.Decision == audit.Allow {
		rec.Decision = audit.Deny
	}
	rec.Status, rec.Reason = e.Status, e.Code
	if e.Status == http.StatusUnauthorized {
		// A connection without a valid key gets one answer, not a
		// keep-alive slot to wait in.
		w.Header().Set("Connection", "close")
	}
	rec.BytesOut = apierr.Write(w, rec.RequestID, e)
}

// authenticate checks the Outgate-Key header. Authentication comes before
// anything else, so a caller without a key learns nothing, not even which
// upstream names exist.
func authenticate(c *core.Core, r *http.Request, rec *audit.Record) (*core.Client, *apierr.E) {
	key := r.Header.Get(hop.KeyHeader)
	if key == "" {
		return nil, apierr.New(http.StatusUnauthorized, apierr.CodeUnauthorized, "missing Outgate-Key header")
	}
	cl := c.ByKey(key)
	if cl == nil {
		return nil, apierr.New(http.StatusUnauthorized, apierr.CodeUnauthorized, "unknown key")
	}
	rec.Client = cl.Name
	limits.Authenticated(r.Context())
	return cl, nil
}

func (h *Handler) relay(c *core.Core, w http.ResponseWriter, r *http.Request, rec *audit.Record) *apierr.E {
	cl, e := authenticate(c, r, rec)
	if e != nil {
		return e
	}
	name, rest, err := SplitPath(rec.Path)
	if err != nil {
		return apierr.New(http.StatusBadRequest, apierr.CodeBadRequest, err.Error())
	}
	rec.Route = name
	up, ok := c.Config.Upstreams[name]
	if !ok {
		return apierr.New(http.StatusNotFound, apierr.CodeUnknownUpstream, "no upstream named "+quote(name))
	}
	if !cl.MayUseUpstream(name) {
		return apierr.New(http.StatusForbidden, apierr.CodeForbidden, "this client may not use upstream "+quote(name))
	}
	if e := upstream.RefuseBody(r, up.AllowsBodyOn); e != nil {
		return e
	}
	// The partner's credentials, held by the gateway.
	creds := c.Creds.For(name)
	if e := creds.RefuseMethod(r.Method); e != nil {
		return e
	}
	release, e := c.AdmitRequest(w, r, cl)
	if e != nil {
		return e
	}
	defer release()

	target := *up.Parsed
	target.RawPath = up.Parsed.EscapedPath() + rest
	target.Path, _ = url.PathUnescape(target.RawPath) // SplitPath checked the encoding
	target.RawQuery = r.URL.RawQuery
	if up.Idempotency != nil {
		idem := core.Idempotent{Upstream: name, Policy: up.Idempotency.Policy}
		return c.SendOnce(w, r, cl, idem, target.RawPath, up.HeaderTimeout, target.String(), up.Parsed.Host, up.ForwardHeaders, creds, rec)
	}
	out, err := upstream.Request(r.Context(), r, target.String(), up.Parsed.Host, up.ForwardHeaders)
	if err != nil {
		return apierr.New(http.StatusBadRequest, apierr.CodeBadRequest, "cannot build the upstream request")
	}
	// The client's own copies of the injected headers go first.
	creds.Apply(out.Header)
	return upstream.Do(w, out, cl.Egress.WithCert(creds.Cert()), c.Timeouts(up.HeaderTimeout), rec)
}

func quote(s string) string { return "\"" + s + "\"" }
