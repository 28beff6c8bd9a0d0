// Package egress builds the one way out of the gateway: HTTP clients and a
// dialer whose every connection passes the address policy, verifies TLS and
// is bounded in time. Relay, proxy and whoami all leave through it.
//
// Two rules hold whichever client carries a request:
//
//   - Upstream connections are never shared between tenants (For): a
//     partner that answers one client's request twice, or a client that
//     smuggles a second request inside a body the partner ignores, can only
//     ever reach that same client's later requests.
//   - An HTTP/1.1 connection is reused only when it is known to be clean:
//     nothing arrived after the previous response. internal/h1 checks that
//     (over TLS too); http.Transport cannot be asked, and its background
//     reader may hand bytes that arrived with the end of a response to the
//     next request, so HTTP/1.1 through the Transport is single-use.
//
// So requests go to internal/h1 when it can carry them: plain http upstreams
// and https upstreams that answered over HTTP/1.1. HTTP/2 partners go to a
// per-tenant http.Transport that dials only HTTP/2. The rest (an https
// upstream's first request, streamed or large bodies to HTTP/1.1 partners)
// goes through a Transport without keep-alive.
package egress

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/outgate/outgate/internal/config"
	"github.com/outgate/outgate/internal/h1"
	"github.com/outgate/outgate/internal/netguard"
)

// Egress is the outbound side built from one config.
type Egress struct {
	Dialer *netguard.Dialer
	H1     *h1.Client
	// Once carries HTTP/1.1 that h1 cannot (streamed or large bodies) and
	// the first request to an https upstream, each on its own connection.
	// Sharing it between tenants shares no connection.
	Once *http.Transport

	tlsConf     *tls.Config
	lim         config.ResolvedLimits
	h2PerTenant int // idle connections per tenant's HTTP/2 Transport

	mu     sync.Mutex
	protos map[string]int             // https host:port → 1 or 2, as it answered
	h2     map[string]*http.Transport // per tenant, HTTP/2 only
	// certs holds the Transports of requests made with a client
	// certificate, per tenant and ClientCert.Slot (the upstream): a
	// rotated certificate replaces its slot's entry, so the map stays as
	// large as the config.
	certs map[certSlot]*certTransports
}

// certSlot names a client certificate's Transports: one tenant, one
// upstream (a struct, so a request costs no allocation to find them).
type certSlot struct{ tenant, slot string }

// ClientCert is a client certificate for mutual TLS (see h1.ClientCert).
type ClientCert = h1.ClientCert

// certTransports are the Transports for one tenant and client certificate.
type certTransports struct {
	id       string // the ClientCert.ID they present
	h2, once *http.Transport
}

// New builds the dialer and transports. self lists the gateway's own
// listeners, which are never a valid destination; onConnect (may be nil)
// sees every upstream connection opened.
func New(cfg *config.Config, self []netip.AddrPort, onConnect func()) (*Egress, error) {
	lim := cfg.Limits.Resolved
	d := &netguard.Dialer{
		Policy:    &netguard.Policy{Allow: cfg.Network.Allow, Self: self},
		Resolver:  resolver(cfg.Network.ResolverAddrs, lim.DialTimeout),
		Timeout:   lim.DialTimeout,
		KeepAlive: 30 * time.Second,
		OnConnect: onConnect,
	}
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	if len(cfg.Network.CAFiles) > 0 {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		for _, f := range cfg.Network.CAFiles {
			pem, err := os.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("network.ca_files: %w", err)
			}
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("network.ca_files: %s has no PEM certificates", f)
			}
		}
		tlsConf.RootCAs = pool
	}
	once := &http.Transport{
		// Never an environment proxy: the gateway is the proxy.
		Proxy:                  nil,
		DialContext:            d.DialContext,
		TLSClientConfig:        tlsConf,
		TLSHandshakeTimeout:    lim.TLSHandshakeTimeout,
		ForceAttemptHTTP2:      true,
		DisableKeepAlives:      true,
		MaxResponseHeaderBytes: maxResponseHeader,
		// Bodies pass through as the partner sent them: no transparent gzip.
		DisableCompression: true,
	}
	c := &h1.Client{
		Dial:                d.DialContext,
		TLS:                 tlsConf,
		TLSHandshakeTimeout: lim.TLSHandshakeTimeout,
		MaxIdle:             MaxIdleConns - h2Idle,
		MaxIdlePerHost:      256,
		IdleTimeout:         upstreamIdle,
		MaxHeaderBytes:      maxResponseHeader,
	}
	// Every client, and "" for the gateway's own calls, may get an HTTP/2
	// Transport; their idle connections share h2Idle.
	perTenant := max(2, h2Idle/(len(cfg.Clients)+1))
	return &Egress{Dialer: d, H1: c, Once: once, tlsConf: tlsConf, lim: lim, h2PerTenant: perTenant}, nil
}

const maxResponseHeader = 1 << 20

// upstreamIdle is how long an upstream connection may wait idle for reuse.
// It is shorter than the idle timeout of the load balancer most partners
// sit behind (AWS ALB: 60 s), so outgate closes first: a partner closing a
// connection just as a request goes out on it is the one failure a POST
// cannot be retried from.
const upstreamIdle = 50 * time.Second

// MaxIdleConns bounds the upstream keep-alive pools across all upstreams
// and tenants: a quarter for the HTTP/2 Transports (HTTP/2 needs few
// connections), the rest for the HTTP/1.1 client.
const MaxIdleConns = 1024

const h2Idle = MaxIdleConns / 4

// maxLearned bounds the memory of which protocol https upstreams speak;
// past it, new ones stay on the single-use Transport.
const maxLearned = 4096

// Tenant sends requests for one tenant (a client's name; "" for the
// gateway's own calls) over connections no other tenant uses.
type Tenant struct {
	e    *Egress
	name string
}

// For returns the way out for tenant. It is cheap, but callers on a hot
// path keep it (core does, per client).
func (e *Egress) For(tenant string) *Tenant { return &Tenant{e: e, name: tenant} }

// RoundTrip sends req for the tenant "" (the gateway's own calls).
func (e *Egress) RoundTrip(req *http.Request) (*http.Response, error) {
	return e.roundTrip("", nil, req)
}

// RoundTrip sends req over the tenant's connections. It never follows
// redirects.
func (t *Tenant) RoundTrip(req *http.Request) (*http.Response, error) {
	return t.e.roundTrip(t.name, nil, req)
}

// WithCert returns the tenant's way out presenting cert to partners that
// ask for a client certificate; nil cert: the tenant itself. Connections
// made with a certificate are used only for requests with the same
// certificate (same ClientCert.ID) from the same tenant.
func (t *Tenant) WithCert(cert *ClientCert) http.RoundTripper {
	if cert == nil {
		return t
	}
	return certTenant{t: t, cert: cert}
}

type certTenant struct {
	t    *Tenant
	cert *ClientCert
}

func (c certTenant) RoundTrip(req *http.Request) (*http.Response, error) {
	return c.t.e.roundTrip(c.t.name, c.cert, req)
}

func (e *Egress) roundTrip(tenant string, cert *ClientCert, req *http.Request) (*http.Response, error) {
	if UnexpectedBody(req) {
		// A body the partner may not read may be read as a request of its
		// own: the connection that carried it is never used again.
		req.Close = true
	}
	proto := 1
	if req.URL.Scheme == "https" {
		proto = e.proto(req.URL.Host)
	}
	switch {
	case proto == 2:
		resp, err, resend := e.viaH2(tenant, cert, req)
		if !errors.Is(err, errNotH2) {
			return resp, err
		}
		// The partner no longer offers HTTP/2 on a new connection: nothing
		// was sent. Unless the body was consumed, send it the HTTP/1.1 way.
		e.learn(req.URL.Host, 1)
		if !resend {
			return nil, err
		}
		return e.roundTrip(tenant, cert, req)
	case proto == 1 && h1.Eligible(req):
		return e.H1.DoCert(tenant, cert, req)
	}
	once := e.Once
	if cert != nil {
		once = e.certsFor(tenant, cert).once
	}
	resp, err := once.RoundTrip(noRetry(req))
	if err == nil && req.URL.Scheme == "https" {
		e.learn(req.URL.Host, resp.ProtoMajor)
	}
	return resp, err
}

// UnexpectedBody: a request that declares a body (any length, or any
// Transfer-Encoding, even an empty chunked one) with a method whose requests
// usually have none. Partners that do not read such bodies read them as a
// next request.
func UnexpectedBody(req *http.Request) bool {
	if req.ContentLength == 0 && len(req.TransferEncoding) == 0 {
		return false
	}
	return BodylessMethod(req.Method)
}

// BodylessMethod lists the methods whose requests carry no body by
// convention (RFC 9110 9.3: content has no defined meaning), which many
// servers therefore never read.
func BodylessMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodDelete:
		return true
	}
	return false
}

// proto returns 2 or 1 for an https host:port that answered before, else 0.
func (e *Egress) proto(host string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.protos[host]
}

func (e *Egress) learn(host string, proto int) {
	if proto != 1 && proto != 2 {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.protos == nil {
		e.protos = map[string]int{}
	}
	if _, ok := e.protos[host]; ok || len(e.protos) < maxLearned {
		e.protos[host] = proto
	}
}

var errNotH2 = errors.New("egress: the partner did not negotiate HTTP/2")

// viaH2 sends req through the tenant's HTTP/2 Transport. A body is passed
// behind a guard, so that if the dial finds no HTTP/2 (and the Transport
// closes the body unread) the request can still go another way: resend.
func (e *Egress) viaH2(tenant string, cert *ClientCert, req *http.Request) (resp *http.Response, err error, resend bool) {
	var t *http.Transport
	if cert != nil {
		t = e.certsFor(tenant, cert).h2
	} else {
		t = e.h2For(tenant)
	}
	out := noRetry(req)
	var g *bodyGuard
	if req.Body != nil && req.Body != http.NoBody {
		g = &bodyGuard{r: req.Body}
		r := *req
		r.Body = g
		out = &r
	}
	resp, err = t.RoundTrip(out)
	return resp, err, errors.Is(err, errNotH2) && (g == nil || !g.touched.Load())
}

// noRetry gives a bodiless request whose method is not safe an empty body
// that is not http.NoBody, for the Transports that may speak HTTP/2. Go's
// HTTP/2 transport re-sends a request without a body on its own when the
// partner resets its stream with PROTOCOL_ERROR, though the partner had the
// request and may have acted on it (a payout, a transfer: one keyed POST
// reached a resetting partner 201 times in two seconds). It never re-sends
// a request whose body it has consumed. The wire cost: over HTTP/2 such a
// request has an empty DATA frame instead of content-length: 0, and a
// first contact that turns out HTTP/1.1 sends a POST, PUT or PATCH with an
// empty chunked body instead of Content-Length: 0 (requests to a host
// known to speak HTTP/1.1 go through h1, which this does not touch).
func noRetry(req *http.Request) *http.Request {
	if req.Body != nil && req.Body != http.NoBody {
		return req
	}
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return req
	}
	r := *req
	r.Body, r.ContentLength = emptyBody{}, 0
	return &r
}

// emptyBody is a body of no bytes that Transports cannot tell from one
// they would have to replay.
type emptyBody struct{}

func (emptyBody) Read([]byte) (int, error) { return 0, io.EOF }
func (emptyBody) Close() error             { return nil }

// bodyGuard passes a body to a Transport that may close it unread.
type bodyGuard struct {
	r       io.ReadCloser
	touched atomic.Bool
}

func (g *bodyGuard) Read(p []byte) (int, error) {
	g.touched.Store(true)
	return g.r.Read(p)
}

func (g *bodyGuard) Close() error {
	if g.touched.Load() {
		return g.r.Close()
	}
	return nil
}

// h2For returns tenant's HTTP/2 Transport, made on first use.
func (e *Egress) h2For(tenant string) *http.Transport {
	e.mu.Lock()
	defer e.mu.Unlock()
	if t := e.h2[tenant]; t != nil {
		return t
	}
	t := e.newH2(nil)
	if e.h2 == nil {
		e.h2 = map[string]*http.Transport{}
	}
	e.h2[tenant] = t
	return t
}

// certsFor returns the Transports for tenant presenting cert, made on first
// use; a new certificate for the same slot (a rotation) replaces the old
// ones, whose idle connections are closed.
func (e *Egress) certsFor(tenant string, cert *ClientCert) *certTransports {
	key := certSlot{tenant, cert.Slot}
	e.mu.Lock()
	ct := e.certs[key]
	if ct != nil && ct.id == cert.ID {
		e.mu.Unlock()
		return ct
	}
	old := ct
	ct = &certTransports{id: cert.ID, h2: e.newH2(cert), once: e.Once.Clone()}
	ct.once.TLSClientConfig = e.tlsConf.Clone()
	ct.once.TLSClientConfig.GetClientCertificate = h1.ClientCertificate(cert)
	if e.certs == nil {
		e.certs = map[certSlot]*certTransports{}
	}
	e.certs[key] = ct
	e.mu.Unlock()
	if old != nil {
		old.h2.CloseIdleConnections()
		old.once.CloseIdleConnections()
	}
	return ct
}

// certH2Idle is the idle connections a tenant's HTTP/2 Transport for one
// client certificate keeps: it reaches one upstream, and HTTP/2 carries
// many requests on one connection.
const certH2Idle = 2

// newH2 makes an HTTP/2-only Transport presenting cert (nil: none).
func (e *Egress) newH2(cert *ClientCert) *http.Transport {
	idle := e.h2PerTenant
	if cert != nil {
		idle = certH2Idle
	}
	return &http.Transport{
		Proxy: nil,
		DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return e.dialH2(ctx, network, addr, cert)
		},
		// A custom TLS dial still gets HTTP/2 when the connection
		// negotiated it; dialH2 returns no other kind.
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           idle,
		MaxIdleConnsPerHost:    idle,
		IdleConnTimeout:        upstreamIdle,
		MaxResponseHeaderBytes: maxResponseHeader,
		DisableCompression:     true,
	}
}

// dialH2 opens a verified TLS connection that negotiated HTTP/2, or fails
// with errNotH2 before anything is sent.
func (e *Egress) dialH2(ctx context.Context, network, addr string, cert *ClientCert) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	nc, err := e.Dialer.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	cfg := e.tlsConf.Clone()
	cfg.ServerName = host
	cfg.NextProtos = []string{"h2", "http/1.1"}
	cfg.GetClientCertificate = h1.ClientCertificate(cert)
	tc := tls.Client(nc, cfg)
	timeout := e.lim.TLSHandshakeTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	hctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		nc.Close()
		return nil, err
	}
	if tc.ConnectionState().NegotiatedProtocol != "h2" {
		tc.Close()
		return nil, errNotH2
	}
	return tc, nil
}

// CloseIdleConnections closes every pool's idle connections (a replaced
// config's egress winds down).
func (e *Egress) CloseIdleConnections() {
	e.Once.CloseIdleConnections()
	e.H1.CloseIdleConnections()
	e.mu.Lock()
	ts := make([]*http.Transport, 0, len(e.h2))
	for _, t := range e.h2 {
		ts = append(ts, t)
	}
	for _, ct := range e.certs {
		ts = append(ts, ct.h2, ct.once)
	}
	e.mu.Unlock()
	for _, t := range ts {
		t.CloseIdleConnections()
	}
}

// resolver returns nil (the system resolver) or one that asks only addrs.
func resolver(addrs []netip.AddrPort, timeout time.Duration) netguard.Resolver {
	if len(addrs) == 0 {
		return nil
	}
	var next atomic.Uint32
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			// Rotate through the configured servers; the Go resolver retries.
			a := addrs[int(next.Add(1))%len(addrs)]
			var d net.Dialer
			d.Timeout = timeout
			return d.DialContext(ctx, network, a.String())
		},
	}
}
