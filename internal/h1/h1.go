// Package h1 is the gateway's HTTP/1.1 client for partners that speak
// HTTP/1.1. It writes each request and reads its response on the caller's
// goroutine over a pooled connection. http.Transport hands every request to
// two goroutines of its own per connection (a writer and a reader), and on a
// proxy that forwards everything those hand-offs were about a quarter of the
// CPU per request (docs/performance.md).
//
// It carries only what it can carry exactly as http.Transport does (see
// Eligible): requests without a body or with a small body of known length.
// Streamed and large bodies, and partners that speak HTTP/2, stay on the
// Transport (internal/egress routes between the two).
//
// A connection is reused only if nothing arrived on it since its previous
// response ended: no byte left in the reader's buffer, none decrypted or
// half-received inside crypto/tls (a probe through the tls.Conn, see
// tlsconn.go), and none in the socket (a non-blocking peek before reuse,
// which also notices a partner that closed it). Stray bytes from a partner
// (a second response, a body longer than announced, a body on a HEAD or 204)
// would otherwise be read as the next request's answer. Pools are keyed by
// tenant as well as by upstream, so no connection ever carries two clients'
// requests (see Do).
//
// A request
// that still meets a dead connection is sent again only if it is bodiless and
// idempotent (GET, HEAD, OPTIONS, TRACE) and no byte of an answer came back:
// a POST to a payment partner is never sent twice.
package h1

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// MaxBufferedBody is the largest request body the client takes: it reads
// the whole body before writing the request, so the request leaves in one
// write that fits the socket buffers and never waits on a partner that
// answers before reading it. Payment and SMS API calls are far smaller.
const MaxBufferedBody = 16 << 10

// Client is a pool of HTTP/1.1 connections to upstreams. The zero value is
// not usable: set Dial.
type Client struct {
	// Dial opens a TCP connection (the policy-checking dialer). The
	// connection must implement syscall.Conn, or it is never reused.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// TLS is the base configuration for https upstreams (roots, minimum
	// version). ServerName and NextProtos are set per connection.
	TLS                 *tls.Config
	TLSHandshakeTimeout time.Duration // 0: 10 s
	MaxIdle             int           // idle connections kept across upstreams; 0: 512
	MaxIdlePerHost      int           // 0: 256
	IdleTimeout         time.Duration // an idle connection is closed after this; 0: 90 s
	MaxHeaderBytes      int64         // response status line and headers; 0: 1 MiB

	// now is the clock of idle ages (nil: time.Now); tests move it instead
	// of waiting out a partner's keep-alive timeout.
	now func() time.Time

	mu      sync.Mutex
	idle    map[poolKey][]*conn // per tenant, certificate and upstream, most recently used last
	nidle   int
	sweeper *time.Timer
	closed  bool
}

// Eligible reports whether the client carries req exactly as http.Transport
// would: no body, or a body of known length up to MaxBufferedBody.
func Eligible(req *http.Request) bool {
	if req.Body == nil || req.Body == http.NoBody {
		return true
	}
	return req.ContentLength > 0 && req.ContentLength <= MaxBufferedBody
}

var errHeaderTooLarge = errors.New("h1: upstream response headers too large")

// RoundTrip is Do for the anonymous tenant "".
func (c *Client) RoundTrip(req *http.Request) (*http.Response, error) { return c.Do("", req) }

// Do sends req (which must be Eligible, with an http or https URL) for
// tenant and returns the response with its headers read. The body streams
// from the connection; closing it after reading to the end returns the
// connection to tenant's pool: connections are never shared between
// tenants, so bytes one client provokes from a partner can only ever reach
// that client. Cancelling the request's context at any point, including
// while the body is read, breaks the connection.
func (c *Client) Do(tenant string, req *http.Request) (*http.Response, error) {
	return c.DoCert(tenant, nil, req)
}

// ClientCert is a TLS client certificate (mutual TLS) with an ID that
// names it for pooling: the upstream it is for and a digest of the
// certificate, so a rotated certificate gets a new ID.
type ClientCert struct {
	ID   string
	Cert *tls.Certificate
	// Slot names what the certificate is for (the upstream): a new ID in
	// the same slot is a rotation, and replaces the old one.
	Slot string
}

// DoCert is Do presenting cert (if not nil) to an https upstream that asks
// for a client certificate. Connections made with a certificate are pooled
// under its ID as well as the tenant and upstream: a connection
// authenticated as one partner identity never carries a request meant for
// another upstream or made after the certificate rotated.
func (c *Client) DoCert(tenant string, cert *ClientCert, req *http.Request) (*http.Response, error) {
	if !Eligible(req) {
		return nil, fmt.Errorf("h1: request body of unknown or large length (%d bytes)", req.ContentLength)
	}
	dest, addr, err := target(req.URL)
	if err != nil {
		return nil, err
	}
	key := poolKey{tenant: tenant, target: dest}
	if cert != nil {
		key.cert = cert.ID
	}
	ctx := req.Context()
	body, err := readBody(req)
	if err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		pc, err := c.get(ctx, key, addr, req.URL, cert)
		if err != nil {
			return nil, err
		}
		resp, err := pc.roundTrip(ctx, req, body, c)
		if err == nil {
			return resp, nil
		}
		pc.close()
		var nr *nothingReceived
		if attempt < 2 && pc.reused && errors.As(err, &nr) && replayable(req) && ctx.Err() == nil {
			// The partner had closed the idle connection as the request
			// left; nothing was processed that a GET could change.
			continue
		}
		return nil, err
	}
}

// readBody reads a small body whole, so the request is written in one piece.
func readBody(req *http.Request) ([]byte, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return nil, nil
	}
	defer req.Body.Close()
	b := make([]byte, req.ContentLength)
	if _, err := io.ReadFull(req.Body, b); err != nil {
		return nil, err
	}
	return b, nil
}

// replayable: what http.Transport would send again on a fresh connection
// (outgate keeps Idempotency-Key from making a POST count, see forward).
func replayable(req *http.Request) bool {
	if req.Body != nil && req.Body != http.NoBody {
		return false
	}
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}

// poolKey is what a connection may be reused for: one tenant, one client
// certificate (or none) and one upstream scheme://host:port. A struct, not
// a joined string, so a request costs no allocation to find its pool.
type poolKey struct{ tenant, cert, target string }

// target returns the upstream part of the pool key and the address to dial.
func target(u *url.URL) (key, addr string, err error) {
	port := u.Port()
	switch u.Scheme {
	case "http":
		if port == "" {
			port = "80"
		}
	case "https":
		if port == "" {
			port = "443"
		}
	default:
		return "", "", fmt.Errorf("h1: unsupported scheme %q", u.Scheme)
	}
	if u.Hostname() == "" {
		return "", "", errors.New("h1: no host in request URL")
	}
	addr = net.JoinHostPort(u.Hostname(), port)
	return u.Scheme + "://" + addr, addr, nil
}

// nothingReceived wraps a failure after which not one byte of an answer had
// arrived: the only case in which a request may be sent again.
type nothingReceived struct{ err error }

func (e *nothingReceived) Error() string { return e.err.Error() }
func (e *nothingReceived) Unwrap() error { return e.err }

// conn is one upstream connection. It is used by one request at a time.
type conn struct {
	key    poolKey
	nc     net.Conn        // the TCP connection, or TLS over it
	raw    syscall.RawConn // of the TCP connection: the liveness peek; nil: never reuse
	tc     *tls.Conn       // nc when TLS, else nil
	rec    *recordConn     // the TCP connection under tc
	br     *bufio.Reader   // reads through conn.Read, which counts and limits
	bw     *bufio.Writer
	limit  int64 // bytes the reader may still take (the header phase only)
	got    int64 // bytes read since the request was written
	idleAt time.Time
	// usableFor is how long the connection may sit idle and still be
	// reused: the partner's own Keep-Alive timeout less a margin, or 0 for
	// no limit beyond IdleTimeout.
	usableFor time.Duration
	reused    bool
}

func (pc *conn) Read(p []byte) (int, error) {
	if pc.limit <= 0 {
		return 0, errHeaderTooLarge
	}
	if int64(len(p)) > pc.limit {
		p = p[:pc.limit]
	}
	n, err := pc.nc.Read(p)
	pc.limit -= int64(n)
	pc.got += int64(n)
	return n, err
}

func (pc *conn) close() { pc.nc.Close() }

// alive peeks at an idle connection's socket without blocking: a partner's
// close (EOF or reset) or any unsolicited byte means it must not carry a
// request. For TLS the peek sees records, so a late session ticket also
// retires the connection: a new handshake, never a wrong answer. Where the
// platform has no peek (peek_other.go), nothing is ever reused.
func (pc *conn) alive() bool {
	return pc.raw != nil && peekEmpty(pc.raw)
}

// clean reports whether nothing at all arrived after the response that just
// ended: no byte buffered in br and, over TLS, no record inside crypto/tls,
// whether decrypted, complete or half received. The socket itself is
// checked by alive, just before reuse.
func (pc *conn) clean() bool {
	if pc.br.Buffered() != 0 {
		return false
	}
	if pc.tc == nil {
		return true
	}
	return pc.rec.probe(pc.tc)
}

var past = time.Unix(1, 0)

func (pc *conn) roundTrip(ctx context.Context, req *http.Request, body []byte, c *Client) (*http.Response, error) {
	// A cancelled request (client gone, header timeout, body idle timeout)
	// unblocks whatever read or write is in progress.
	stop := context.AfterFunc(ctx, func() { pc.nc.SetDeadline(past) })
	out := req
	if body != nil {
		r := *req
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		out = &r
	}
	// Request.Write is what http.Transport writes with for a direct
	// (non-proxy) request: the same request line, Host, headers, framing.
	if err := out.Write(pc.bw); err != nil {
		stop()
		return nil, err
	}
	pc.got = 0
	if err := pc.bw.Flush(); err != nil {
		stop()
		return nil, &nothingReceived{err}
	}
	resp, err := pc.readHead(req, c.maxHeaderBytes())
	if err != nil {
		stop()
		if pc.got == 0 {
			return nil, &nothingReceived{err}
		}
		return nil, err
	}
	pc.limit = 1<<63 - 1
	reuse := !resp.Close && !req.Close
	if t := keepAliveTimeout(resp.Header); t > 0 {
		// A partner that announces when it drops idle connections
		// (Node's "Keep-Alive: timeout=5") may do so just as a request
		// arrives; a POST caught there fails. Stop using the connection
		// a second early instead.
		pc.usableFor = t - keepAliveMargin
		reuse = reuse && pc.usableFor > 0
	}
	resp.Body = &body1{pc: pc, c: c, rc: resp.Body, stop: stop, reuse: reuse}
	return resp, nil
}

// keepAliveMargin is how long before a partner's announced keep-alive
// timeout a connection stops being reused (undici, Node's client, uses 1 s).
const keepAliveMargin = time.Second

// keepAliveTimeout reads "Keep-Alive: timeout=N" (seconds), or 0.
func keepAliveTimeout(h http.Header) time.Duration {
	for _, v := range h.Values("Keep-Alive") {
		for _, part := range strings.Split(v, ",") {
			k, val, ok := strings.Cut(part, "=")
			if !ok || !strings.EqualFold(strings.TrimSpace(k), "timeout") {
				continue
			}
			if n, err := strconv.Atoi(strings.TrimSpace(val)); err == nil && n > 0 && n < 1<<20 {
				return time.Duration(n) * time.Second
			}
		}
	}
	return 0
}

// readHead reads the final response's head, skipping informational (1xx)
// responses as http.Transport does; a 101 is an error, since outgate never
// asks for an upgrade.
func (pc *conn) readHead(req *http.Request, max int64) (*http.Response, error) {
	for n := 0; ; n++ {
		pc.limit = max
		resp, err := http.ReadResponse(pc.br, req)
		if err != nil {
			if pc.limit <= 0 {
				return nil, fmt.Errorf("%w (over %d bytes)", errHeaderTooLarge, max)
			}
			return nil, err
		}
		switch {
		case resp.StatusCode == http.StatusSwitchingProtocols:
			return nil, errors.New("h1: upstream switched protocols unasked")
		case resp.StatusCode >= 100 && resp.StatusCode < 200:
			if n == 4 {
				return nil, errors.New("h1: too many informational responses")
			}
			continue
		}
		return resp, nil
	}
}

// body1 streams a response body and decides the connection's fate on Close:
// back to the pool only after the whole body was read, with nothing after
// it, no cancellation in between and neither side asking to close.
type body1 struct {
	pc    *conn
	c     *Client
	rc    io.ReadCloser
	stop  func() bool
	reuse bool
	eof   bool
	done  bool
}

func (b *body1) Read(p []byte) (int, error) {
	if b.done {
		return 0, errors.New("h1: read on closed body")
	}
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

func (b *body1) Close() error {
	if b.done {
		return nil
	}
	b.done = true
	// stop is false when the cancel callback ran or is running: the
	// deadline is (or is about to be) in the past, so the connection goes.
	if b.stop() && b.eof && b.reuse && b.pc.clean() {
		b.c.put(b.pc)
		return nil
	}
	b.pc.close()
	return nil
}

func (c *Client) maxHeaderBytes() int64 {
	if c.MaxHeaderBytes > 0 {
		return c.MaxHeaderBytes
	}
	return 1 << 20
}

func (c *Client) idleTimeout() time.Duration {
	if c.IdleTimeout > 0 {
		return c.IdleTimeout
	}
	return 90 * time.Second
}

// get returns a live idle connection to key, or dials one.
func (c *Client) get(ctx context.Context, key poolKey, addr string, u *url.URL, cert *ClientCert) (*conn, error) {
	for {
		pc := c.take(key)
		if pc == nil {
			break
		}
		if (pc.usableFor == 0 || c.clock().Sub(pc.idleAt) < pc.usableFor) && pc.alive() {
			return pc, nil
		}
		pc.close()
	}
	return c.dial(ctx, key, addr, u, cert)
}

func (c *Client) take(key poolKey) *conn {
	c.mu.Lock()
	defer c.mu.Unlock()
	list := c.idle[key]
	if len(list) == 0 {
		return nil
	}
	pc := list[len(list)-1]
	list[len(list)-1] = nil
	c.idle[key] = list[:len(list)-1]
	c.nidle--
	return pc
}

func (c *Client) dial(ctx context.Context, key poolKey, addr string, u *url.URL, cert *ClientCert) (*conn, error) {
	nc, err := c.Dial(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	pc := &conn{key: key, nc: nc}
	if sc, ok := nc.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			pc.raw = raw
		}
	}
	if u.Scheme == "https" {
		cfg := &tls.Config{}
		if c.TLS != nil {
			cfg = c.TLS.Clone()
		}
		if cfg.ServerName == "" {
			cfg.ServerName = u.Hostname()
		}
		cfg.GetClientCertificate = ClientCertificate(cert)
		// Only HTTP/1.1 is offered: this connection is read as HTTP/1.1.
		cfg.NextProtos = []string{"http/1.1"}
		// The TLS layer reads through recordConn, which follows the
		// record framing so that clean can tell a half-received record
		// inside crypto/tls from none.
		pc.rec = &recordConn{Conn: nc}
		tc := tls.Client(pc.rec, cfg)
		timeout := c.TLSHandshakeTimeout
		if timeout <= 0 {
			timeout = 10 * time.Second
		}
		hctx, cancel := context.WithTimeout(ctx, timeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			nc.Close()
			return nil, err
		}
		pc.nc, pc.tc = tc, tc
	}
	pc.br = bufio.NewReaderSize(pc, 4<<10)
	pc.bw = bufio.NewWriterSize(pc.nc, 4<<10)
	return pc, nil
}

// ClientCertificate is the tls.Config hook that presents cert when the
// server asks for one, or no certificate (nil cert). crypto/tls would pick
// from Certificates by the server's accepted CAs and send none on a
// mismatch; the partner, not the gateway, should judge the certificate.
func ClientCertificate(cert *ClientCert) func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		if cert == nil || cert.Cert == nil {
			return &tls.Certificate{}, nil
		}
		return cert.Cert, nil
	}
}

// put returns a connection whose exchange ended cleanly to the pool. When
// the pool is full the oldest idle connection of any upstream makes room.
func (c *Client) put(pc *conn) {
	if pc.raw == nil || !canPeek {
		pc.close()
		return
	}
	maxIdle, perHost := c.MaxIdle, c.MaxIdlePerHost
	if maxIdle <= 0 {
		maxIdle = 512
	}
	if perHost <= 0 {
		perHost = 256
	}
	pc.idleAt = c.clock()
	pc.reused = true
	var evict *conn
	c.mu.Lock()
	if c.closed || len(c.idle[pc.key]) >= perHost {
		c.mu.Unlock()
		pc.close()
		return
	}
	if c.nidle >= maxIdle {
		evict = c.removeOldestLocked()
	}
	if c.idle == nil {
		c.idle = map[poolKey][]*conn{}
	}
	c.idle[pc.key] = append(c.idle[pc.key], pc)
	c.nidle++
	if c.sweeper == nil {
		c.sweeper = time.AfterFunc(c.idleTimeout()/2, c.sweep)
	}
	c.mu.Unlock()
	if evict != nil {
		evict.close()
	}
}

func (c *Client) removeOldestLocked() *conn {
	var (
		oldest poolKey
		found  bool
	)
	for k, list := range c.idle {
		if len(list) > 0 && (!found || list[0].idleAt.Before(c.idle[oldest][0].idleAt)) {
			oldest, found = k, true
		}
	}
	if !found {
		return nil
	}
	list := c.idle[oldest]
	pc := list[0]
	c.idle[oldest] = append(list[:0], list[1:]...)
	c.nidle--
	return pc
}

func (c *Client) clock() time.Time {
	if c.now != nil {
		return c.now()
	}
	return time.Now()
}

// sweep closes connections idle for longer than IdleTimeout, so an
// upstream no longer called does not hold descriptors forever.
func (c *Client) sweep() {
	cutoff := c.clock().Add(-c.idleTimeout())
	var expired []*conn
	c.mu.Lock()
	for k, list := range c.idle {
		n := 0
		for n < len(list) && list[n].idleAt.Before(cutoff) {
			expired = append(expired, list[n])
			n++
		}
		if n == len(list) {
			delete(c.idle, k)
		} else if n > 0 {
			c.idle[k] = append(list[:0], list[n:]...)
		}
		c.nidle -= n
	}
	if c.nidle > 0 && !c.closed {
		c.sweeper.Reset(c.idleTimeout() / 2)
	} else {
		c.sweeper = nil
	}
	c.mu.Unlock()
	for _, pc := range expired {
		pc.close()
	}
}

// CloseIdleConnections closes every idle connection and every connection
// handed back later: the client of a replaced config winds down. Requests
// still in flight on it finish (and any that start dial afresh).
func (c *Client) CloseIdleConnections() {
	c.mu.Lock()
	c.closed = true
	idle := c.idle
	c.idle, c.nidle = nil, 0
	if c.sweeper != nil {
		c.sweeper.Stop()
		c.sweeper = nil
	}
	c.mu.Unlock()
	for _, list := range idle {
		for _, pc := range list {
			pc.close()
		}
	}
}

// Idle returns the number of idle pooled connections (for tests and metrics).
func (c *Client) Idle() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nidle
}
