// Package config reads and validates outgate's YAML configuration. Every
// problem is reported with file:line:column and the key's path, and all
// problems in a file are reported at once, so a user fixes them in one pass.
package config

import (
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/outgate/outgate/internal/hostname"
	"github.com/outgate/outgate/internal/secrets"
)

// Config is the configuration file's shape. Fields tagged yaml:"-" are filled
// by Load from the written ones, after validation.
type Config struct {
	Listen         string              `yaml:"listen"`
	ProxyListen    string              `yaml:"proxy_listen"`
	AdminListen    string              `yaml:"admin_listen"`
	EgressCheckURL string              `yaml:"egress_check_url"`
	Upstreams      map[string]Upstream `yaml:"upstreams"`
	Clients        []Client            `yaml:"clients"`
	Network        Network             `yaml:"network"`
	Limits         Limits              `yaml:"limits"`
	Log            Log                 `yaml:"log"`
	TLS            TLS                 `yaml:"tls"`
	// ProxyTLS makes proxy_listen an HTTPS proxy (https:// proxy URLs), so
	// the key in Proxy-Authorization never crosses a network in the clear.
	ProxyTLS TLS `yaml:"proxy_tls"`
	// Secrets configures how partner secrets are refreshed (secrets.go).
	Secrets Secrets `yaml:"secrets"`
	// IdempotencyStore keeps the records of upstreams' idempotency keys.
	IdempotencyStore IdempotencyStore `yaml:"idempotency_store"`

	// Source names where the config came from, for messages ("outgate.yaml").
	Source string `yaml:"-"`
	// Warnings are things a valid config does that are probably a mistake
	// (an upstream on loopback or a cloud metadata address...), in file
	// order; format each with Warning.
	Warnings []Problem `yaml:"-"`
	// SecretAt is where each ${secret:...} reference is first written,
	// so a secret that cannot be fetched is reported at its place.
	SecretAt map[secrets.Ref]Problem `yaml:"-"`
}

// Upstream is a relay route: /{name}/{rest} goes to URL + /{rest}.
type Upstream struct {
	URL string `yaml:"url"`
	// Timeout bounds the wait for the upstream's response headers
	// (default: limits.response_header_timeout).
	Timeout string `yaml:"timeout"`
	// ForwardHeaders names client headers that outgate drops by default
	// (X-Forwarded-*, Forwarded, Via, X-Real-Ip, ...) but this upstream
	// wants passed on as the client sent them. Stored canonical.
	ForwardHeaders []string `yaml:"forward_headers"`
	// AllowBodyOn lists the methods among GET, HEAD, OPTIONS and DELETE
	// whose requests may carry a body to this upstream (default: none).
	AllowBodyOn []string `yaml:"allow_body_on"`
	// InjectHeaders are set on every request to this upstream, from
	// secrets the gateway holds (secrets.go): the client's own copies of
	// these headers are removed first.
	InjectHeaders map[string]string `yaml:"inject_headers"`
	// ClientCert and ClientKey are the PEM certificate (chain) and key
	// the gateway presents to a partner that requires mutual TLS, each one
	// ${secret:...} reference.
	ClientCert string `yaml:"client_cert"`
	ClientKey  string `yaml:"client_key"`
	// Idempotency turns on idempotency keys for this upstream (nil: off).
	Idempotency *Idempotency `yaml:"idempotency"`

	Parsed        *url.URL      `yaml:"-"`
	HeaderTimeout time.Duration `yaml:"-"`

	// Partner is InjectHeaders, ClientCert and ClientKey, parsed.
	Partner PartnerSecrets `yaml:"-"`
}

// Client is one caller of the gateway and what it may reach.
type Client struct {
	Name string `yaml:"name"`
	// KeySHA256 holds one hex SHA-256 of the client's key, or a list of them
	// so a key can be rotated without downtime.
	KeySHA256 StringList   `yaml:"key_sha256"`
	Upstreams []string     `yaml:"upstreams"`
	Hosts     []string     `yaml:"hosts"`
	Limits    ClientLimits `yaml:"limits"`
	// RawTunnels are entries of Hosts that CONNECT may reach without TLS
	// (SFTP, SSH, SMTP). Other tunnels must open with a TLS ClientHello
	// whose name the client may reach.
	RawTunnels []string `yaml:"raw_tunnels"`

	KeyHashes [][32]byte         `yaml:"-"`
	Patterns  []hostname.Pattern `yaml:"-"`
	// RawPatterns are RawTunnels, parsed.
	RawPatterns []hostname.Pattern `yaml:"-"`
}

// ClientLimits override the global per-client limits for one client.
type ClientLimits struct {
	RequestsPerSecond *float64 `yaml:"requests_per_second"`
	Burst             *int     `yaml:"burst"`
	MaxConcurrent     *int     `yaml:"max_concurrent"`
	MaxTunnels        *int     `yaml:"max_tunnels"`
}

// Network is the egress address policy and how names are resolved.
type Network struct {
	// AllowCIDRs lets destinations through that the address policy blocks by
	// default (private, loopback, documentation ranges...). Use sparingly.
	AllowCIDRs []string `yaml:"allow_cidrs"`
	// Resolvers are DNS servers (ip:port) to use instead of the system's.
	Resolvers []string `yaml:"resolvers"`
	// CAFiles are PEM files of extra roots trusted for upstream TLS, next to
	// the system roots (for partners with a private CA).
	CAFiles []string `yaml:"ca_files"`

	Allow         []netip.Prefix   `yaml:"-"`
	ResolverAddrs []netip.AddrPort `yaml:"-"`
}

// Limits bound every resource the gateway hands out. None is unbounded.
type Limits struct {
	MaxBody               string `yaml:"max_body"`
	MaxHeader             string `yaml:"max_header"`
	ReadHeaderTimeout     string `yaml:"read_header_timeout"`
	ReadTimeout           string `yaml:"read_timeout"`
	IdleTimeout           string `yaml:"idle_timeout"`
	DialTimeout           string `yaml:"dial_timeout"`
	TLSHandshakeTimeout   string `yaml:"tls_handshake_timeout"`
	ResponseHeaderTimeout string `yaml:"response_header_timeout"`
	UpstreamIdleTimeout   string `yaml:"upstream_idle_timeout"`
	TunnelIdleTimeout     string `yaml:"tunnel_idle_timeout"`
	ShutdownGrace         string `yaml:"shutdown_grace"`
	AuthTimeout           string `yaml:"auth_timeout"`
	WriteIdleTimeout      string `yaml:"write_idle_timeout"`
	MaxConnections        *int   `yaml:"max_connections"`
	MaxConnectionsPerIP   *int   `yaml:"max_connections_per_ip"`

	RequestsPerSecond *float64 `yaml:"requests_per_second"`
	Burst             *int     `yaml:"burst"`
	MaxConcurrent     *int     `yaml:"max_concurrent"`
	MaxTunnels        *int     `yaml:"max_tunnels"`

	Resolved ResolvedLimits `yaml:"-"`
}

// ResolvedLimits are Limits with defaults applied and units parsed.
type ResolvedLimits struct {
	MaxBodyBytes          int64
	MaxHeaderBytes        int64
	ReadHeaderTimeout     time.Duration
	ReadTimeout           time.Duration
	IdleTimeout           time.Duration
	DialTimeout           time.Duration
	TLSHandshakeTimeout   time.Duration
	ResponseHeaderTimeout time.Duration
	UpstreamIdleTimeout   time.Duration
	TunnelIdleTimeout     time.Duration
	ShutdownGrace         time.Duration
	// AuthTimeout closes a client connection that has not carried an
	// authenticated request this long after it was opened.
	AuthTimeout time.Duration
	// WriteIdleTimeout cuts off a client that takes no byte of a response
	// (or tunnel data) for this long.
	WriteIdleTimeout time.Duration
	// MaxConnections bounds client connections across the relay and proxy
	// listeners; 0 means "as many as the process's open-file limit allows".
	MaxConnections int
	// MaxConnectionsPerIP bounds the client connections of one source
	// address (IPv6: one /64); 0 means the default, PerIPConns.
	MaxConnectionsPerIP int
	PerClient           PerClient
}

// PerClient are the limits each client gets (globally, or its own override).
type PerClient struct {
	RequestsPerSecond float64
	Burst             int
	MaxConcurrent     int
	MaxTunnels        int
}

// TLS makes a listener speak HTTPS (tls: the relay's, proxy_tls: the
// proxy's), so keys never cross a network in the clear. Files are read
// again on every reload (certificate rotation).
type TLS struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// SharedListener reports whether relay and proxy share one listener:
// proxy_listen spelled exactly as listen, with a port other than 0 (two
// ":0" addresses are two listeners on two free ports, as they always were).
// CONNECT and absolute-form requests then go to the proxy, origin-form
// ones to the relay; tls is that listener's certificate.
func (c *Config) SharedListener() bool {
	return c.ProxyListen != "" && c.ProxyListen == c.Listen && !strings.HasSuffix(c.Listen, ":0")
}

// Enabled reports whether the listener serves HTTPS.
func (t TLS) Enabled() bool { return t.CertFile != "" }

// Log configures the process log (audit lines are always JSON).
type Log struct {
	Level string `yaml:"level"`
}

// Defaults, chosen for a gateway that sits in front of payment and messaging
// APIs: Lambda's 6 MB payload limit for bodies, timeouts under API Gateway's
// 29-30 s so a client sees outgate's 504 rather than a front door's.
var Defaults = ResolvedLimits{
	MaxBodyBytes:          6 << 20,
	MaxHeaderBytes:        64 << 10,
	ReadHeaderTimeout:     10 * time.Second,
	ReadTimeout:           60 * time.Second,
	IdleTimeout:           90 * time.Second,
	DialTimeout:           10 * time.Second,
	TLSHandshakeTimeout:   10 * time.Second,
	ResponseHeaderTimeout: 25 * time.Second,
	UpstreamIdleTimeout:   60 * time.Second,
	TunnelIdleTimeout:     5 * time.Minute,
	ShutdownGrace:         25 * time.Second,
	AuthTimeout:           10 * time.Second,
	WriteIdleTimeout:      30 * time.Second,
	PerClient: PerClient{
		RequestsPerSecond: 50,
		Burst:             100,
		MaxConcurrent:     64,
		MaxTunnels:        128,
	},
}

// PerIPConns is limits.max_connections_per_ip when it is not set: half of
// max_connections, so no one address can take more than half of the slots,
// while a fleet of functions behind one NAT address still gets plenty.
func PerIPConns(maxConns int) int {
	return max(1, maxConns/2)
}

// DefaultEgressCheckURL answers with the caller's public IP as plain text.
const DefaultEgressCheckURL = "https://checkip.amazonaws.com"

// Client returns the client with this name, or nil.
func (c *Config) Client(name string) *Client {
	for i := range c.Clients {
		if c.Clients[i].Name == name {
			return &c.Clients[i]
		}
	}
	return nil
}

// Effective returns the client's limits: its own overrides on the global ones.
func (c *Client) Effective(global PerClient) PerClient {
	p := global
	if v := c.Limits.RequestsPerSecond; v != nil {
		p.RequestsPerSecond = *v
	}
	if v := c.Limits.Burst; v != nil {
		p.Burst = *v
	}
	if v := c.Limits.MaxConcurrent; v != nil {
		p.MaxConcurrent = *v
	}
	if v := c.Limits.MaxTunnels; v != nil {
		p.MaxTunnels = *v
	}
	return p
}
