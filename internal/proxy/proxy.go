// Package proxy serves the forward-proxy mode on proxy_listen: absolute-form
// HTTP requests (GET http://host/path) and CONNECT tunnels, authenticated with
// Proxy-Authorization: Basic (client name and key), so that
// HTTPS_PROXY=http://name:key@gateway:3128 works from any HTTP client.
package proxy

import (
	"encoding/base64"
	"net/http"
	"strings"
	"time"

	"github.com/outgate/outgate/internal/apierr"
	"github.com/outgate/outgate/internal/audit"
	"github.com/outgate/outgate/internal/core"
	"github.com/outgate/outgate/internal/hop"
	"github.com/outgate/outgate/internal/hostname"
	"github.com/outgate/outgate/internal/limits"
	"github.com/outgate/outgate/internal/relay"
	"github.com/outgate/outgate/internal/upstream"
)

// Handler serves proxy requests with whatever Core is current. Tunnels
// tracks open CONNECT tunnels so shutdown can wait for them.
type Handler struct {
	Core    func() *core.Core
	Tunnels *Tunnels
	// Gate, if set, is asked again once a CONNECT's destination is
	// dialled and its tunnel tracked (server.Options.Gate, which the
	// server also asks before the handler runs): a gate that closed
	// during the dial refuses the tunnel (503 egress_unverified).
	Gate func() error
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c := h.Core()
	rec := &audit.Record{
		Start:     time.Now(),
		RequestID: audit.NewRequestID(),
		TraceID:   audit.TraceID(r.Header.Get("Traceparent")),
		Mode:      "proxy",
		Method:    r.Method,
		Path:      r.URL.EscapedPath(),
		Decision:  audit.Allow,
	}
	w.Header().Set(hop.RequestIDHeader, rec.RequestID)
	defer c.Finish(rec)
	defer core.EndResponse(w, r, rec)

	var e *apierr.E
	if r.Method == http.MethodConnect {
		rec.Mode = "connect"
		e = h.connect(c, w, r, rec)
	} else {
		e = h.forward(c, w, r, rec)
	}
	if e == nil {
		return
	}
	if rec.Decision == audit.Allow {
		rec.Decision = audit.Deny
	}
	rec.Status, rec.Reason = e.Status, e.Code
	if e.Status == http.StatusProxyAuthRequired {
		w.Header().Set("Proxy-Authenticate", `Basic realm="outgate"`)
		// A connection without valid credentials gets one answer, not a
		// keep-alive slot to wait in.
		w.Header().Set("Connection", "close")
	}
	rec.BytesOut = apierr.Write(w, rec.RequestID, e)
}

// authenticate reads Proxy-Authorization: Basic base64(name:key).
func authenticate(c *core.Core, r *http.Request, rec *audit.Record) (*core.Client, *apierr.E) {
	name, key, ok := ParseBasic(r.Header.Get("Proxy-Authorization"))
	if !ok {
		return nil, apierr.New(http.StatusProxyAuthRequired, apierr.CodeProxyAuth, "proxy credentials required: use http://CLIENT:KEY@gateway:port as the proxy URL")
	}
	cl := c.ByBasic(name, key)
	if cl == nil {
		return nil, apierr.New(http.StatusProxyAuthRequired, apierr.CodeProxyAuth, "unknown client name or key")
	}
	rec.Client = cl.Name
	limits.Authenticated(r.Context())
	return cl, nil
}

// ParseBasic decodes a Basic credential. Names are matched exactly; the
// scheme is case-insensitive as RFC 9110 says.
func ParseBasic(h string) (name, key string, ok bool) {
	scheme, cred, found := strings.Cut(strings.TrimSpace(h), " ")
	if !found || !strings.EqualFold(scheme, "Basic") || len(cred) > 4096 {
		return "", "", false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(cred))
	if err != nil {
		return "", "", false
	}
	name, key, ok = strings.Cut(string(raw), ":")
	if !ok || name == "" || key == "" {
		return "", "", false
	}
	return name, key, true
}

// forward handles absolute-form requests: GET http://host/path HTTP/1.1.
func (h *Handler) forward(c *core.Core, w http.ResponseWriter, r *http.Request, rec *audit.Record) *apierr.E {
	cl, e := authenticate(c, r, rec)
	if e != nil {
		return e
	}
	u := r.URL
	if !u.IsAbs() || u.Host == "" {
		return apierr.New(http.StatusBadRequest, apierr.CodeBadRequest, "this is a forward proxy: send absolute-form requests (GET http://host/path) or CONNECT host:port")
	}
	scheme := strings.ToLower(u.Scheme)
	defPort := map[string]uint16{"http": 80, "https": 443}[scheme]
	if defPort == 0 {
		return apierr.New(http.StatusBadRequest, apierr.CodeBadRequest, "only http and https URLs can be proxied")
	}
	if u.User != nil {
		return apierr.New(http.StatusBadRequest, apierr.CodeBadRequest, "URLs with user information are not forwarded")
	}
	host, port, err := hostname.SplitTarget(u.Host, defPort)
	if err != nil {
		return apierr.New(http.StatusBadRequest, apierr.CodeBadRequest, "bad destination host: "+err.Error())
	}
	rec.Target = hostname.JoinTarget(host, port)
	rec.Path = u.EscapedPath()
	if !cl.MayReach(host, port) {
		return apierr.New(http.StatusForbidden, apierr.CodeForbidden, "this client may not reach "+rec.Target)
	}
	// The proxy has no per-destination settings to opt in with.
	if e := upstream.RefuseBody(r, nil); e != nil {
		return e
	}
	// The upstreams whose requests get more than forwarding (credentials,
	// idempotency) are found by origin; most configs have none.
	var origin string
	if c.HasProxyRoutes() {
		origin = core.Origin(scheme, host, port)
	}
	creds, e := partnerCreds(c, cl, origin, rec.Path)
	if e != nil {
		return e
	}
	if e := creds.RefuseMethod(r.Method); e != nil {
		return e
	}
	release, e := c.AdmitRequest(w, r, cl)
	if e != nil {
		return e
	}
	defer release()

	// Rebuild the URL from the checked parts; the Host header the client
	// sent is ignored (RFC 9112 3.2.2) and replaced by the checked host.
	target := *u
	target.Scheme = scheme
	target.Host = rec.Target
	if port == defPort {
		target.Host = bracket(host)
	}
	target.Fragment = ""
	// An upstream's idempotency covers proxy requests to its origin
	// (CONNECT tunnels are TLS end to end: nothing to see there).
	if idem, ok := c.IdempotentFor(origin, target.EscapedPath()); ok {
		// The base path picks the key space: a path that climbs out of
		// one (a dot segment in any spelling) would file the request under
		// one upstream and reach another's path.
		if _, _, err := relay.SplitPath("/_" + target.EscapedPath()); err != nil {
			return apierr.New(http.StatusBadRequest, apierr.CodeBadRequest, "a request to upstream "+idem.Upstream+"'s partner: "+err.Error())
		}
		rec.Route = idem.Upstream
		return c.SendOnce(w, r, cl, idem, target.EscapedPath(), 0, target.String(), target.Host, nil, creds, rec)
	}
	out, err := upstream.Request(r.Context(), r, target.String(), target.Host, nil)
	if err != nil {
		return apierr.New(http.StatusBadRequest, apierr.CodeBadRequest, "cannot build the upstream request")
	}
	creds.Apply(out.Header)
	return upstream.Do(w, out, cl.Egress.WithCert(creds.Cert()), c.Timeouts(0), rec)
}

func bracket(host string) string {
	if strings.Contains(host, ":") {
		return "[" + host + "]"
	}
	return host
}
