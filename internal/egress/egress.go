// Package egress builds the one way out of the gateway: two HTTP clients and
// a dialer whose every connection passes the address policy, verifies TLS
// and is bounded in time. Relay, proxy and whoami all leave through it.
//
// Requests go to the lean HTTP/1.1 client (internal/h1) when it can carry
// them: plain http upstreams, and https upstreams that answered over
// HTTP/1.1 when offered HTTP/2. Everything else (HTTP/2 partners, an https
// upstream's first request, streamed or large bodies) goes through
// http.Transport.
package egress

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
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
	Dialer    *netguard.Dialer
	Transport *http.Transport
	H1        *h1.Client

	mu      sync.Mutex
	h1Hosts map[string]bool // https host:ports that answered over HTTP/1.1
}

// New builds the dialer and transport. self lists the gateway's own
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
	t := &http.Transport{
		// Never an environment proxy: the gateway is the proxy.
		Proxy:                  nil,
		DialContext:            d.DialContext,
		TLSClientConfig:        tlsConf,
		TLSHandshakeTimeout:    lim.TLSHandshakeTimeout,
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           MaxIdleConns / 4,
		MaxIdleConnsPerHost:    256,
		IdleConnTimeout:        upstreamIdle,
		MaxResponseHeaderBytes: 1 << 20,
		// Bodies pass through as the partner sent them: no transparent gzip.
		DisableCompression: true,
	}
	c := &h1.Client{
		Dial:                d.DialContext,
		TLS:                 tlsConf,
		TLSHandshakeTimeout: lim.TLSHandshakeTimeout,
		MaxIdle:             MaxIdleConns - t.MaxIdleConns,
		MaxIdlePerHost:      t.MaxIdleConnsPerHost,
		IdleTimeout:         t.IdleConnTimeout,
		MaxHeaderBytes:      t.MaxResponseHeaderBytes,
	}
	return &Egress{Dialer: d, Transport: t, H1: c}, nil
}

// upstreamIdle is how long an upstream connection may wait idle for reuse.
// It is shorter than the idle timeout of the load balancer most partners
// sit behind (AWS ALB: 60 s), so outgate closes first: a partner closing a
// connection just as a request goes out on it is the one failure a POST
// cannot be retried from.
const upstreamIdle = 50 * time.Second

// MaxIdleConns bounds the upstream keep-alive pools across all upstreams:
// a quarter for http.Transport (HTTP/2 needs few connections), the rest for
// the HTTP/1.1 client.
const MaxIdleConns = 1024

// maxLearned bounds the memory of which https upstreams speak HTTP/1.1;
// past it, new ones stay on http.Transport.
const maxLearned = 4096

// RoundTrip sends req through the HTTP/1.1 client when it can carry it,
// else through http.Transport. Neither follows redirects.
func (e *Egress) RoundTrip(req *http.Request) (*http.Response, error) {
	if h1.Eligible(req) && (req.URL.Scheme == "http" || e.speaksH1(req.URL.Host)) {
		return e.H1.RoundTrip(req)
	}
	resp, err := e.Transport.RoundTrip(req)
	if err == nil && req.URL.Scheme == "https" && resp.ProtoMajor == 1 {
		e.learnH1(req.URL.Host)
	}
	return resp, err
}

func (e *Egress) speaksH1(host string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.h1Hosts[host]
}

func (e *Egress) learnH1(host string) {
	e.mu.Lock()
	if e.h1Hosts == nil {
		e.h1Hosts = map[string]bool{}
	}
	learned := !e.h1Hosts[host] && len(e.h1Hosts) < maxLearned
	if learned {
		e.h1Hosts[host] = true
	}
	e.mu.Unlock()
	if learned {
		// Requests that raced the first answer left HTTP/1.1 connections
		// in the Transport's pool that nothing will use again (each with two
		// goroutines). The Transport can only close all its idle
		// connections; that happens once per upstream and config, and
		// costs HTTP/2 partners at most one new connection.
		e.Transport.CloseIdleConnections()
	}
}

// CloseIdleConnections closes both pools' idle connections (a replaced
// config's egress winds down).
func (e *Egress) CloseIdleConnections() {
	e.Transport.CloseIdleConnections()
	e.H1.CloseIdleConnections()
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
