// Package server runs `outgate serve`: it binds the listeners, builds the
// Core from the config, swaps in a new Core on reload, and shuts down
// gracefully, waiting for requests and tunnels in flight.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/outgate/outgate/internal/audit"
	"github.com/outgate/outgate/internal/config"
	"github.com/outgate/outgate/internal/core"
	"github.com/outgate/outgate/internal/egress"
	"github.com/outgate/outgate/internal/idempotency"
	"github.com/outgate/outgate/internal/limits"
	"github.com/outgate/outgate/internal/metrics"
	"github.com/outgate/outgate/internal/proxy"
	"github.com/outgate/outgate/internal/relay"
	"github.com/outgate/outgate/internal/secrets"
)

// Options configure Run.
type Options struct {
	ConfigPath string
	// LogOutput receives the JSON log and audit lines (default: stderr).
	LogOutput io.Writer
	// Reload asks for the config to be read again (SIGHUP in the command).
	Reload <-chan struct{}
	// Ready, if set, is called once every listener is bound.
	Ready func(Addrs)
	// Secrets reach the config's ${secret:...} references (the zero
	// value: env and file only).
	Secrets secrets.Sources
	// TLS, when set, makes the relay and proxy listeners serve TLS with it
	// whatever the config's tls and proxy_tls say: instance mode gets its
	// certificates from an ACME CA (internal/acme) or the deployment's own
	// CA (internal/ownca) through its GetCertificate. Each listener uses a
	// clone with TLS 1.2 at least and its own application protocols (h2
	// on the relay's alone); protocols of the config other than h2 and
	// http/1.1 (acme-tls/1, for the ACME CA's TLS-ALPN-01 challenge) are
	// kept.
	TLS *tls.Config
	// PlainListen, when set, is one more listener serving relay and proxy
	// (by request form, like a shared listener) in plain HTTP beside the
	// TLS ones: instance mode with `up --plain-http`. Its connections count
	// against the same connection limit.
	PlainListen string
	// Reach, when set, are the addresses at which this machine's
	// listeners on 0.0.0.0 or :: are reached: its interface addresses and
	// any address NAT'd to it (an Elastic IP). The egress policy refuses
	// those (and loopback) on the listener's port, so no request loops
	// back into the gateway, and lets every other address on that port
	// through. Unset, any address on the port of an unspecified listener
	// counts as the gateway itself (the safe rule when what is NAT'd to
	// the machine is unknown), which would refuse every HTTPS partner to a
	// gateway listening on :443, as instance mode does.
	Reach []netip.Addr
	// Gate, if set, is asked before every relay and proxy request (CONNECT
	// included) and by /readyz: while it returns an error, the request is
	// refused with 503 egress_unverified before anything leaves, and
	// /readyz answers 503. Instance mode closes it until its egress IP is
	// proven to be one of the deployment's.
	Gate func() error
	// IPv4Only refuses every call to an IPv6 address (relay, proxy,
	// CONNECT and the egress check): instance mode, whose deployment IPs
	// are IPv4 and whose subnet may be dual-stack.
	IPv4Only bool
	// Override, if set, changes every config read (at start and on each
	// reload) before it is validated: instance mode sets the listeners
	// from its settings.
	Override func(*config.Config)
	// Started, if set, is called once every listener is bound (after
	// Ready) with what an agent beside the gateway needs of it.
	Started func(Running)
}

// Running is the running gateway, as an agent beside it sees it.
type Running struct {
	Addrs Addrs
	// EgressIP asks the current config's egress_check_url through the way
	// out of client traffic (address policy, CA roots, timeouts), and
	// returns the IP it answers: the address calls leave from.
	EgressIP func(context.Context) (netip.Addr, error)
	// EndTunnels closes every CONNECT tunnel open now and returns how
	// many: the gate refuses requests from the moment it closes, but a
	// tunnel opened before is one long request, so an agent that finds
	// the egress wrong ends them too.
	EndTunnels func() int
}

// Addrs are the bound listener addresses ("" when a listener is off).
type Addrs struct{ Relay, Proxy, Admin, Plain string }

type gateway struct {
	path    string
	log     *slog.Logger
	audit   io.Writer
	level   *slog.LevelVar
	metrics *metrics.Metrics
	self    []netip.AddrPort
	core    atomic.Pointer[core.Core]
	ready   atomic.Bool
	tunnels proxy.Tunnels
	conns   *limits.Conns
	admin   *limits.Conns // the admin listener's own, apart from clients'
	dials   atomic.Int64  // upstream connections opened, across reloads

	secrets  secrets.Sources // where the config's ${secret:...} references are read
	gate     func() error    // Options.Gate
	ipv4Only bool            // Options.IPv4Only
	override func(*config.Config)
	// idem is the idempotency store, opened once an upstream needs it and
	// kept across reloads; idemConf the settings it was opened with.
	idem     idempotency.Store
	idemConf config.IdempotencyStore
}

// adminMaxConns bounds the admin listener on its own, so metrics can be
// scraped while the client listeners are full.
const adminMaxConns = 64

// fdReserve is what the connection limit leaves of the open-file limit:
// the upstream keep-alive pool (egress.MaxIdleConns) plus listeners, logs
// and DNS.
const fdReserve = egress.MaxIdleConns + 64

// maxConns is limits.max_connections, or what the open-file limit allows
// when it is not set. A configured value that does not fit is kept (the
// operator may know better) but logged, since running out of descriptors
// fails every accept and every upstream dial.
func (g *gateway) maxConns(configured int) int {
	nofile := openFileLimit()
	fits := limits.DefaultConns(nofile, fdReserve)
	eff := fits
	if configured != 0 {
		eff = configured
	}
	if nofile < 4096 {
		g.log.Warn("the open-file limit is low for a gateway: each connection needs two descriptors; raise it (systemd LimitNOFILE=, docker --ulimit nofile=)",
			"open_file_limit", nofile, "max_connections", eff)
	}
	if configured == 0 {
		return fits
	}
	if configured > fits {
		g.log.Warn("limits.max_connections is more than the open-file limit allows; raise it (systemd LimitNOFILE=, docker --ulimit nofile=)",
			"max_connections", configured, "open_file_limit", nofile, "fits", fits)
	}
	return configured
}

func limitListener(c *limits.Conns, l net.Listener) net.Listener {
	if l == nil {
		return nil
	}
	return c.Listener(l)
}

// Run serves until ctx is cancelled, then shuts down within the configured
// grace period and returns nil. It returns an error if it cannot start.
func Run(ctx context.Context, o Options) error {
	if o.LogOutput == nil {
		o.LogOutput = os.Stderr
	}
	// Log and audit lines share one buffered writer, flushed every 100ms
	// and on the way out.
	bw := audit.NewBufferedWriter(o.LogOutput, 100*time.Millisecond)
	defer bw.Close()
	var out io.Writer = bw
	cfg, err := config.LoadWith(o.ConfigPath, o.Override)
	if err != nil {
		return err
	}
	level := new(slog.LevelVar)
	level.Set(parseLevel(cfg.Log.Level))
	g := &gateway{
		path:  o.ConfigPath,
		log:   slog.New(slog.NewJSONHandler(out, &slog.HandlerOptions{Level: level})),
		audit: out,
		level: level,
	}
	g.secrets, g.gate, g.override, g.ipv4Only = o.Secrets, o.Gate, o.Override, o.IPv4Only
	g.logWarnings(cfg)
	g.conns = limits.NewConns(g.maxConns(cfg.Limits.Resolved.MaxConnections))
	g.conns.SetRules(connRules(cfg.Limits.Resolved, g.conns.Max()))
	g.metrics = metrics.New(metrics.Sources{Tunnels: g.tunnels.Count, ConnsOpen: g.conns.Open, ConnsMax: g.conns.Max, ConnWaits: g.conns.Waits,
		ConnsRefused: g.conns.Refused, Dials: g.dials.Load})
	g.metrics.LastReload.SetToCurrentTime()
	g.admin = limits.NewConns(adminMaxConns)
	g.admin.SetRules(adminRules(cfg.Limits.Resolved))
	if g.idem, err = openIdempotency(cfg); err != nil {
		return err
	}
	g.idemConf = cfg.IdempotencyStore
	defer func() {
		if g.idem != nil {
			g.idem.Close()
		}
	}()

	var lns []net.Listener
	closeAll := func() {
		for _, l := range lns {
			l.Close()
		}
	}
	listen := func(name, addr string) (net.Listener, error) {
		if addr == "" {
			return nil, nil
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("%s %s: %w", name, addr, err)
		}
		lns = append(lns, l)
		if ap, err := netip.ParseAddrPort(l.Addr().String()); err == nil {
			if ap.Addr().IsUnspecified() && o.Reach != nil {
				// Loopback reaches a wildcard socket whatever Reach says.
				for _, a := range append([]netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback()}, o.Reach...) {
					g.self = append(g.self, netip.AddrPortFrom(a.Unmap(), ap.Port()))
				}
			} else {
				g.self = append(g.self, ap)
			}
		}
		return l, nil
	}
	relayLn, err := listen("listen", cfg.Listen)
	if err != nil {
		return err
	}
	tlsOn := cfg.TLS.Enabled()
	// One listener for both (proxy_listen equal to listen): the relay's
	// listener takes proxy requests too, by their form (oneListener).
	shared := cfg.SharedListener()
	var proxyLn net.Listener
	if !shared {
		if proxyLn, err = listen("proxy_listen", cfg.ProxyListen); err != nil {
			return err
		}
	}
	adminLn, err := listen("admin_listen", cfg.AdminListen)
	if err != nil {
		return err
	}
	plainLn, err := listen("plain listener", o.PlainListen)
	if err != nil {
		return err
	}
	// Bound connections before TLS, so a handshake holds a slot too.
	relayLn, proxyLn = limitListener(g.conns, relayLn), limitListener(g.conns, proxyLn)
	plainLn = limitListener(g.conns, plainLn)
	adminLn = limitListener(g.admin, adminLn)
	c, err := g.build(cfg)
	if err != nil {
		closeAll()
		return err
	}
	g.core.Store(c)

	lim := cfg.Limits.Resolved
	errLog := slog.NewLogLogger(g.log.Handler(), slog.LevelWarn)
	newServer := func(h http.Handler) *http.Server {
		return &http.Server{
			Handler:           h,
			ReadHeaderTimeout: lim.ReadHeaderTimeout,
			ReadTimeout:       lim.ReadTimeout,
			IdleTimeout:       lim.IdleTimeout,
			MaxHeaderBytes:    int(lim.MaxHeaderBytes),
			ErrorLog:          errLog,
			// Handlers reach their connection's rules through the context:
			// an authenticated request keeps it open, a stalled write
			// marks the response truncated.
			ConnContext: limits.WithConn,
		}
	}
	current := g.core.Load
	var servers []*http.Server
	serveErr := make(chan error, 4)
	serve := func(l net.Listener, s *http.Server) {
		if l == nil {
			return
		}
		servers = append(servers, s)
		go func() {
			if err := s.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				serveErr <- err
			}
		}()
	}
	// Certificates come from the current Core, so a reload rotates them.
	relayCert := func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return g.core.Load().Cert, nil }
	proxyCert := func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return g.core.Load().ProxyCert, nil }
	// A forward proxy speaks HTTP/1.1 only (CONNECT over HTTP/2 is another
	// protocol, and tunnels hijack the connection), so a listener that
	// takes proxy requests offers HTTP/1.1 alone, the shared one too.
	relayProtos := []string{"h2", "http/1.1"}
	if shared {
		relayProtos = []string{"http/1.1"}
	}
	switch {
	case o.TLS != nil:
		relayLn = tls.NewListener(relayLn, listenerTLS(o.TLS, relayProtos))
		if proxyLn != nil {
			proxyLn = tls.NewListener(proxyLn, listenerTLS(o.TLS, []string{"http/1.1"}))
		}
	default:
		if tlsOn {
			relayLn = tls.NewListener(relayLn, &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: relayProtos, GetCertificate: relayCert})
		}
		if proxyLn != nil && cfg.ProxyTLS.Enabled() {
			proxyLn = tls.NewListener(proxyLn, &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}, GetCertificate: proxyCert})
		}
	}
	// Every handler is behind the gate (instance mode's egress proof): the
	// relay's, the proxy's, and both on a shared or plain listener.
	relayH := g.gated("relay", &relay.Handler{Core: current})
	proxyH := g.gated("proxy", &proxy.Handler{Core: current, Tunnels: &g.tunnels, Gate: g.gate})
	if shared {
		relayH = oneListener{relay: relayH, proxy: proxyH}
	}
	relaySrv := newServer(relayH)
	if shared {
		relaySrv.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){}
	}
	serve(relayLn, relaySrv)
	proxySrv := newServer(proxyH)
	proxySrv.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){}
	serve(proxyLn, proxySrv)
	serve(plainLn, newServer(oneListener{relay: g.gated("relay", &relay.Handler{Core: current}), proxy: proxyH}))
	// The admin server is kept apart: it closes last, so /readyz can say
	// 503 for the whole grace period.
	adminSrv := newServer(g.adminHandler())
	if adminLn != nil {
		go func() {
			if err := adminSrv.Serve(adminLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				serveErr <- err
			}
		}()
	}

	addrs := Addrs{}
	for _, p := range []struct {
		l   net.Listener
		dst *string
	}{{relayLn, &addrs.Relay}, {proxyLn, &addrs.Proxy}, {adminLn, &addrs.Admin}, {plainLn, &addrs.Plain}} {
		if p.l != nil {
			*p.dst = p.l.Addr().String()
		}
	}
	if shared {
		addrs.Proxy = addrs.Relay
	}
	g.ready.Store(true)
	g.log.Info("outgate serving", "listen", addrs.Relay, "proxy_listen", addrs.Proxy, "admin_listen", addrs.Admin, "plain_listen", addrs.Plain,
		"config", o.ConfigPath, "clients", len(cfg.Clients), "upstreams", len(cfg.Upstreams), "max_connections", g.conns.Max())
	if o.Ready != nil {
		o.Ready(addrs)
	}
	if o.Started != nil {
		o.Started(Running{Addrs: addrs, EgressIP: g.egressIP, EndTunnels: g.tunnels.CloseAll})
	}

	for {
		select {
		case <-ctx.Done():
			g.shutdown(servers, adminSrv)
			return nil
		case <-o.Reload:
			g.reload()
		case err := <-serveErr:
			g.shutdown(servers, adminSrv)
			return fmt.Errorf("serving: %w", err)
		}
	}
}

// oneListener serves relay and proxy on one listener (proxy_listen equal to
// listen), choosing by the request's form alone, which the client cannot
// blur: CONNECT (authority-form) and absolute-form requests are proxy
// requests, everything else (origin-form, "*") goes to the relay. Neither
// handler trusts the other's credentials: a proxy request without
// Proxy-Authorization gets 407 whatever Outgate-Key it carries, and a relay
// request without Outgate-Key gets 401 whatever Proxy-Authorization it
// carries. Host is not looked at: origin-form with any Host is a relay
// request, and absolute-form naming the gateway itself is a proxy request
// to an address the egress policy refuses (the gateway's own listeners).
type oneListener struct{ relay, proxy http.Handler }

func (h oneListener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodConnect || r.URL.IsAbs() {
		h.proxy.ServeHTTP(w, r)
		return
	}
	h.relay.ServeHTTP(w, r)
}

// listenerTLS is Options.TLS for one listener: a clone, TLS 1.2 at least,
// offering protos and the given config's other protocols (acme-tls/1).
func listenerTLS(base *tls.Config, protos []string) *tls.Config {
	c := base.Clone()
	if c.MinVersion < tls.VersionTLS12 {
		c.MinVersion = tls.VersionTLS12
	}
	next := append([]string(nil), protos...)
	for _, p := range base.NextProtos {
		if p != "h2" && p != "http/1.1" {
			next = append(next, p)
		}
	}
	c.NextProtos = next
	return c
}

func (g *gateway) build(cfg *config.Config) (*core.Core, error) {
	idem, err := g.idempotencyFor(cfg)
	if err != nil {
		return nil, err
	}
	return core.New(cfg, core.Deps{Log: g.log, Audit: g.audit, OnFinish: g.metrics.Observe, Self: g.self, IPv4Only: g.ipv4Only, OnConnect: func() { g.dials.Add(1) }, Secrets: g.secrets,
		OnSecretRefresh: g.secretRefreshed, Idempotency: idem})
}

// secretRefreshed counts a refresh of the partner secrets.
func (g *gateway) secretRefreshed(err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	g.metrics.SecretRefreshes.WithLabelValues(result).Inc()
}

// logWarnings logs what `config check` would warn about (a loopback or cloud
// metadata destination), so an operator who never ran it still sees it.
func (g *gateway) logWarnings(cfg *config.Config) {
	for _, w := range cfg.Warnings {
		g.log.Warn("config warning", "warning", cfg.Warning(w))
	}
}

// reload reads the config again. A config that fails validation, or changes
// what cannot change while running, is refused and the old one keeps serving.
func (g *gateway) reload() {
	old := g.core.Load()
	fail := func(err error) {
		g.metrics.Reloads.WithLabelValues("error").Inc()
		g.log.Error("config reload refused; the previous config keeps serving", "config", g.path, "error", err.Error())
	}
	cfg, err := config.LoadWith(g.path, g.override)
	if err != nil {
		fail(err)
		return
	}
	o := old.Config
	if cfg.Listen != o.Listen || cfg.ProxyListen != o.ProxyListen || cfg.AdminListen != o.AdminListen ||
		cfg.TLS.Enabled() != o.TLS.Enabled() || cfg.ProxyTLS.Enabled() != o.ProxyTLS.Enabled() {
		fail(errors.New("listen, proxy_listen and admin_listen and turning tls or proxy_tls on or off cannot change on reload; restart outgate for that"))
		return
	}
	if cfg.Limits.Resolved.ReadHeaderTimeout != o.Limits.Resolved.ReadHeaderTimeout ||
		cfg.Limits.Resolved.ReadTimeout != o.Limits.Resolved.ReadTimeout ||
		cfg.Limits.Resolved.IdleTimeout != o.Limits.Resolved.IdleTimeout ||
		cfg.Limits.Resolved.MaxHeaderBytes != o.Limits.Resolved.MaxHeaderBytes {
		g.log.Warn("server timeouts and max_header apply after a restart; the other changes are live")
	}
	c, err := g.build(cfg)
	if err != nil {
		fail(err)
		return
	}
	c.Inherit(old)
	g.core.Store(c)
	g.conns.SetMax(g.maxConns(cfg.Limits.Resolved.MaxConnections))
	g.conns.SetRules(connRules(cfg.Limits.Resolved, g.conns.Max()))
	g.admin.SetRules(adminRules(cfg.Limits.Resolved))
	g.level.Set(parseLevel(cfg.Log.Level))
	old.Close()
	g.metrics.Reloads.WithLabelValues("ok").Inc()
	g.metrics.LastReload.SetToCurrentTime()
	g.log.Info("config reloaded", "config", g.path, "clients", len(cfg.Clients), "upstreams", len(cfg.Upstreams))
	g.logWarnings(cfg)
}

// connRules are what a client connection owes for its slot.
func connRules(lim config.ResolvedLimits, maxConns int) limits.ConnRules {
	perIP := lim.MaxConnectionsPerIP
	if perIP == 0 {
		perIP = config.PerIPConns(maxConns)
	}
	return limits.ConnRules{PerSource: perIP, AuthTimeout: lim.AuthTimeout, WriteIdle: lim.WriteIdleTimeout}
}

// adminRules: the admin listener has no keys to wait for, but a scraper
// that stops reading must not keep one of its few slots either, and one
// address (any host that can reach the port, with idle or kept-alive
// sockets) must not hold all of them, or the load balancer's /readyz waits
// behind it and the gateway is taken out of service.
func adminRules(lim config.ResolvedLimits) limits.ConnRules {
	return limits.ConnRules{PerSource: adminPerSource, WriteIdle: lim.WriteIdleTimeout}
}

// adminPerSource leaves three quarters of the admin slots to other
// addresses: a scraper needs one connection, a health checker one or two.
const adminPerSource = adminMaxConns / 4

// shutdown drains: /readyz turns 503 at once (load balancers stop sending),
// requests and tunnels in flight get the grace period, and the admin server
// goes last, so health checks see the drain from start to end.
func (g *gateway) shutdown(servers []*http.Server, admin *http.Server) {
	g.tunnels.Refuse()
	g.ready.Store(false)
	grace := g.core.Load().Config.Limits.Resolved.ShutdownGrace
	g.log.Info("shutting down", "grace", grace.String())
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	var wg sync.WaitGroup
	for _, s := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Shutdown(ctx); err != nil {
				s.Close()
			}
		}()
	}
	wg.Add(1)
	go func() { defer wg.Done(); g.tunnels.Shutdown(ctx) }()
	wg.Wait()
	// Nothing is left to report on; a scrape in progress may finish.
	actx, acancel := context.WithTimeout(context.Background(), time.Second)
	defer acancel()
	if err := admin.Shutdown(actx); err != nil {
		admin.Close()
	}
	g.core.Load().Close()
	g.log.Info("stopped")
}

func (g *gateway) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", g.metrics.Handler())
	mux.HandleFunc("POST "+AdminClearPath, g.clearHandler)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !g.ready.Load() {
			http.Error(w, "shutting down", http.StatusServiceUnavailable)
			return
		}
		if g.gate != nil {
			if err := g.gate(); err != nil {
				http.Error(w, "egress unverified: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		io.WriteString(w, "ready\n")
	})
	return mux
}

func parseLevel(s string) slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return slog.LevelInfo
	}
	return l
}
