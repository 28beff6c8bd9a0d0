// Package instancetls picks an instance's certificate source from its
// settings, so the agent (internal/instance) and the stack that writes the
// settings (internal/deploy) agree on one rule: with a domain, the ACME
// certificate kept in the deployment's S3 prefix (internal/acme); without
// one, a certificate for the deployment's IPs from its own CA in SSM
// (internal/ownca). The agent hands Source.TLS to server.Options.TLS,
// starts Source.Start once the listener serves (the ACME CA's validation
// connects to it), and adds Source.Ready to its readiness gate.
package instancetls

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net/netip"

	"github.com/outgate/outgate/internal/acme"
	"github.com/outgate/outgate/internal/ownca"
)

// Params are the TLS fields of instance.Settings (same names), and the
// deployment's IPs (the own CA's certificate names them).
type Params struct {
	// Deployment names the deployment: CertPrefix defaults to
	// acme.Prefix(Deployment).
	Deployment      string
	Domain          string
	ACMECA          string
	ACMEEmail       string
	CertBucket      string
	CertPrefix      string
	CACertParameter string
	CAKeyParameter  string
	IPs             []netip.Addr
	// Log receives the ACME library's log lines (JSON).
	Log io.Writer
}

// Source is an instance's certificate source.
type Source struct {
	// TLS is server.Options.TLS.
	TLS *tls.Config
	// Start gets the certificate where that needs the listener (ACME), in
	// the background with retries: it returns at once and Ready says when
	// a certificate is served. Call it after the server's Ready (the
	// CA's validation connects to the listener); ctx ends the renewals.
	Start func(ctx context.Context) error
	// Ready is nil once a certificate is served (the readiness gate).
	Ready func() error
	// Stop ends background renewal.
	Stop func()
	// SetIPs changes the addresses of the own CA's certificate (nil with
	// a domain).
	SetIPs func([]netip.Addr) error
}

// New builds the source the settings call for. s3 is used with a domain,
// ssm without one; the other may be nil.
func New(ctx context.Context, p Params, s3 acme.S3, ssm ownca.Reader) (*Source, error) {
	if p.Domain != "" {
		if s3 == nil || p.CertBucket == "" {
			return nil, errors.New("a domain's certificate needs the S3 bucket that keeps it (cert_bucket)")
		}
		if p.CertPrefix == "" {
			if p.Deployment == "" {
				return nil, errors.New("a domain's certificate needs its place in the bucket (cert_prefix, or the deployment)")
			}
			p.CertPrefix = acme.Prefix(p.Deployment)
		}
		m, err := acme.New(acme.Options{Domain: p.Domain, CA: p.ACMECA, Email: p.ACMEEmail,
			Storage: acme.NewStorage(s3, p.CertBucket, p.CertPrefix), Log: p.Log})
		if err != nil {
			return nil, err
		}
		return &Source{TLS: m.TLSConfig(), Start: m.ManageAsync, Ready: m.Ready, Stop: m.Stop}, nil
	}
	if ssm == nil || p.CACertParameter == "" || p.CAKeyParameter == "" {
		return nil, errors.New("without a domain the instance needs the deployment's CA parameters (ca_cert_parameter, ca_key_parameter)")
	}
	ca, err := ownca.Load(ctx, ssm, p.CACertParameter, p.CAKeyParameter)
	if err != nil {
		return nil, err
	}
	mint, err := ownca.NewMinter(ca, p.IPs)
	if err != nil {
		return nil, err
	}
	return &Source{
		TLS:    mint.TLSConfig(),
		Start:  func(context.Context) error { return nil },
		Ready:  func() error { return nil },
		Stop:   func() {},
		SetIPs: mint.SetIPs,
	}, nil
}
