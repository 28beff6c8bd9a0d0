// Package ownca is a deployment's own certificate authority, for instance
// mode without a domain: the gateway is reached by IP address, which no
// public CA will certify, so `outgate up` makes a CA once (EnsureCA), keeps
// it in SSM (the certificate as a String, the key as a SecureString), and
// each instance mints itself a short-lived certificate for the deployment's
// IPs from it (Minter). Callers trust the CA certificate alone, which
// `outgate ca --name N` writes to a file (NODE_EXTRA_CA_CERTS,
// REQUESTS_CA_BUNDLE, SSL_CERT_FILE): replaced instances and re-minted
// certificates need nothing new from them.
//
// The CA may sign for any IP address (the deployment's IPs can change) and
// for nothing else: its name constraints exclude every DNS name, so a
// caller that trusts it trusts it for no site. Its key is readable only by
// the deployment's instance role (SecureString under the aws/ssm key,
// scoped by parameter name).
package ownca

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
)

// CertParameter and KeyParameter are where deployment name keeps its CA.
func CertParameter(name string) string { return "/outgate/" + name + "/ca/cert" }
func KeyParameter(name string) string  { return "/outgate/" + name + "/ca/key" }

// caLifetime is the CA certificate's: callers install its file once, so it
// outlives any deployment that is looked after.
const caLifetime = 20 * 365 * 24 * time.Hour

// ErrNoCA is returned (wrapped) when a deployment has no CA in SSM.
var ErrNoCA = errors.New("the deployment has no CA")

// EnsureCA makes deployment name's CA unless it exists, and returns its
// certificate; created says whether this call made it. It never replaces
// anything: both parameters are written without Overwrite, so of two `up`
// runs at once one writes and the other reads what was written. The key
// goes first; a certificate missing beside a stored key (a run that died
// between the two writes) is made again from that key, so the pair always
// matches.
func EnsureCA(ctx context.Context, api SSM, name string) (cert *x509.Certificate, created bool, err error) {
	keyParam, certParam := KeyParameter(name), CertParameter(name)
	key, err := readKey(ctx, api, keyParam)
	switch {
	case errors.Is(err, ErrNoCA):
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, false, err
		}
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, false, err
		}
		_, err = api.PutParameter(ctx, &ssm.PutParameterInput{
			Name:        aws.String(keyParam),
			Type:        ssmtypes.ParameterTypeSecureString,
			Value:       aws.String(string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))),
			Description: aws.String("outgate " + name + ": private key of the deployment's own CA (instance mode without a domain)"),
			Overwrite:   aws.Bool(false),
		})
		var exists *ssmtypes.ParameterAlreadyExists
		if errors.As(err, &exists) {
			// Another run got there first: use its key.
			if key, err = readKey(ctx, api, keyParam); err != nil {
				return nil, false, err
			}
		} else if err != nil {
			return nil, false, fmt.Errorf("storing the CA key in %s: %w", keyParam, err)
		} else {
			created = true
		}
	case err != nil:
		return nil, false, err
	}

	if cert, err = readCert(ctx, api, certParam); err == nil {
		if !samePublicKey(cert, key) {
			return nil, false, fmt.Errorf("the CA certificate in %s does not belong to the key in %s; delete both to make a new CA (callers then need the new CA file)", certParam, keyParam)
		}
		return cert, created, nil
	} else if !errors.Is(err, ErrNoCA) {
		return nil, false, err
	}
	der, err := newCACert(name, key)
	if err != nil {
		return nil, false, err
	}
	_, err = api.PutParameter(ctx, &ssm.PutParameterInput{
		Name:        aws.String(certParam),
		Type:        ssmtypes.ParameterTypeString,
		Value:       aws.String(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))),
		Description: aws.String("outgate " + name + ": certificate of the deployment's own CA; `outgate ca --name " + name + "` writes it for callers"),
		Overwrite:   aws.Bool(false),
	})
	var exists *ssmtypes.ParameterAlreadyExists
	if errors.As(err, &exists) {
		// Another run stored one for the same key first: it is as good.
		cert, err = readCert(ctx, api, certParam)
		if err != nil {
			return nil, false, err
		}
		if !samePublicKey(cert, key) {
			return nil, false, fmt.Errorf("the CA certificate in %s does not belong to the key in %s", certParam, keyParam)
		}
		return cert, created, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("storing the CA certificate in %s: %w", certParam, err)
	}
	cert, err = x509.ParseCertificate(der)
	return cert, created, err
}

// newCACert is a self-signed CA certificate for key, allowed to sign leaf
// certificates only (path length 0).
func newCACert(name string, key *ecdsa.PrivateKey) ([]byte, error) {
	now := time.Now()
	ski := sha256.Sum256(elliptic.MarshalCompressed(key.Curve, key.X, key.Y))
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: "outgate " + name + " CA", Organization: []string{"outgate deployment " + name}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caLifetime),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		SubjectKeyId:          ski[:20],
		// Callers add this CA to their roots, so it must not be able to
		// vouch for anything but the deployment's addresses: no DNS name,
		// email or URI (an empty excluded name matches every name, in Go
		// and OpenSSL alike). Whoever held the key could otherwise
		// impersonate any site to those callers.
		PermittedDNSDomainsCritical: true,
		ExcludedDNSDomains:          []string{""},
		ExcludedEmailAddresses:      []string{""},
		ExcludedURIDomains:          []string{""},
	}
	return x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
}

func randomSerial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n.Add(n, big.NewInt(1))
}

func samePublicKey(cert *x509.Certificate, key *ecdsa.PrivateKey) bool {
	pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
	return ok && pub.Equal(key.Public())
}

func getParameter(ctx context.Context, api Reader, name string, decrypt bool) (string, error) {
	out, err := api.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(name), WithDecryption: aws.Bool(decrypt)})
	var nf *ssmtypes.ParameterNotFound
	if errors.As(err, &nf) {
		return "", fmt.Errorf("%w: no SSM parameter %s", ErrNoCA, name)
	}
	if err != nil {
		return "", fmt.Errorf("reading SSM parameter %s: %w", name, err)
	}
	if out.Parameter == nil || out.Parameter.Value == nil {
		return "", fmt.Errorf("SSM parameter %s has no value", name)
	}
	return *out.Parameter.Value, nil
}

// ReadCert reads a CA certificate from its parameter (`outgate ca`); an
// absent one is ErrNoCA.
func ReadCert(ctx context.Context, api Reader, param string) (*x509.Certificate, error) {
	return readCert(ctx, api, param)
}

// readCert reads the CA certificate; a parse error names the parameter,
// never its content.
func readCert(ctx context.Context, api Reader, param string) (*x509.Certificate, error) {
	v, err := getParameter(ctx, api, param, false)
	if err != nil {
		return nil, err
	}
	return ParseCert([]byte(v), param)
}

// ParseCert parses one PEM CA certificate; source names it in errors.
func ParseCert(pemBytes []byte, source string) (*x509.Certificate, error) {
	b, _ := pem.Decode(pemBytes)
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s does not hold a PEM certificate", source)
	}
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	if !cert.IsCA {
		return nil, fmt.Errorf("%s is not a CA certificate", source)
	}
	return cert, nil
}

// readKey reads the CA key. Its errors never quote the value: a key that
// does not parse is reported by parameter name alone.
func readKey(ctx context.Context, api Reader, param string) (*ecdsa.PrivateKey, error) {
	v, err := getParameter(ctx, api, param, true)
	if err != nil {
		return nil, err
	}
	b, _ := pem.Decode([]byte(v))
	if b == nil || b.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("SSM parameter %s does not hold a PEM private key", param)
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("SSM parameter %s does not hold a PKCS #8 private key", param)
	}
	ec, ok := k.(*ecdsa.PrivateKey)
	if !ok || ec.Curve != elliptic.P256() {
		return nil, fmt.Errorf("SSM parameter %s does not hold an EC P-256 key", param)
	}
	return ec, nil
}

// CA is a loaded CA: its certificate and key.
type CA struct {
	Cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// Load reads a CA from its two parameters (the instance's settings name
// them) and checks that they belong together.
func Load(ctx context.Context, api Reader, certParam, keyParam string) (*CA, error) {
	cert, err := readCert(ctx, api, certParam)
	if err != nil {
		return nil, err
	}
	key, err := readKey(ctx, api, keyParam)
	if err != nil {
		return nil, err
	}
	if !samePublicKey(cert, key) {
		return nil, fmt.Errorf("the CA certificate in %s does not belong to the key in %s", certParam, keyParam)
	}
	return &CA{Cert: cert, key: key}, nil
}

// Fingerprint is the SHA-256 of the CA certificate, for people comparing
// the file they were given with the deployment's.
func Fingerprint(cert *x509.Certificate) string {
	s := sha256.Sum256(cert.Raw)
	return hex.EncodeToString(s[:])
}

// PEM is the CA certificate as callers install it.
func PEM(cert *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
}

// Leaf mints a server certificate for ips (IP SANs only) valid from now
// for lifetime, with a fresh P-256 key. The chain carries the CA too, so a
// client that checks the chain's shape sees it whole.
func (ca *CA) Leaf(ips []netip.Addr, now time.Time, lifetime time.Duration) (*tls.Certificate, error) {
	if len(ips) == 0 {
		return nil, errors.New("a certificate for the deployment's IPs needs at least one IP")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		// No common name: the IP SANs say it all, and OpenSSL checks a
		// common name against the CA's name constraints as a DNS name.
		// A little slack for clients whose clocks run behind.
		NotBefore:             now.Add(-5 * time.Minute),
		NotAfter:              now.Add(lifetime),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		AuthorityKeyId:        ca.Cert.SubjectKeyId,
	}
	for _, ip := range ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.IP(ip.Unmap().AsSlice()))
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.key)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &tls.Certificate{Certificate: [][]byte{der, ca.Cert.Raw}, PrivateKey: crypto.Signer(key), Leaf: leaf}, nil
}

// LeafLifetime is how long a minted certificate is valid: short, so a
// certificate copied off an instance is soon worthless, and long enough
// that a clock a little wrong does not matter.
const LeafLifetime = 24 * time.Hour

// Minter serves a certificate for the deployment's IPs, minted from the CA
// and minted again once two thirds of its life are gone (at the first
// handshake after that), so it never expires while the instance runs.
type Minter struct {
	CA       *CA
	Lifetime time.Duration    // LeafLifetime when zero
	Now      func() time.Time // time.Now when nil (tests move it)

	mu      sync.Mutex
	ips     []netip.Addr
	cur     *tls.Certificate
	renewAt time.Time
}

// NewMinter mints the first certificate for ips at once, so a bad CA fails
// the start rather than a handshake.
func NewMinter(ca *CA, ips []netip.Addr) (*Minter, error) {
	m := &Minter{CA: ca}
	if err := m.SetIPs(ips); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *Minter) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

// SetIPs changes the addresses certified (the deployment gained or lost an
// IP) and mints a certificate for them now.
func (m *Minter) SetIPs(ips []netip.Addr) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ips = append([]netip.Addr(nil), ips...)
	return m.mintLocked()
}

func (m *Minter) mintLocked() error {
	life := m.Lifetime
	if life == 0 {
		life = LeafLifetime
	}
	now := m.now()
	c, err := m.CA.Leaf(m.ips, now, life)
	if err != nil {
		return err
	}
	m.cur, m.renewAt = c, now.Add(life*2/3)
	return nil
}

// GetCertificate is tls.Config.GetCertificate: the current certificate,
// minted again first if it is due. If minting fails the current one is
// served while it is valid, so a passing fault costs nothing.
func (m *Minter) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.now().Before(m.renewAt) {
		if err := m.mintLocked(); err != nil && !m.now().Before(m.cur.Leaf.NotAfter) {
			return nil, fmt.Errorf("minting the instance certificate: %w", err)
		}
	}
	return m.cur, nil
}

// TLSConfig is the listener config for server.Options.TLS.
func (m *Minter) TLSConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: m.GetCertificate}
}
