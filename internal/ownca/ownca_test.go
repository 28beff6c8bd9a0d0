package ownca_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/outgate/outgate/internal/ownca"
	"github.com/outgate/outgate/internal/testutil"
)

// motoSSM is the real SDK client on moto_server: the wire calls, the
// SecureString type and PutParameter's refusal to overwrite are moto's.
func motoSSM(t *testing.T) *ssm.Client {
	t.Helper()
	testutil.Moto(t)
	ac, err := awsconfig.LoadDefaultConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return ssm.NewFromConfig(ac)
}

func paramType(t *testing.T, api *ssm.Client, name string) ssmtypes.ParameterType {
	t.Helper()
	out, err := api.GetParameter(context.Background(), &ssm.GetParameterInput{Name: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	return out.Parameter.Type
}

// TestEnsureCA: the first `up` makes the CA (key a SecureString, certificate
// a String), later ones find it and change nothing.
func TestEnsureCA(t *testing.T) {
	api := motoSSM(t)
	ctx := context.Background()
	if _, err := ownca.Load(ctx, api, ownca.CertParameter("prod"), ownca.KeyParameter("prod")); !errors.Is(err, ownca.ErrNoCA) {
		t.Fatalf("Load before the CA exists: %v, want ErrNoCA", err)
	}
	first, created, err := ownca.EnsureCA(ctx, api, "prod")
	if err != nil || !created {
		t.Fatalf("first EnsureCA: created %v, %v", created, err)
	}
	if !first.IsCA || first.MaxPathLen != 0 || !first.MaxPathLenZero || first.Subject.CommonName != "outgate prod CA" {
		t.Errorf("CA certificate: IsCA %v, MaxPathLen %d, subject %q", first.IsCA, first.MaxPathLen, first.Subject)
	}
	if typ := paramType(t, api, "/outgate/prod/ca/key"); typ != ssmtypes.ParameterTypeSecureString {
		t.Errorf("key parameter type %s, want SecureString", typ)
	}
	if typ := paramType(t, api, "/outgate/prod/ca/cert"); typ != ssmtypes.ParameterTypeString {
		t.Errorf("cert parameter type %s, want String", typ)
	}
	again, created, err := ownca.EnsureCA(ctx, api, "prod")
	if err != nil || created || ownca.Fingerprint(again) != ownca.Fingerprint(first) {
		t.Fatalf("second EnsureCA: created %v, same %v, %v", created, ownca.Fingerprint(again) == ownca.Fingerprint(first), err)
	}
	// Another deployment has its own.
	other, _, err := ownca.EnsureCA(ctx, api, "staging")
	if err != nil || ownca.Fingerprint(other) == ownca.Fingerprint(first) {
		t.Fatalf("another deployment's CA: %v", err)
	}
}

// TestEnsureCAConcurrent: several `up` runs at once make one CA between
// them, and every one of them gets that CA.
func TestEnsureCAConcurrent(t *testing.T) {
	api := motoSSM(t)
	const runs = 6
	var wg sync.WaitGroup
	certs := make([]*x509.Certificate, runs)
	createdBy := make([]bool, runs)
	errs := make([]error, runs)
	for i := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			certs[i], createdBy[i], errs[i] = ownca.EnsureCA(context.Background(), api, "prod")
		}()
	}
	wg.Wait()
	made := 0
	for i := range runs {
		if errs[i] != nil {
			t.Fatalf("run %d: %v", i, errs[i])
		}
		if createdBy[i] {
			made++
		}
		if ownca.Fingerprint(certs[i]) != ownca.Fingerprint(certs[0]) {
			t.Errorf("run %d got another CA certificate than run 0", i)
		}
	}
	if made != 1 {
		t.Errorf("%d runs say they made the CA, want 1", made)
	}
	if _, err := ownca.Load(context.Background(), api, ownca.CertParameter("prod"), ownca.KeyParameter("prod")); err != nil {
		t.Errorf("the stored pair does not load: %v", err)
	}
}

// TestEnsureCARepairsAndRefuses: a key stored without its certificate (a
// run that died between the writes) gets a certificate for that key; a
// certificate that does not belong to the stored key is an error, never
// overwritten.
func TestEnsureCARepairsAndRefuses(t *testing.T) {
	api := motoSSM(t)
	ctx := context.Background()
	if _, _, err := ownca.EnsureCA(ctx, api, "prod"); err != nil {
		t.Fatal(err)
	}
	before, _ := api.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/outgate/prod/ca/key"), WithDecryption: aws.Bool(true)})
	if _, err := api.DeleteParameter(ctx, &ssm.DeleteParameterInput{Name: aws.String("/outgate/prod/ca/cert")}); err != nil {
		t.Fatal(err)
	}
	cert, created, err := ownca.EnsureCA(ctx, api, "prod")
	if err != nil || created {
		t.Fatalf("repair: created %v, %v", created, err)
	}
	ca, err := ownca.Load(ctx, api, ownca.CertParameter("prod"), ownca.KeyParameter("prod"))
	if err != nil || ownca.Fingerprint(ca.Cert) != ownca.Fingerprint(cert) {
		t.Fatalf("after repair: %v", err)
	}
	after, _ := api.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/outgate/prod/ca/key"), WithDecryption: aws.Bool(true)})
	if *after.Parameter.Value != *before.Parameter.Value {
		t.Error("the repair replaced the key")
	}

	// Another deployment's certificate under prod's name.
	other, _, err := ownca.EnsureCA(ctx, api, "other")
	if err != nil {
		t.Fatal(err)
	}
	api.DeleteParameter(ctx, &ssm.DeleteParameterInput{Name: aws.String("/outgate/prod/ca/cert")})
	api.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String("/outgate/prod/ca/cert"), Type: ssmtypes.ParameterTypeString, Value: aws.String(string(ownca.PEM(other)))})
	if _, _, err := ownca.EnsureCA(ctx, api, "prod"); err == nil || !strings.Contains(err.Error(), "does not belong to the key") {
		t.Errorf("mismatched pair: %v", err)
	}
	if _, err := ownca.Load(ctx, api, ownca.CertParameter("prod"), ownca.KeyParameter("prod")); err == nil {
		t.Error("Load took a mismatched pair")
	}
	// A key parameter that is no key: reported by name, never quoted.
	api.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String("/outgate/bad/ca/key"), Type: ssmtypes.ParameterTypeSecureString, Value: aws.String("s3cr3t-not-a-key")})
	_, _, err = ownca.EnsureCA(ctx, api, "bad")
	if err == nil || !strings.Contains(err.Error(), "/outgate/bad/ca/key") || strings.Contains(err.Error(), "s3cr3t") {
		t.Errorf("bad key: %v", err)
	}
}

func loadCA(t *testing.T) (*ownca.CA, *x509.CertPool) {
	t.Helper()
	api := motoSSM(t)
	ctx := context.Background()
	if _, _, err := ownca.EnsureCA(ctx, api, "prod"); err != nil {
		t.Fatal(err)
	}
	ca, err := ownca.Load(ctx, api, ownca.CertParameter("prod"), ownca.KeyParameter("prod"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	return ca, pool
}

func verifyFor(leaf *x509.Certificate, pool *x509.CertPool, ip string, at time.Time) error {
	_, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: ip, CurrentTime: at})
	return err
}

// TestMinter: the instance's certificate is for the deployment's IPs only,
// short-lived, and minted again before it expires.
func TestMinter(t *testing.T) {
	ca, pool := loadCA(t)
	// The CA was made just now (loadCA), so the leaves' clock starts from
	// the real time: a fixed date would fall outside the CA's validity on
	// some day. Whole seconds, as certificates carry them.
	now := time.Now().UTC().Truncate(time.Second)
	m := &ownca.Minter{CA: ca, Now: func() time.Time { return now }}
	if err := m.SetIPs([]netip.Addr{netip.MustParseAddr("203.0.113.10"), netip.MustParseAddr("203.0.113.11")}); err != nil {
		t.Fatal(err)
	}
	first, err := m.GetCertificate(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, ip := range []string{"203.0.113.10", "203.0.113.11"} {
		if err := verifyFor(first.Leaf, pool, ip, now); err != nil {
			t.Errorf("%s: %v", ip, err)
		}
	}
	if err := verifyFor(first.Leaf, pool, "198.51.100.1", now); err == nil {
		t.Error("the certificate is valid for an address that is not the deployment's")
	}
	if err := verifyFor(first.Leaf, pool, "gw.example.com", now); err == nil {
		t.Error("the certificate is valid for a name")
	}
	if life := first.Leaf.NotAfter.Sub(now); life != ownca.LeafLifetime {
		t.Errorf("lifetime %v, want %v", life, ownca.LeafLifetime)
	}
	// Before two thirds of its life: the same certificate.
	now = now.Add(ownca.LeafLifetime/2 + time.Hour)
	if c, _ := m.GetCertificate(nil); c != first {
		t.Error("re-minted too early")
	}
	// After: a new one, valid well past the old one's end.
	now = now.Add(ownca.LeafLifetime / 6)
	second, err := m.GetCertificate(nil)
	if err != nil || second == first {
		t.Fatalf("not re-minted at two thirds of its life: %v", err)
	}
	if err := verifyFor(second.Leaf, pool, "203.0.113.10", first.Leaf.NotAfter.Add(time.Hour)); err != nil {
		t.Errorf("the new certificate past the old one's end: %v", err)
	}
	// The deployment gains an IP: the certificate names it at once.
	if err := m.SetIPs([]netip.Addr{netip.MustParseAddr("203.0.113.12")}); err != nil {
		t.Fatal(err)
	}
	third, _ := m.GetCertificate(nil)
	if err := verifyFor(third.Leaf, pool, "203.0.113.12", now); err != nil {
		t.Errorf("after SetIPs: %v", err)
	}
	if err := verifyFor(third.Leaf, pool, "203.0.113.10", now); err == nil {
		t.Error("after SetIPs the old address is still certified")
	}
	if _, err := ownca.NewMinter(ca, nil); err == nil {
		t.Error("a certificate for no IP was minted")
	}
}

// TestCallersTrustTheCAFile: the file `outgate ca` writes is all curl,
// Python requests and Node need to trust an instance's certificate, each
// through the variable the docs give for it; without it each refuses.
func TestCallersTrustTheCAFile(t *testing.T) {
	ca, _ := loadCA(t)
	m, err := ownca.NewMinter(ca, []netip.Addr{netip.MustParseAddr("127.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", m.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ErrorLog: log.New(io.Discard, "", 0), Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("trusted")) })}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	url := "https://" + l.Addr().String() + "/"
	caFile := filepath.Join(t.TempDir(), "outgate-ca.pem")
	if err := os.WriteFile(caFile, ownca.PEM(ca.Cert), 0o644); err != nil {
		t.Fatal(err)
	}
	// A CA file nobody trusts for the negative runs: the system roots are
	// replaced rather than added to, where a variable replaces them.
	empty := filepath.Join(t.TempDir(), "other.pem")
	other, _ := testutil.SelfSigned(t, "other")
	b, _ := os.ReadFile(other)
	os.WriteFile(empty, b, 0o644)

	run := func(t *testing.T, env []string, name string, args ...string) (string, error) {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	t.Run("go", func(t *testing.T) {
		// A Go program's system roots are SSL_CERT_FILE when it is set: run
		// this test binary again as that program (goClient).
		for env, ok := range map[string]bool{caFile: true, empty: false} {
			out, err := run(t, []string{"SSL_CERT_FILE=" + env, "SSL_CERT_DIR=/nonexistent", "OUTGATE_TEST_GET=" + url}, os.Args[0], "-test.run=^TestGoClientHelper$")
			if ok && (err != nil || !strings.Contains(out, "got trusted")) {
				t.Errorf("Go with SSL_CERT_FILE: %q, %v", out, err)
			}
			if !ok && err == nil {
				t.Errorf("Go trusted the instance without the CA file: %q", out)
			}
		}
	})
	t.Run("curl", func(t *testing.T) {
		curl := testutil.Tool(t, "curl")
		// Debian's curl ignores SSL_CERT_FILE (it is built with a CA
		// bundle path); CURL_CA_BUNDLE and --cacert are curl's own.
		if out, err := run(t, []string{"CURL_CA_BUNDLE=" + caFile}, curl, "-sS", "--max-time", "10", url); err != nil || out != "trusted" {
			t.Errorf("curl with CURL_CA_BUNDLE: %q, %v", out, err)
		}
		if out, err := run(t, nil, curl, "-sS", "--max-time", "10", "--cacert", caFile, url); err != nil || out != "trusted" {
			t.Errorf("curl --cacert: %q, %v", out, err)
		}
		if out, err := run(t, []string{"CURL_CA_BUNDLE=" + empty}, curl, "-sS", "--max-time", "10", url); err == nil {
			t.Errorf("curl trusted the instance without the CA file: %q", out)
		}
	})
	t.Run("python-requests", func(t *testing.T) {
		py := testutil.Tool(t, "python3")
		if err := exec.Command(py, "-c", "import requests").Run(); err != nil {
			testutil.Unavailable(t, "python3 has no requests module")
		}
		script := `import requests, sys
print(requests.get(sys.argv[1], timeout=10).text, end="")`
		if out, err := run(t, []string{"REQUESTS_CA_BUNDLE=" + caFile}, py, "-c", script, url); err != nil || out != "trusted" {
			t.Errorf("python requests with REQUESTS_CA_BUNDLE: %q, %v", out, err)
		}
		if out, err := run(t, []string{"REQUESTS_CA_BUNDLE=" + empty}, py, "-c", script, url); err == nil {
			t.Errorf("python requests trusted the instance without the CA file: %q", out)
		}
	})
	t.Run("node", func(t *testing.T) {
		node := testutil.Tool(t, "node")
		script := `fetch(process.argv[1]).then(r => r.text()).then(t => process.stdout.write(t), e => { console.error(e.cause || e); process.exit(1) })`
		if out, err := run(t, []string{"NODE_EXTRA_CA_CERTS=" + caFile}, node, "-e", script, url); err != nil || out != "trusted" {
			t.Errorf("node fetch with NODE_EXTRA_CA_CERTS: %q, %v", out, err)
		}
		if out, err := run(t, []string{"NODE_EXTRA_CA_CERTS="}, node, "-e", script, url); err == nil {
			t.Errorf("node trusted the instance without the CA file: %q", out)
		}
	})
}

// TestGoClientHelper is the Go program of TestCallersTrustTheCAFile: a GET
// with the default client (system roots, so SSL_CERT_FILE).
func TestGoClientHelper(t *testing.T) {
	url := os.Getenv("OUTGATE_TEST_GET")
	if url == "" {
		t.Skip("run by TestCallersTrustTheCAFile only")
	}
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Printf("got %s\n", b)
}
