// Package egress builds the one way out of the gateway: an http.Transport and
// a dialer whose every connection passes the address policy, verifies TLS
// and is bounded in time. Relay, proxy and whoami all leave through it.
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
	"sync/atomic"
	"time"

	"github.com/outgate/outgate/internal/config"
	"github.com/outgate/outgate/internal/netguard"
)

// Egress is the outbound side built from one config.
type Egress struct {
	Dialer    *netguard.Dialer
	Transport *http.Transport
}

// New builds the dialer and transport. self lists the gateway's own
// listeners, which are never a valid destination.
func New(cfg *config.Config, self []netip.AddrPort) (*Egress, error) {
	lim := cfg.Limits.Resolved
	d := &netguard.Dialer{
		Policy:    &netguard.Policy{Allow: cfg.Network.Allow, Self: self},
		Resolver:  resolver(cfg.Network.ResolverAddrs, lim.DialTimeout),
		Timeout:   lim.DialTimeout,
		KeepAlive: 30 * time.Second,
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
		MaxIdleConns:           MaxIdleConns,
		MaxIdleConnsPerHost:    256,
		IdleConnTimeout:        90 * time.Second,
		MaxResponseHeaderBytes: 1 << 20,
		// Bodies pass through as the partner sent them: no transparent gzip.
		DisableCompression: true,
	}
	return &Egress{Dialer: d, Transport: t}, nil
}

// MaxIdleConns bounds the upstream keep-alive pool across all upstreams.
const MaxIdleConns = 1024

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
