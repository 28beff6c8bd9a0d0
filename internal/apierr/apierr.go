// Package apierr writes the errors the gateway itself makes, in one JSON shape
// with an Outgate-Error header, so clients can tell them from a partner's own
// errors (which pass through untouched).
package apierr

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// E is a gateway-made error. Message is shown to the client, so it never
// carries dial errors, resolved addresses or other internals.
type E struct {
	Status     int
	Code       string
	Message    string
	RetryAfter time.Duration // sets Retry-After when > 0
}

func (e *E) Error() string { return e.Code + ": " + e.Message }

// The codes, stable for clients to match on.
const (
	CodeBadRequest          = "bad_request"
	CodeUnauthorized        = "unauthorized"
	CodeProxyAuth           = "proxy_auth_required"
	CodeForbidden           = "forbidden"
	CodeDestinationBlocked  = "destination_blocked"
	CodeNotFound            = "not_found"
	CodeUnknownUpstream     = "unknown_upstream"
	CodeMethodNotAllowed    = "method_not_allowed"
	CodeBodyTooLarge        = "body_too_large"
	CodeBodyNotAllowed      = "body_not_allowed"
	CodeRateLimited         = "rate_limited"
	CodeConcurrencyLimited  = "concurrency_limited"
	CodeUpstreamUnreachable = "upstream_unreachable"
	CodeBadGateway          = "bad_gateway"
	CodeUpstreamTimeout     = "upstream_timeout"
	CodeShuttingDown        = "shutting_down"
	CodeResponseTooLarge    = "response_too_large"
	CodeRequestTimeout      = "request_timeout"
	// 503 with Retry-After: instance mode has not yet proven that its
	// calls leave from one of the deployment's IPs; nothing was sent.
	CodeEgressUnverified = "egress_unverified"
	// A CONNECT tunnel's first bytes, checked after its 200: the tunnel is
	// closed (nothing reaches the partner) and the audit line records the
	// code. sni_not_allowed: the TLS ClientHello names a server this client
	// may not reach (or none for a named destination, or hides it with ECH).
	// tunnel_not_tls: the first bytes are not a TLS ClientHello (or none came
	// within read_header_timeout) and the destination is not in raw_tunnels.
	CodeSNINotAllowed = "sni_not_allowed"
	CodeTunnelNotTLS  = "tunnel_not_tls"
	// Idempotency keys (docs/safe-retries.md): the request was not sent.
	CodeIdempotencyKeyRequired = "idempotency_key_required"      // 400
	CodeIdempotencyKeyInvalid  = "idempotency_key_invalid"       // 400
	CodeIdempotencyInFlight    = "idempotency_in_flight"         // 409, Retry-After
	CodeIdempotencyKeyReused   = "idempotency_key_reused"        // 422
	CodeOutcomeUnknown         = "outcome_unknown"               // 409
	CodeIdempotencyNotStored   = "idempotency_answer_not_stored" // 409, Outgate-Idempotent-Status
	CodeIdempotencyStoreFull   = "idempotency_store_full"        // 429
	CodeIdempotencyUnavailable = "idempotency_unavailable"       // 503, Retry-After
)

// New is a shorthand for &E{...}.
func New(status int, code, msg string) *E { return &E{Status: status, Code: code, Message: msg} }

type body struct {
	Error struct {
		Code      string `json:"code"`
		Message   string `json:"message"`
		RequestID string `json:"request_id,omitempty"`
	} `json:"error"`
}

// Write sends e as the response and returns the body bytes written, for
// the audit line. Callers add any other headers first.
func Write(w http.ResponseWriter, requestID string, e *E) int64 {
	var b body
	b.Error.Code, b.Error.Message, b.Error.RequestID = e.Code, e.Message, requestID
	data, _ := json.Marshal(b)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Outgate-Error", e.Code)
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(data)+1))
	if e.RetryAfter > 0 {
		secs := int((e.RetryAfter + time.Second - 1) / time.Second)
		h.Set("Retry-After", strconv.Itoa(secs))
	}
	w.WriteHeader(e.Status)
	n, _ := w.Write(append(data, '\n'))
	return int64(n)
}
