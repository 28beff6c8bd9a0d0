package acme_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/outgate/outgate/internal/acme"
	"github.com/outgate/outgate/internal/keys"
	"github.com/outgate/outgate/internal/server"
	"github.com/outgate/outgate/internal/testutil"
)

const domain = "gw.example.test"

// TestMain runs this test binary as a second instance when asked to
// (instanceMain): certmagic keeps challenge answers in process-wide memory,
// so only another process shows that an instance answers a challenge from
// the shared storage alone.
func TestMain(m *testing.M) {
	if os.Getenv("OUTGATE_ACME_INSTANCE") != "" {
		os.Exit(instanceMain())
	}
	os.Exit(m.Run())
}

// instanceSettings tell the second instance where everything is.
type instanceSettings struct {
	Listen, CA, RootsFile string
	Port                  int
}

// instanceMain serves the domain's certificate on Listen from the shared
// S3 storage (the AWS settings come from the environment: moto), answering
// challenges; "manage" on stdin makes it take the certificate (from
// storage, or by ordering), "manage-async" the same in the background as
// an instance does, waiting for Ready; it answers "managed" or "error: ...".
func instanceMain() int {
	var s instanceSettings
	if err := json.Unmarshal([]byte(os.Getenv("OUTGATE_ACME_INSTANCE")), &s); err != nil {
		fmt.Println("error:", err)
		return 1
	}
	ctx := context.Background()
	ac, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	api := s3.NewFromConfig(ac, func(o *s3.Options) { o.UsePathStyle = true })
	roots := x509.NewCertPool()
	pem, _ := os.ReadFile(s.RootsFile)
	roots.AppendCertsFromPEM(pem)
	m, err := acme.New(acme.Options{Domain: domain, CA: s.CA, Storage: acme.NewStorage(api, "staging", "prod/certs/"), Roots: roots,
		TLSALPNPort: s.Port, RenewCheckInterval: time.Second, Log: os.Stderr})
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	l, err := tls.Listen("tcp", s.Listen, m.TLSConfig())
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	go http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "instance b") }))
	fmt.Println("ready")
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		if sc.Text() == "manage-async" {
			// The instance's way: in the background, then wait for Ready.
			if err := m.ManageAsync(ctx); err != nil {
				fmt.Println("error:", err)
				continue
			}
			deadline := time.Now().Add(time.Minute)
			for m.Ready() != nil && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
			}
			if err := m.Ready(); err != nil {
				fmt.Println("error:", err)
			} else {
				fmt.Println("managed")
			}
		}
		if sc.Text() == "manage" {
			mctx, cancel := context.WithTimeout(ctx, time.Minute)
			err := m.Manage(mctx)
			cancel()
			if err != nil {
				fmt.Println("error:", err)
			} else {
				fmt.Println("managed")
			}
		}
	}
	return 0
}

// pebble is Let's Encrypt's test ACME server, run for one test.
type pebble struct {
	dir       string         // the ACME directory URL
	trust     *x509.CertPool // for pebble's own HTTPS
	trustFile string
	issued    *x509.CertPool // pebble's root: what it issues chains to
	log       *testutil.SafeBuffer
}

// startPebble runs pebble answering on loopback, validating TLS-ALPN-01
// challenges on tlsPort of the addresses dns gives, issuing certificates
// valid for validity.
func startPebble(t *testing.T, dns string, tlsPort int, validity time.Duration) *pebble {
	t.Helper()
	bin := testutil.Tool(t, "pebble")
	cert, key := testutil.SelfSigned(t, "pebble")
	api, mgmt := freeAddr(t), freeAddr(t)
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress": api, "managementListenAddress": mgmt, "certificate": cert, "privateKey": key,
		"httpPort": 1, "tlsPort": tlsPort, "ocspResponderURL": "", "externalAccountBindingRequired": false,
		"certificateValidityPeriod": int(validity.Seconds()),
	}}
	b, _ := json.Marshal(cfg)
	cfgFile := filepath.Join(t.TempDir(), "pebble.json")
	os.WriteFile(cfgFile, b, 0o600)
	p := &pebble{dir: "https://" + api + "/dir", trust: testutil.TLSConfig(cert).RootCAs, trustFile: cert, log: &testutil.SafeBuffer{}}
	cmd := exec.Command(bin, "-config", cfgFile, "-dnsserver", dns)
	// No random sleep before validation, no rejected nonces, and every
	// order validated afresh (no reuse of an earlier authorization).
	cmd.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0")
	cmd.Stdout, cmd.Stderr = p.log, p.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
		if t.Failed() {
			t.Logf("pebble's log:\n%s", p.log.String())
		}
	})
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.trust}}}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := c.Get("https://" + mgmt + "/roots/0")
		if err == nil {
			pem, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			p.issued = x509.NewCertPool()
			if resp.StatusCode == 200 && p.issued.AppendCertsFromPEM(pem) {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("pebble did not start: %v\n%s", err, p.log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	return p
}

// orders counts the new orders pebble took, from its log.
func (p *pebble) orders() int {
	return strings.Count(p.log.String(), "POST /order-plz")
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// portOnBoth is a port free on 127.0.0.1 and 127.0.0.2 a moment ago: the
// two instances listen on one port, as on two machines.
func portOnBoth(t *testing.T) int {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if l2, err := net.Listen("tcp", fmt.Sprintf("127.0.0.2:%d", port)); err == nil {
			l2.Close()
			return port
		}
	}
	t.Fatal("no port free on both 127.0.0.1 and 127.0.0.2")
	return 0
}

// instanceB is the second instance's process.
type instanceB struct {
	in  io.Writer
	out *bufio.Scanner
	log *testutil.SafeBuffer
}

func startInstanceB(t *testing.T, s instanceSettings) *instanceB {
	t.Helper()
	b, _ := json.Marshal(s)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "OUTGATE_ACME_INSTANCE="+string(b))
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	inst := &instanceB{in: in, out: bufio.NewScanner(out), log: &testutil.SafeBuffer{}}
	cmd.Stderr = inst.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		in.Close()
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("instance b's log:\n%s", inst.log.String())
		}
	})
	if line := inst.next(t); line != "ready" {
		t.Fatalf("instance b: %q", line)
	}
	return inst
}

func (b *instanceB) next(t *testing.T) string {
	t.Helper()
	if !b.out.Scan() {
		t.Fatalf("instance b ended: %v\n%s", b.out.Err(), b.log.String())
	}
	return b.out.Text()
}

// served is the leaf certificate an address serves for the domain,
// verified against pebble's root.
func served(t *testing.T, addr string, roots *x509.CertPool) *x509.Certificate {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{ServerName: domain, RootCAs: roots})
	if err != nil {
		t.Fatalf("TLS to %s for %s: %v", addr, domain, err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0]
}

func serialOf(c *x509.Certificate) *big.Int { return c.SerialNumber }

// TestCertificateFromPebble: an instance gets the domain's certificate from
// an ACME CA (pebble) while the CA's validation reaches only the other
// instance, which answers from the shared S3 storage; the other instance
// then serves the same certificate without a new order; and the
// certificate is renewed before it expires, by one order for both, with
// the challenge answered on the gateway's own listener.
func TestCertificateFromPebble(t *testing.T) {
	api := motoS3(t)
	ctx := context.Background()
	// Versions of the stored certificate count how often one was stored.
	if _, err := api.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: aws.String("staging"),
		VersioningConfiguration: &s3types.VersioningConfiguration{Status: s3types.BucketVersioningStatusEnabled}}); err != nil {
		t.Fatal(err)
	}
	dns := testutil.NewDNS(t)
	// The name resolves to instance b alone: the CA can reach only b.
	dns.Set(domain, "127.0.0.2")
	port := portOnBoth(t)
	const validity = 30 * time.Second
	peb := startPebble(t, dns.Addr, port, validity)

	b := startInstanceB(t, instanceSettings{Listen: fmt.Sprintf("127.0.0.2:%d", port), CA: peb.dir, RootsFile: peb.trustFile, Port: port})

	// Instance a: the gateway itself, relay and proxy on one listener,
	// its certificate from the ACME manager through Options.TLS.
	var alog testutil.SafeBuffer
	mgr, err := acme.New(acme.Options{Domain: domain, CA: peb.dir, Storage: acme.NewStorage(api, "staging", "prod/certs/"), Roots: peb.trust,
		TLSALPNPort: port, RenewCheckInterval: time.Second, Log: &alog})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mgr.Stop)
	if got := acme.Prefix("prod"); got != "prod/certs/" {
		t.Errorf("Prefix = %q", got)
	}
	addrA := fmt.Sprintf("127.0.0.1:%d", port)
	_, hash := keys.New()
	cfgFile := filepath.Join(t.TempDir(), "outgate.yaml")
	os.WriteFile(cfgFile, []byte(fmt.Sprintf("listen: %s\nproxy_listen: %s\nclients: [{name: c, key_sha256: %s, hosts: [partner.example.test]}]\n", addrA, addrA, hash)), 0o600)
	sctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	ready := make(chan server.Addrs, 1)
	go func() {
		done <- server.Run(sctx, server.Options{ConfigPath: cfgFile, LogOutput: io.Discard, TLS: mgr.TLSConfig(), Ready: func(a server.Addrs) { ready <- a }})
	}()
	t.Cleanup(func() { stop(); <-done })
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("gateway: %v", err)
	}

	if err := mgr.Ready(); err == nil {
		t.Error("Ready before any certificate")
	}
	mctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := mgr.Manage(mctx); err != nil {
		t.Fatalf("instance a's certificate: %v\ninstance a's log:\n%s", err, alog.String())
	}
	if err := mgr.Ready(); err != nil {
		t.Errorf("Ready after the certificate: %v", err)
	}
	if n := peb.orders(); n != 1 {
		t.Errorf("orders after the first certificate: %d, want 1", n)
	}
	if !strings.Contains(b.log.String(), `"distributed":true`) {
		t.Errorf("instance b did not answer the challenge from storage; its log:\n%s", b.log.String())
	}
	first := served(t, addrA, peb.issued)
	if first.NotAfter.Sub(first.NotBefore) > validity+time.Minute {
		t.Fatalf("pebble issued a certificate valid %v, want about %v", first.NotAfter.Sub(first.NotBefore), validity)
	}
	// The gateway answers over it: relay endpoint and proxy on one port.
	gw := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: peb.issued},
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "tcp", addrA)
		},
	}}
	resp, err := gw.Get(fmt.Sprintf("https://%s:%d/_outgate/health", domain, port))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("relay endpoint over the ACME certificate: %v %v", resp, err)
	}
	resp.Body.Close()

	// Another name (or none) gets no certificate and starts no order:
	// nothing is issued on demand for whatever a client sends as SNI.
	// The handshake fails at the server (an alert), not at the client's
	// check of a certificate it was sent. Without a name (a client that
	// dials the IP sends no SNI) likewise.
	for _, sni := range []string{"other.example.test", ""} {
		_, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addrA, &tls.Config{ServerName: sni, RootCAs: peb.issued})
		var verr *tls.CertificateVerificationError
		if err == nil || errors.As(err, &verr) {
			t.Errorf("handshake with SNI %q: %v; want the server to refuse it", sni, err)
		}
	}
	// A client offering the CA's challenge protocol (acme-tls/1) while no
	// challenge is pending, for the domain or another name, gets no
	// certificate at all (neither a challenge certificate nor the domain's)
	// and starts no order; the listener serves on afterwards.
	for _, sni := range []string{domain, "other.example.test"} {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addrA, &tls.Config{ServerName: sni, NextProtos: []string{"acme-tls/1"}, InsecureSkipVerify: true})
		if err == nil {
			t.Errorf("acme-tls/1 handshake for %q served %v (protocol %q)", sni, c.ConnectionState().PeerCertificates[0].DNSNames, c.ConnectionState().NegotiatedProtocol)
			c.Close()
		}
	}
	if resp, err := gw.Get(fmt.Sprintf("https://%s:%d/_outgate/health", domain, port)); err != nil || resp.StatusCode != 200 {
		t.Fatalf("relay endpoint after acme-tls/1 handshakes: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	if n := peb.orders(); n != 1 {
		t.Errorf("orders after handshakes for other names: %d, want 1", n)
	}

	// Instance b takes the certificate from storage: no new order.
	fmt.Fprintln(b.in, "manage-async")
	if line := b.next(t); line != "managed" {
		t.Fatalf("instance b: %s", line)
	}
	if got := served(t, fmt.Sprintf("127.0.0.2:%d", port), peb.issued); serialOf(got).Cmp(serialOf(first)) != 0 {
		t.Errorf("instance b serves serial %x, instance a %x", got.SerialNumber, first.SerialNumber)
	}
	if n := peb.orders(); n != 1 {
		t.Errorf("orders after instance b took the certificate: %d, want 1", n)
	}

	// Renewal: two thirds into its life, both instances find it due; one
	// orders under the lock, the other loads the result. The name now
	// resolves to instance a alone, so the CA's validation meets the
	// gateway's own listener (acme-tls/1 kept by Options.TLS), whichever
	// instance ordered.
	dns.Set(domain, "127.0.0.1")
	deadline := time.Now().Add(validity + 30*time.Second)
	for {
		a := served(t, addrA, peb.issued)
		bb := served(t, fmt.Sprintf("127.0.0.2:%d", port), peb.issued)
		if serialOf(a).Cmp(serialOf(first)) != 0 && serialOf(a).Cmp(serialOf(bb)) == 0 {
			if !time.Now().Before(first.NotAfter) {
				t.Errorf("renewed only after the old certificate expired")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not renewed on both instances (a %x, b %x, first %x); orders %d\ninstance a's log:\n%s", a.SerialNumber, bb.SerialNumber, first.SerialNumber, peb.orders(), alog.String())
		}
		time.Sleep(250 * time.Millisecond)
	}
	if n := peb.orders(); n != 2 {
		t.Errorf("orders after the renewal: %d, want 2 (one for both instances)", n)
	}
	vers, err := api.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: aws.String("staging"), Prefix: aws.String("prod/certs/certificates/")})
	if err != nil {
		t.Fatal(err)
	}
	crt := 0
	for _, v := range vers.Versions {
		if strings.HasSuffix(aws.ToString(v.Key), ".crt") {
			crt++
		}
	}
	if crt != 2 {
		t.Errorf("certificate stored %d times, want 2", crt)
	}
}
