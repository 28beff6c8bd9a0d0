package idempotency

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/outgate/outgate/internal/apierr"
)

// Policy is one upstream's idempotency settings (config: upstreams.NAME.idempotency).
type Policy struct {
	Header        string   // canonical header name, e.g. Idempotency-Key
	Methods       []string // upper case
	TTL           time.Duration
	Required      bool
	MaxStoredBody int64
}

// Headers outgate sets on answers it gives instead of the partner.
const (
	// ReplayHeader marks a stored answer replayed to a duplicate.
	ReplayHeader = "Outgate-Idempotent-Replay"
	// StatusHeader carries the partner's status on a refusal for a key
	// whose answer was too large to store.
	StatusHeader = "Outgate-Idempotent-Status"
)

// MaxKeyLen bounds a key: visible ASCII, 1 to 255 characters (UUIDs, ULIDs
// and payment references fit).
const MaxKeyLen = 255

// Error codes (apierr.E.Code) for idempotent requests; apierr holds them
// with the gateway's other codes.
const (
	CodeKeyRequired     = apierr.CodeIdempotencyKeyRequired
	CodeKeyInvalid      = apierr.CodeIdempotencyKeyInvalid
	CodeInFlight        = apierr.CodeIdempotencyInFlight
	CodeKeyReused       = apierr.CodeIdempotencyKeyReused
	CodeOutcomeUnknown  = apierr.CodeOutcomeUnknown
	CodeAnswerNotStored = apierr.CodeIdempotencyNotStored
	CodeStoreFull       = apierr.CodeIdempotencyStoreFull
	CodeUnavailable     = apierr.CodeIdempotencyUnavailable
)

// Outcomes, for the audit line's "idempotency" field and the metrics: what
// the key did for this request. Fixed words, never the key or the answer.
const (
	OutcomeSent          = "sent"            // first request: recorded, sent, answer stored
	OutcomeSentNotStored = "sent_not_stored" // first request: answer sent, too large to keep
	OutcomeReleased      = "released"        // first request never left the gateway: key free again
	OutcomeMarkedUnknown = "marked_unknown"  // first request: sent, no complete answer
	OutcomeReplay        = "replay"
	OutcomeInFlight      = "in_flight"
	OutcomeKeyReused     = "key_reused"
	OutcomeUnknown       = "outcome_unknown" // duplicate refused: the first one's outcome is unknown
	OutcomeNotStored     = "answer_not_stored"
	OutcomeRefused       = "refused" // no key where one is required, a bad key, a full or failing store
)

// inFlightRetry is the Retry-After of 409 idempotency_in_flight.
const inFlightRetry = time.Second

// settleTimeout bounds the store write that settles a claim; it runs after
// the client may have gone, so not on the request's context.
const settleTimeout = 10 * time.Second

// Call is one request's claim on a key, from Begin to End (or Abort).
type Call struct {
	store Store
	key   Key
	token string
	cap   *capture
}

// Begin applies the policy to a request before it is sent. It returns:
//   - nothing (all nil, outcome "") when the request is not covered (method not in the
//     list, or no key and none required): send it as usual;
//   - a Call when the key was claimed: send the request through
//     Call.Writer, then call End (or Abort if the handler panics);
//   - a stored answer to Replay;
//   - or the refusal to send, with the outcome for the audit line, and
//     for a failing store its error (for the operator, never the client).
//
// A covered request's body is read here (it is part of the fingerprint), so
// r.Body must already be bounded; it is replaced with the bytes read.
func Begin(ctx context.Context, s Store, p *Policy, client, upstream string, w http.ResponseWriter, r *http.Request, path string, lease time.Duration) (call *Call, replay *Answer, outcome string, e *apierr.E, storeErr error) {
	if !slices.Contains(p.Methods, r.Method) {
		return nil, nil, "", nil, nil
	}
	vals := r.Header.Values(p.Header)
	if len(vals) == 0 {
		if p.Required {
			return nil, nil, OutcomeRefused, apierr.New(http.StatusBadRequest, CodeKeyRequired, fmt.Sprintf("%s requests to this upstream need an %s header", r.Method, p.Header)), nil
		}
		return nil, nil, "", nil, nil
	}
	if len(vals) > 1 || !validKey(vals[0]) {
		return nil, nil, OutcomeRefused, apierr.New(http.StatusBadRequest, CodeKeyInvalid, fmt.Sprintf("%s must be one value of 1 to %d visible ASCII characters", p.Header, MaxKeyLen)), nil
	}
	body, e := readBody(r)
	if e != nil {
		return nil, nil, OutcomeRefused, e, nil
	}
	k := Key{Client: client, Upstream: upstream, Key: vals[0]}
	fp := NewFingerprint(r.Method, path, r.URL.RawQuery, body)
	token, prior, err := s.Claim(ctx, Claim{Key: k, Fingerprint: fp, TTL: p.TTL, Lease: lease})
	switch {
	case errors.Is(err, ErrFull):
		return nil, nil, OutcomeRefused, apierr.New(http.StatusTooManyRequests, CodeStoreFull, "this client holds as many live idempotency keys as the gateway keeps; retry later"), nil
	case err != nil:
		// Fail closed: without a record the request would go out unprotected.
		return nil, nil, OutcomeRefused, &apierr.E{Status: http.StatusServiceUnavailable, Code: CodeUnavailable, Message: "the idempotency store is unavailable; the request was not sent", RetryAfter: time.Second}, err
	}
	if prior != nil {
		if prior.Fingerprint != fp {
			return nil, nil, OutcomeKeyReused, apierr.New(http.StatusUnprocessableEntity, CodeKeyReused, "this "+p.Header+" was used for a different request (method, path, query or body); use a new key"), nil
		}
		switch prior.State {
		case Completed:
			return nil, prior.Answer, OutcomeReplay, nil, nil
		case InFlight:
			return nil, nil, OutcomeInFlight, &apierr.E{Status: http.StatusConflict, Code: CodeInFlight, Message: "a request with this key is in flight; retry later", RetryAfter: inFlightRetry}, nil
		case NotStored:
			if prior.Answer != nil {
				w.Header().Set(StatusHeader, strconv.Itoa(prior.Answer.Status))
			}
			return nil, nil, OutcomeNotStored, apierr.New(http.StatusConflict, CodeAnswerNotStored, "a request with this key was answered (the partner's status is in "+StatusHeader+"), but the answer was too large to keep (max_stored_body, or the client's share of the store); it is not sent again"), nil
		default:
			return nil, nil, OutcomeUnknown, apierr.New(http.StatusConflict, CodeOutcomeUnknown, "a request with this key was sent and no complete answer came back: check with the partner before anything else; outgate will not send it again"), nil
		}
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	return &Call{store: s, key: k, token: token, cap: &capture{max: p.MaxStoredBody}}, nil, "", nil, nil
}

func validKey(k string) bool {
	if k == "" || len(k) > MaxKeyLen {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

// readBody reads the (already bounded) request body whole.
func readBody(r *http.Request) ([]byte, *apierr.E) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	b, err := io.ReadAll(r.Body)
	if err == nil {
		return b, nil
	}
	var mbe *http.MaxBytesError
	var ne net.Error
	switch {
	case errors.As(err, &mbe):
		return nil, apierr.New(http.StatusRequestEntityTooLarge, apierr.CodeBodyTooLarge, "request body is larger than the gateway allows")
	case errors.As(err, &ne) && ne.Timeout():
		return nil, apierr.New(http.StatusRequestTimeout, apierr.CodeRequestTimeout, "the request body did not arrive in time")
	}
	return nil, apierr.New(http.StatusBadRequest, apierr.CodeBadRequest, "the request body could not be read")
}

// Writer wraps w to keep a copy of the answer while it streams to the
// client, up to the policy's max_stored_body.
func (c *Call) Writer(w http.ResponseWriter) http.ResponseWriter {
	c.cap.ResponseWriter = w
	return c.cap
}

// End settles the claim once the forwarding returned: sendErr is the
// gateway error sent instead of an answer (nil if the partner's answer was
// passed on), failed that the answer was not delivered whole. It returns the
// outcome and a store error to log, if any.
func (c *Call) End(ctx context.Context, sendErr *apierr.E, failed bool) (string, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	switch {
	case sendErr != nil && neverSent(sendErr):
		return OutcomeReleased, c.store.Release(ctx, c.key, c.token)
	case sendErr != nil, failed, c.cap.status == 0, c.cap.writeFailed:
		return OutcomeMarkedUnknown, c.store.MarkUnknown(ctx, c.key, c.token)
	case c.cap.over:
		return OutcomeSentNotStored, c.store.NotStored(ctx, c.key, c.token, c.cap.status)
	}
	a := Answer{Status: c.cap.status, Header: c.cap.header, Body: c.cap.body.Bytes()}
	return OutcomeSent, c.store.Complete(ctx, c.key, c.token, a)
}

// Release frees the key of a request that was never sent.
func (c *Call) Release(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	return c.store.Release(ctx, c.key, c.token)
}

// Abort settles the claim of a request whose handler is unwinding (a
// response broken off midway): the outcome is unknown.
func (c *Call) Abort(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	return c.store.MarkUnknown(ctx, c.key, c.token)
}

// neverSent reports whether a gateway error proves the request never left:
// the address policy refused the destination, or no connection was made.
func neverSent(e *apierr.E) bool {
	return e.Code == apierr.CodeDestinationBlocked || e.Code == apierr.CodeUpstreamUnreachable
}

// Replay writes a stored answer, marked with Outgate-Idempotent-Replay; the
// request id already set on w stays this request's. It returns the body
// bytes written.
func Replay(w http.ResponseWriter, a *Answer) int64 {
	h := w.Header()
	for k, v := range a.Header {
		if _, set := h[k]; !set {
			h[k] = v
		}
	}
	h.Set(ReplayHeader, "true")
	h.Set("Content-Length", strconv.Itoa(len(a.Body)))
	w.WriteHeader(a.Status)
	n, _ := w.Write(a.Body)
	return int64(n)
}

// capture tees the answer into a bounded buffer.
type capture struct {
	http.ResponseWriter
	max         int64
	status      int
	header      http.Header
	body        bytes.Buffer
	over        bool // the body passed max: not kept
	writeFailed bool // the client did not take it all
}

// notStored are response headers a replay must not copy: hop-by-hop ones
// are gone already; these describe this one response or are outgate's.
var notStored = []string{"Outgate-Request-Id", "Trailer", "Content-Length", "Transfer-Encoding"}

func (c *capture) WriteHeader(code int) {
	if c.status == 0 && code >= 200 {
		c.status = code
		c.header = c.ResponseWriter.Header().Clone()
		for _, k := range notStored {
			delete(c.header, k)
		}
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *capture) Write(p []byte) (int, error) {
	if c.status == 0 {
		c.WriteHeader(http.StatusOK)
	}
	n, err := c.ResponseWriter.Write(p)
	if err != nil {
		c.writeFailed = true
	}
	if !c.over {
		if int64(c.body.Len())+int64(n) > c.max {
			c.over = true
			c.body = bytes.Buffer{}
		} else {
			c.body.Write(p[:n])
		}
	}
	return n, err
}

// Hold passes a holding writer's verdict through (upstream.Holder: the Lambda
// relay's, which may send response_too_large instead of the answer), so
// the capture never hides that the answer was not delivered; End then
// marks the key unknown.
func (c *capture) Hold() (*apierr.E, string) {
	if h, ok := c.ResponseWriter.(interface{ Hold() (*apierr.E, string) }); ok {
		return h.Hold()
	}
	return nil, ""
}

// Unwrap lets http.ResponseController reach the real writer (Flush).
func (c *capture) Unwrap() http.ResponseWriter { return c.ResponseWriter }
