// Package acme gets and renews the certificate of an instance-mode
// deployment's domain (`up --mode instance --domain gw.example.com`) from
// an ACME CA (Let's Encrypt unless told otherwise), and keeps it in the
// deployment's S3 staging bucket (Storage), where every instance finds it.
//
// Why certmagic and not x/crypto/acme/autocert: a deployment runs one
// instance per AZ behind one name, and instances are replaced. autocert's
// Cache shares certificates but not the work: each instance would order on
// its own (rate limits), and a challenge is answered only by the instance
// that started the order, while the CA may reach another one (the name
// resolves to all of them). certmagic takes a lock in shared storage around
// each order, so one instance orders and the others load its result, and
// it keeps each challenge's token in that storage, so whichever instance
// the CA reaches answers it (distributed solving). It also renews in the
// background and honours the CA's renewal information.
//
// Only the TLS-ALPN-01 challenge is used: it is answered on the same :443
// listener as relay and proxy traffic (the acme-tls/1 protocol of the
// handshake), so no plain HTTP port has to be open.
package acme

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// LetsEncrypt is the default CA's directory.
const LetsEncrypt = certmagic.LetsEncryptProductionCA

// Options configure a Manager.
type Options struct {
	// Domain is the one name certified.
	Domain string
	// CA is the ACME directory URL (LetsEncrypt when empty).
	CA string
	// Email is the account's contact (optional: expiry notices).
	Email string
	// Storage holds certificates, keys, the account and challenge tokens.
	Storage certmagic.Storage
	// Roots, when set, are the roots trusted for the CA's own HTTPS (a
	// private or test CA); the system roots otherwise.
	Roots *x509.CertPool
	// TLSALPNPort is the port the CA's validation connects to, when it is
	// not 443 (tests).
	TLSALPNPort int
	// Log receives certmagic's log lines as JSON (io.Discard when nil).
	Log io.Writer
	// RenewCheckInterval is how often the certificate is checked for
	// renewal (certmagic's 10 minutes when zero; tests with short-lived
	// certificates use less).
	RenewCheckInterval time.Duration
}

// Manager holds a domain's certificate.
type Manager struct {
	cfg    *certmagic.Config
	cache  *certmagic.Cache
	domain string
}

// New sets up the manager; nothing is ordered until Manage.
func New(o Options) (*Manager, error) {
	if o.Domain == "" {
		return nil, errors.New("acme: a domain is required")
	}
	if o.Storage == nil {
		return nil, errors.New("acme: a storage is required")
	}
	if o.CA == "" {
		o.CA = LetsEncrypt
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	logger := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(o.Log), zap.InfoLevel))
	var cfg *certmagic.Config
	cache := certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert:   func(certmagic.Certificate) (*certmagic.Config, error) { return cfg, nil },
		Logger:             logger,
		RenewCheckInterval: o.RenewCheckInterval,
	})
	cfg = certmagic.New(cache, certmagic.Config{Storage: o.Storage, Logger: logger})
	issuer := certmagic.NewACMEIssuer(cfg, certmagic.ACMEIssuer{
		CA:                   o.CA,
		Email:                o.Email,
		Agreed:               true,
		DisableHTTPChallenge: true,
		AltTLSALPNPort:       o.TLSALPNPort,
		TrustedRoots:         o.Roots,
		Logger:               logger,
	})
	cfg.Issuers = []certmagic.Issuer{issuer}
	return &Manager{cfg: cfg, cache: cache, domain: o.Domain}, nil
}

// TLSConfig is the listeners' config (server.Options.TLS): the domain's
// certificate, and the CA's TLS-ALPN-01 challenges answered from storage.
// TLS 1.2 at least.
func (m *Manager) TLSConfig() *tls.Config {
	c := m.cfg.TLSConfig()
	c.MinVersion = tls.VersionTLS12
	return c
}

// Manage loads the domain's certificate from storage, or orders it (under
// the storage's lock, so one instance orders while the others wait and
// load it), and keeps it renewed in the background. Call it once the
// listener serves TLSConfig: the CA's validation connects to it.
func (m *Manager) Manage(ctx context.Context) error {
	if err := m.cfg.ManageSync(ctx, []string{m.domain}); err != nil {
		return fmt.Errorf("certificate for %s: %w", m.domain, err)
	}
	return nil
}

// ManageAsync is Manage in the background, with certmagic's retries when
// the CA cannot be reached or refuses (after 1 minute, then backing off to
// 6 hours between attempts, for up to 30 days): it returns at once, and Ready says when a certificate is
// served. An instance starts this way, so a CA that is down delays its
// readiness instead of failing its start.
func (m *Manager) ManageAsync(ctx context.Context) error {
	if err := m.cfg.ManageAsync(ctx, []string{m.domain}); err != nil {
		return fmt.Errorf("certificate for %s: %w", m.domain, err)
	}
	return nil
}

// Renew renews the certificate now, whether or not it is due (the CA
// revoked it, or an operator asks).
func (m *Manager) Renew(ctx context.Context) error {
	return m.cfg.RenewCertSync(ctx, m.domain, true)
}

// Ready is nil once a certificate for the domain is served, and says why
// not before (for the instance's readiness gate: no caller should meet a
// handshake failure).
func (m *Manager) Ready() error {
	for _, c := range m.cache.AllMatchingCertificates(m.domain) {
		if c.Leaf != nil && time.Now().Before(c.Leaf.NotAfter) {
			return nil
		}
	}
	return fmt.Errorf("no certificate for %s yet", m.domain)
}

// Prefix is where deployment keeps its certificates in the staging bucket
// (the design's s3://BUCKET/DEPLOYMENT/certs/): shared by its instances,
// apart from every other deployment's.
func Prefix(deployment string) string { return deployment + "/certs/" }

// Stop ends the background renewal.
func (m *Manager) Stop() { m.cache.Stop() }
