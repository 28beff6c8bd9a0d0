package server

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"time"

	"github.com/outgate/outgate/internal/apierr"
	"github.com/outgate/outgate/internal/audit"
	"github.com/outgate/outgate/internal/hop"
	"github.com/outgate/outgate/internal/relay"
)

// gateRetryAfter is what a refused client is told to wait: the instance
// re-checks its egress about once a minute, and proves it within seconds
// of claiming its IP at boot.
const gateRetryAfter = 30 * time.Second

// gated puts Options.Gate in front of a listener's handler: while the gate
// is closed every request, whatever it is (CONNECT, absolute-form,
// /_outgate/ endpoints, unauthenticated), gets 503 egress_unverified and an
// audit line, and the handler never runs, so nothing is dialled.
func (g *gateway) gated(mode string, h http.Handler) http.Handler {
	if g.gate == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := g.gate()
		if err == nil {
			h.ServeHTTP(w, r)
			return
		}
		c := g.core.Load()
		rec := &audit.Record{
			Start:     time.Now(),
			RequestID: audit.NewRequestID(),
			TraceID:   audit.TraceID(r.Header.Get("Traceparent")),
			Mode:      mode,
			Method:    r.Method,
			Path:      r.URL.EscapedPath(),
			Decision:  audit.Deny,
			Status:    http.StatusServiceUnavailable,
			Reason:    apierr.CodeEgressUnverified,
			Detail:    err.Error(),
		}
		if r.Method == http.MethodConnect {
			rec.Path = r.Host
		}
		defer c.Finish(rec)
		w.Header().Set(hop.RequestIDHeader, rec.RequestID)
		rec.BytesOut = apierr.Write(w, rec.RequestID, &apierr.E{Status: http.StatusServiceUnavailable, Code: apierr.CodeEgressUnverified,
			Message: "the gateway has not yet proven that its calls leave from the deployment's IPs; retry shortly", RetryAfter: gateRetryAfter})
	})
}

// egressIP is Running.EgressIP: the relay's own egress check, run with the
// current Core (so with the config as last reloaded).
func (g *gateway) egressIP(ctx context.Context) (netip.Addr, error) {
	c := g.core.Load()
	rec := &audit.Record{}
	ip, e := relay.EgressIP(ctx, c, rec)
	if e != nil {
		if rec.Detail != "" {
			return netip.Addr{}, errors.New(e.Message + ": " + rec.Detail)
		}
		return netip.Addr{}, e
	}
	return ip, nil
}
