// Package upstream sends one request to an upstream (a partner) through the egress transport and
// streams the answer back: status, headers without hop-by-hop ones, body as it
// arrives, trailers. It never follows redirects (http.Transport does not) and
// maps every failure to outgate's error codes.
package upstream

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/outgate/outgate/internal/apierr"
	"github.com/outgate/outgate/internal/audit"
	"github.com/outgate/outgate/internal/hop"
	"github.com/outgate/outgate/internal/netguard"
)

var (
	errHeaderTimeout = errors.New("upstream response header timeout")
	errBodyIdle      = errors.New("upstream response body idle timeout")
)

// Timeouts bound the wait on an upstream.
type Timeouts struct {
	Header   time.Duration // until the response headers arrive
	BodyIdle time.Duration // between two reads of the response body (0: none)
}

// Request builds the outgoing request from the client's: same method, body
// and end-to-end headers, aimed at target. The client's address is not added
// anywhere, and what the client wrote about itself or the hops before
// outgate (X-Forwarded-*, Forwarded, Via, X-Real-Ip...: hop.ClientHeader) is
// dropped too, except the names in keep (the upstream's forward_headers):
// partners see only the gateway.
func Request(ctx context.Context, in *http.Request, target string, host string, keep []string) (*http.Request, error) {
	out, err := http.NewRequestWithContext(ctx, in.Method, target, nil)
	if err != nil {
		return nil, err
	}
	out.Header = in.Header.Clone()
	hop.StripRequest(out.Header, keep)
	if out.Header == nil {
		out.Header = http.Header{}
	}
	// An empty User-Agent stops Go from adding its own.
	if _, ok := out.Header["User-Agent"]; !ok {
		out.Header["User-Agent"] = []string{""}
	}
	out.Host = host
	noReplay(out)
	out.ContentLength = in.ContentLength
	if in.ContentLength != 0 && in.Body != nil && in.Body != http.NoBody {
		out.Body = in.Body
	} else {
		out.ContentLength = 0
	}
	return out, nil
}

// noReplay keeps Go's transport from ever sending a non-idempotent request
// twice. The transport re-sends a request on a reused connection that broke
// before the answer if the request is "replayable", and it counts a request
// carrying Idempotency-Key (or X-Idempotency-Key) as replayable whatever its
// method. A payment partner may have processed the first copy, so outgate
// stores those headers under their lower-case names, which the transport's
// check does not see; header names are case-insensitive, so the partner
// gets the same header and value.
func noReplay(r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return
	}
	for _, k := range []string{"Idempotency-Key", "X-Idempotency-Key"} {
		if v, ok := r.Header[k]; ok {
			delete(r.Header, k)
			r.Header[strings.ToLower(k)] = v
		}
	}
}

// Do sends out and copies the response to w. It fills the record's status and
// byte counts, and returns the gateway error to send if no response was
// started (nil after a response, even one broken off midway: see rec.Reason).
func Do(w http.ResponseWriter, out *http.Request, rt http.RoundTripper, t Timeouts, rec *audit.Record) *apierr.E {
	ctx, cancel := context.WithCancelCause(out.Context())
	defer cancel(nil)
	timer := time.AfterFunc(t.Header, func() { cancel(errHeaderTimeout) })
	var body *countingReader
	if out.Body != nil {
		body = &countingReader{r: out.Body}
		out.Body = body
	}
	started := time.Now()
	defer func() { rec.Upstream = time.Since(started) }()
	resp, err := rt.RoundTrip(out.WithContext(ctx))
	timer.Stop()
	if body != nil {
		rec.BytesIn = body.count()
	}
	if err != nil {
		if body != nil {
			if e := body.clientError(rec); e != nil {
				return e
			}
		}
		return classify(ctx, err, rec)
	}
	defer resp.Body.Close()

	// Strip before copying: a partner's Connection header must not name
	// (and so delete) the gateway's own Outgate-Request-Id.
	hop.StripResponse(resp.Header)
	hop.StripResponse(resp.Trailer)
	h := w.Header()
	for k, v := range resp.Header {
		h[k] = v
	}
	announceTrailers(h, resp.Trailer)
	rec.Status = resp.StatusCode
	w.WriteHeader(resp.StatusCode)

	// A partner that stops sending mid-body must not hold the client (and a
	// concurrency slot) forever: each read must come within BodyIdle.
	var src io.Reader = resp.Body
	if t.BodyIdle > 0 {
		idle := time.AfterFunc(t.BodyIdle, func() { cancel(errBodyIdle) })
		defer idle.Stop()
		src = &idleReader{r: resp.Body, t: idle, d: t.BodyIdle}
	}
	n, err := copyStreaming(w, src, resp.ContentLength == -1 || isStream(resp))
	rec.BytesOut = n
	if body != nil {
		rec.BytesIn = body.count()
	}
	if hw, ok := w.(Holder); ok && err == nil {
		if e, detail := hw.Hold(); e != nil {
			// The holder sends e instead of the partner's answer: the
			// record says so, so the audit line and metrics never report
			// a delivered answer that was not.
			rec.Status, rec.Decision, rec.Reason, rec.Detail = e.Status, audit.Error, e.Code, detail
			return nil
		}
	}
	if err != nil {
		rec.Decision, rec.Reason = audit.Error, "upstream_body_broken"
		rec.Detail = err.Error()
		if errors.Is(context.Cause(ctx), errBodyIdle) {
			rec.Reason, rec.Detail = "upstream_body_idle", errBodyIdle.Error()
		}
		// The status is already sent; abort the connection so the client
		// sees a broken response, never a silently truncated one.
		panic(http.ErrAbortHandler)
	}
	hop.StripResponse(resp.Trailer) // again: undeclared trailers arrive with the body's end
	for k, v := range resp.Trailer {
		h[http.TrailerPrefix+k] = v
	}
	return nil
}

func isStream(resp *http.Response) bool {
	return strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream")
}

func announceTrailers(h http.Header, tr http.Header) {
	if len(tr) == 0 {
		return
	}
	names := make([]string, 0, len(tr))
	for k := range tr {
		names = append(names, k)
	}
	h.Set("Trailer", strings.Join(names, ", "))
}

// classify maps a RoundTrip error to the gateway error a client gets. The
// detail, which may hold addresses, goes to the audit record only.
func classify(ctx context.Context, err error, rec *audit.Record) *apierr.E {
	rec.Detail = err.Error()
	var be *netguard.BlockedError
	var mbe *http.MaxBytesError
	var ne net.Error
	switch {
	case errors.As(err, &be):
		rec.Decision = audit.Deny
		rec.Detail = string(be.Reason)
		return apierr.New(http.StatusForbidden, apierr.CodeDestinationBlocked, "the destination address is not allowed")
	case clientGone(ctx):
		rec.Decision = audit.Error
		return &apierr.E{Status: StatusClientClosed, Code: "client_closed", Message: "the client went away"}
	case errors.As(err, &mbe):
		rec.Decision = audit.Deny
		return apierr.New(http.StatusRequestEntityTooLarge, apierr.CodeBodyTooLarge, "request body is larger than the gateway allows")
	case errors.Is(context.Cause(ctx), errHeaderTimeout):
		rec.Decision = audit.Error
		return apierr.New(http.StatusGatewayTimeout, apierr.CodeUpstreamTimeout, "the upstream did not answer in time")
	case errors.As(err, &ne) && ne.Timeout(), errors.Is(err, context.DeadlineExceeded):
		rec.Decision = audit.Error
		return apierr.New(http.StatusGatewayTimeout, apierr.CodeUpstreamTimeout, "the upstream did not answer in time")
	case isDial(err):
		rec.Decision = audit.Error
		return apierr.New(http.StatusBadGateway, apierr.CodeUpstreamUnreachable, "could not connect to the upstream")
	default:
		rec.Decision = audit.Error
		return apierr.New(http.StatusBadGateway, apierr.CodeBadGateway, "the upstream connection failed")
	}
}

// Holder is a ResponseWriter that keeps the whole answer before passing it
// on, within a size limit (the Lambda relay, bound by Lambda's payload
// limit). Its Write fails once the answer cannot fit, so no more of the
// partner's body is read; Hold, called when the copy has ended, says whether
// it will deliver the answer or send the returned error (with a detail for
// the audit line) in its place.
type Holder interface {
	Hold() (refused *apierr.E, detail string)
}

// StatusClientClosed is logged when the client left before the response
// (nginx's 499); no client ever receives it.
const StatusClientClosed = 499

func clientGone(ctx context.Context) bool {
	return errors.Is(context.Cause(ctx), context.Canceled)
}

func isDial(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// copyStreaming copies src to w, flushing after every read when flush is set
// (unknown length or event streams), so a partner's stream is never held
// back. It returns the bytes written and the first read error other than EOF.
func copyStreaming(w http.ResponseWriter, src io.Reader, flush bool) (int64, error) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	rc := http.NewResponseController(w)
	var total int64
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			wn, werr := w.Write(buf[:n])
			total += int64(wn)
			if werr != nil {
				// The client went away; nothing more to do.
				return total, nil
			}
			if flush {
				rc.Flush()
			}
		}
		if rerr == io.EOF {
			return total, nil
		}
		if rerr != nil {
			return total, rerr
		}
	}
}

// idleReader pushes the idle timer back after every read.
type idleReader struct {
	r io.Reader
	t *time.Timer
	d time.Duration
}

func (i *idleReader) Read(p []byte) (int, error) {
	n, err := i.r.Read(p)
	i.t.Reset(i.d)
	return n, err
}

type countingReader struct {
	r   io.ReadCloser
	mu  sync.Mutex
	n   int64
	err error // the first error reading the client's body, other than EOF
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.mu.Lock()
	c.n += int64(n)
	if err != nil && err != io.EOF && c.err == nil {
		c.err = err
	}
	c.mu.Unlock()
	return n, err
}

// clientError is the gateway error for a request that failed because its
// own body could not be read (too large, too slow, cut off), or nil.
func (c *countingReader) clientError(rec *audit.Record) *apierr.E {
	c.mu.Lock()
	err := c.err
	c.mu.Unlock()
	if err == nil {
		return nil
	}
	rec.Decision, rec.Detail = audit.Deny, err.Error()
	var mbe *http.MaxBytesError
	var ne net.Error
	switch {
	case errors.As(err, &mbe):
		return apierr.New(http.StatusRequestEntityTooLarge, apierr.CodeBodyTooLarge, "request body is larger than the gateway allows")
	case errors.As(err, &ne) && ne.Timeout():
		return apierr.New(http.StatusRequestTimeout, apierr.CodeRequestTimeout, "the request body did not arrive in time")
	}
	return apierr.New(http.StatusBadRequest, apierr.CodeBadRequest, "the request body could not be read")
}

func (c *countingReader) Close() error { return c.r.Close() }

func (c *countingReader) count() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}
