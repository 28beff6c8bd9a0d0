// Package core is the gateway's compiled state for one config: who the
// clients are, what each may reach, their budgets, the way out, and the
// audit and metrics sinks. A reload builds a new Core and swaps it in whole,
// so a request sees one consistent config from start to end.
package core

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"github.com/outgate/outgate/internal/apierr"
	"github.com/outgate/outgate/internal/audit"
	"github.com/outgate/outgate/internal/config"
	"github.com/outgate/outgate/internal/egress"
	"github.com/outgate/outgate/internal/idempotency"
	"github.com/outgate/outgate/internal/inject"
	"github.com/outgate/outgate/internal/keys"
	"github.com/outgate/outgate/internal/limits"
	"github.com/outgate/outgate/internal/secrets"
	"github.com/outgate/outgate/internal/upstream"
)

// Client is an authenticated caller with its budgets.
type Client struct {
	*config.Client
	Rate     *limits.Bucket
	Requests *limits.Gate
	Tunnels  *limits.Gate
	// Egress sends this client's requests over upstream connections that
	// no other client's requests use.
	Egress *egress.Tenant

	// The release funcs Admit hands out, made once: a method value made per
	// request would be an allocation per request.
	leaveRequest, leaveTunnel func()
	limits                    config.PerClient // what the budgets were made from
}

// Core is everything a request handler needs, for one config.
type Core struct {
	Config *config.Config
	Egress *egress.Egress
	Log    *slog.Logger
	Audit  audit.Logger

	onFinish func(*audit.Record)

	// Creds are the partner credentials of the upstreams (nil: none).
	Creds *inject.Creds

	// Cert is the relay listener's certificate when tls is configured,
	// ProxyCert the proxy listener's when proxy_tls is.
	Cert, ProxyCert *tls.Certificate

	// Idempotency keeps idempotency-key records (nil when no upstream uses them).
	Idempotency idempotency.Store

	byName      map[string]*Client
	byHash      map[[32]byte]*Client
	proxyRoutes map[string][]proxyRoute
}

// Deps are the parts that outlive one config.
type Deps struct {
	Log   *slog.Logger     // process log, at the configured level
	Audit io.Writer        // audit lines, always written (one Write per line)
	Self  []netip.AddrPort // the gateway's own listeners
	// IPv4Only: no call goes to an IPv6 address (netguard.Policy.IPv4Only).
	IPv4Only bool
	// OnFinish, if set, sees every finished request: Prometheus counters in
	// outgate serve, CloudWatch EMF lines in the Lambda relay. A hook keeps
	// either metrics library out of the other binary.
	OnFinish func(*audit.Record)
	// OnConnect, if set, sees every upstream connection opened (relay,
	// proxy and tunnels): against requests, how well keep-alive works.
	OnConnect func()
	// Secrets reach where the config's ${secret:...} references live
	// (the zero value: env and file only).
	Secrets secrets.Sources
	// OnSecretRefresh, if set, sees every refresh of the secrets after
	// the start (nil error: the new values are in use).
	OnSecretRefresh func(error)
	// Idempotency is the store of idempotency keys; required when an
	// upstream turns idempotency on (the records outlive a config).
	Idempotency idempotency.Store
}

// New compiles a validated config.
func New(cfg *config.Config, deps Deps) (*Core, error) {
	if cfg.UsesIdempotency() && deps.Idempotency == nil {
		// Deny by default: never send a keyed request unprotected.
		return nil, fmt.Errorf("an upstream has idempotency on, but no idempotency store is available here")
	}
	eg, err := egress.New(cfg, deps.Self, deps.OnConnect)
	if err != nil {
		return nil, err
	}
	eg.Dialer.Policy.IPv4Only = deps.IPv4Only // before any dial
	log := deps.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Core{
		Config:   cfg,
		Egress:   eg,
		Log:      log,
		Audit:    audit.Logger{W: deps.Audit},
		onFinish: deps.OnFinish,
		byName:   map[string]*Client{},
		byHash:   map[[32]byte]*Client{},

		Idempotency: deps.Idempotency,
		proxyRoutes: proxyRoutes(cfg),
	}
	if cfg.TLS.Enabled() {
		cert, err := tls.LoadX509KeyPair(cfg.TLS.CertFile, cfg.TLS.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
		c.Cert = &cert
	}
	if cfg.ProxyTLS.Enabled() {
		cert, err := tls.LoadX509KeyPair(cfg.ProxyTLS.CertFile, cfg.ProxyTLS.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("proxy_tls: %w", err)
		}
		c.ProxyCert = &cert
	}
	// A secret that cannot be fetched fails the start or the reload,
	// never a request.
	if c.Creds, err = inject.Load(context.Background(), cfg, deps.Secrets, log, deps.OnSecretRefresh); err != nil {
		return nil, fmt.Errorf("secrets: %w", err)
	}
	for i := range cfg.Clients {
		cc := &cfg.Clients[i]
		p := cc.Effective(cfg.Limits.Resolved.PerClient)
		cl := &Client{
			Client:   cc,
			Rate:     limits.NewBucket(p.RequestsPerSecond, p.Burst),
			Requests: limits.NewGate(p.MaxConcurrent),
			Tunnels:  limits.NewGate(p.MaxTunnels),
			Egress:   eg.For(cc.Name),
		}
		cl.leaveRequest, cl.leaveTunnel, cl.limits = cl.Requests.Leave, cl.Tunnels.Leave, p
		c.byName[cc.Name] = cl
		for _, h := range cc.KeyHashes {
			c.byHash[h] = cl
		}
	}
	return c, nil
}

// Inherit takes over the budgets of old's clients whose limits did not
// change, so a reload neither refills a client's rate bucket nor lets it
// run a second max_concurrent (or max_tunnels) beside the requests still in
// flight on the old config. Clients with new limits start afresh.
func (c *Core) Inherit(old *Core) {
	if old == nil {
		return
	}
	for name, cl := range c.byName {
		prev := old.byName[name]
		if prev == nil || prev.limits != cl.limits {
			continue
		}
		cl.Rate, cl.Requests, cl.Tunnels = prev.Rate, prev.Requests, prev.Tunnels
		cl.leaveRequest, cl.leaveTunnel = prev.leaveRequest, prev.leaveTunnel
	}
}

// Close releases idle upstream connections of a Core that was replaced.
func (c *Core) Close() { c.Egress.CloseIdleConnections() }

// ByKey authenticates a relay key. The map is keyed by the key's SHA-256, so
// looking it up reveals nothing about stored keys; the constant-time compare
// confirms the match.
func (c *Core) ByKey(key string) *Client {
	if key == "" {
		return nil
	}
	sum := keys.Sum(key)
	cl := c.byHash[sum]
	if cl == nil || !keys.MatchesSum(sum, cl.KeyHashes) {
		return nil
	}
	return cl
}

// ByBasic authenticates proxy credentials (client name and key).
func (c *Core) ByBasic(name, key string) *Client {
	cl := c.byName[name]
	if cl == nil {
		// Spend the same work as a real check so timing does not reveal names.
		keys.Matches(key, nil)
		return nil
	}
	if !keys.Matches(key, cl.KeyHashes) {
		return nil
	}
	return cl
}

// MayUseUpstream reports whether the client lists the relay route.
func (cl *Client) MayUseUpstream(name string) bool {
	for _, u := range cl.Upstreams {
		if u == name {
			return true
		}
	}
	return false
}

// MayReach reports whether a normalized host and port match the client's hosts.
func (cl *Client) MayReach(host string, port uint16) bool {
	for _, p := range cl.Patterns {
		if p.Match(host, port) {
			return true
		}
	}
	return false
}

// MayTunnelRaw reports whether a CONNECT tunnel to host:port may carry
// something other than TLS (raw_tunnels): such a tunnel is spliced at once,
// for protocols where the server speaks first.
func (cl *Client) MayTunnelRaw(host string, port uint16) bool {
	for _, p := range cl.RawPatterns {
		if p.Match(host, port) {
			return true
		}
	}
	return false
}

// Admit charges one request to the client's rate and concurrency budgets.
// On success the caller must call the returned release when done.
func (cl *Client) Admit() (release func(), e *apierr.E) {
	return cl.admit(cl.Requests, cl.leaveRequest, "too many requests in flight for this client")
}

// AdmitRequest is how the relay and the proxy let a request in, the same
// way: charged to the client's budgets (Admit), a declared body over
// limits.max_body refused before any of it is read, and the body bounded as
// it streams. On success the caller must call release when done.
func (c *Core) AdmitRequest(w http.ResponseWriter, r *http.Request, cl *Client) (release func(), e *apierr.E) {
	release, e = cl.Admit()
	if e != nil {
		return nil, e
	}
	max := c.Config.Limits.Resolved.MaxBodyBytes
	if r.ContentLength > max {
		release()
		return nil, apierr.New(http.StatusRequestEntityTooLarge, apierr.CodeBodyTooLarge, "request body is larger than the gateway allows")
	}
	r.Body = http.MaxBytesReader(w, r.Body, max)
	return release, nil
}

// AdmitTunnel charges one tunnel to the client's rate and tunnel budgets.
func (cl *Client) AdmitTunnel() (release func(), e *apierr.E) {
	return cl.admit(cl.Tunnels, cl.leaveTunnel, "too many open tunnels for this client")
}

func (cl *Client) admit(g *limits.Gate, leave func(), full string) (release func(), e *apierr.E) {
	if ok, wait := cl.Rate.Take(); !ok {
		return nil, &apierr.E{Status: http.StatusTooManyRequests, Code: apierr.CodeRateLimited,
			Message: "request rate limit reached for this client", RetryAfter: wait}
	}
	if !g.Enter() {
		return nil, &apierr.E{Status: http.StatusTooManyRequests, Code: apierr.CodeConcurrencyLimited,
			Message: full, RetryAfter: time.Second}
	}
	return leave, nil
}

// Timeouts are the upstream timeouts for a request; header overrides the
// response-header timeout when non-zero (an upstream's own timeout).
func (c *Core) Timeouts(header time.Duration) upstream.Timeouts {
	lim := c.Config.Limits.Resolved
	if header == 0 {
		header = lim.ResponseHeaderTimeout
	}
	return upstream.Timeouts{Header: header, BodyIdle: lim.UpstreamIdleTimeout}
}

// Finish logs the audit line and counts the request.
func (c *Core) Finish(r *audit.Record) {
	c.Audit.Log(r)
	if c.onFinish != nil {
		c.onFinish(r)
	}
}

// ReasonClientStalled is the audit reason of a response or tunnel cut off
// because the client took none of it for limits.write_idle_timeout.
const ReasonClientStalled = "client_write_timeout"

// EndResponse runs before Finish on the listeners' requests. It pushes out
// what the server still buffers of an allowed HTTP/1 response, so a client
// that stops reading shows in this request's audit line rather than after
// it; and marks the record of a response the write idle timeout cut off,
// which would otherwise read as allowed and complete.
func EndResponse(w http.ResponseWriter, r *http.Request, rec *audit.Record) {
	if rec.Decision == audit.Allow && rec.Status != 0 && rec.Mode != "connect" && r.ProtoMajor == 1 {
		http.NewResponseController(w).Flush()
	}
	if limits.WriteStalled(r.Context()) {
		rec.Decision, rec.Reason = audit.Error, ReasonClientStalled
		rec.Detail = "response truncated: the client read nothing for limits.write_idle_timeout"
	}
}
