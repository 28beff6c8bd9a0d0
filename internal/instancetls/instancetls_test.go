package instancetls_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/outgate/outgate/internal/acme"
	"github.com/outgate/outgate/internal/instancetls"
	"github.com/outgate/outgate/internal/keys"
	"github.com/outgate/outgate/internal/ownca"
	"github.com/outgate/outgate/internal/server"
	"github.com/outgate/outgate/internal/testutil"
)

// TestOwnCAInstanceServesRelayAndProxy: an instance without a domain, as
// the agent wires it: the CA `up` made (moto's SSM), the source from the
// settings' fields, the gateway on one TLS listener for relay and proxy.
// Callers that trust only the CA file `outgate ca` writes reach a partner
// through the relay URL and through HTTPS_PROXY=https://name:key@IP:port.
func TestOwnCAInstanceServesRelayAndProxy(t *testing.T) {
	testutil.Moto(t)
	ctx := context.Background()
	ac, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	api := ssm.NewFromConfig(ac)
	caCert, _, err := ownca.EnsureCA(ctx, api, "prod")
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "outgate-ca.pem")
	os.WriteFile(caFile, ownca.PEM(caCert), 0o644)

	if _, err := instancetls.New(ctx, instancetls.Params{IPs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}}, nil, api); err == nil {
		t.Error("a source without a domain or CA parameters")
	}
	if _, err := instancetls.New(ctx, instancetls.Params{Domain: "gw.example.test"}, nil, nil); err == nil {
		t.Error("a domain without a bucket")
	}
	// A bucket without a place in it: never the bucket's root, which other
	// deployments share.
	if _, err := instancetls.New(ctx, instancetls.Params{Domain: "gw.example.test", CertBucket: "staging"}, fakeS3{}, nil); err == nil {
		t.Error("a domain without cert_prefix or deployment")
	}
	src, err := instancetls.New(ctx, instancetls.Params{CACertParameter: ownca.CertParameter("prod"), CAKeyParameter: ownca.KeyParameter("prod"),
		IPs: []netip.Addr{netip.MustParseAddr("203.0.113.10"), netip.MustParseAddr("127.0.0.1")}}, nil, api)
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Start(ctx); err != nil || src.Ready() != nil {
		t.Fatalf("own CA source not ready: %v, %v", err, src.Ready())
	}

	partner := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "partner "+r.URL.Path) }))
	t.Cleanup(partner.Close)
	partnerCA := testutil.WriteCA(t, partner)
	pHost := strings.TrimPrefix(partner.URL, "https://")

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	key, hash := keys.New()
	cfg := fmt.Sprintf(`listen: %s
proxy_listen: %s
upstreams:
  partner: {url: %s/v2}
clients:
  - {name: billing, key_sha256: %s, upstreams: [partner], hosts: [%q]}
network: {allow_cidrs: [127.0.0.0/8], ca_files: [%s]}
`, addr, addr, partner.URL, hash, pHost, partnerCA)
	cfgFile := filepath.Join(t.TempDir(), "outgate.yaml")
	os.WriteFile(cfgFile, []byte(cfg), 0o600)
	sctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	ready := make(chan server.Addrs, 1)
	logs := &testutil.SafeBuffer{}
	go func() {
		done <- server.Run(sctx, server.Options{ConfigPath: cfgFile, LogOutput: logs, TLS: src.TLS, Ready: func(a server.Addrs) { ready <- a }})
	}()
	// The CA key the instance holds never reaches a log line, through
	// served, refused and failed handshakes alike (searched for each line
	// of the key's PEM body; registered first, so it runs after the
	// gateway has stopped and flushed).
	t.Cleanup(func() {
		out, err := api.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(ownca.KeyParameter("prod")), WithDecryption: aws.Bool(true)})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(logs.String(), "TLS handshake error") {
			t.Errorf("no failed handshake was logged; the search below proves nothing:\n%s", logs.String())
		}
		for _, line := range strings.Split(aws.ToString(out.Parameter.Value), "\n") {
			if len(line) > 16 && !strings.HasPrefix(line, "-----") && strings.Contains(logs.String(), line) {
				t.Errorf("the CA key is in the gateway's log")
			}
		}
	})
	t.Cleanup(func() { stop(); <-done })
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("gateway: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("gateway did not start")
	}

	curl := testutil.Tool(t, "curl")
	out, err := exec.Command(curl, "-sS", "--max-time", "20", "--cacert", caFile, "-H", "Outgate-Key: "+key, "https://"+addr+"/partner/pay").CombinedOutput()
	if err != nil || string(out) != "partner /v2/pay" {
		t.Errorf("relay with the CA file: %q, %v", out, err)
	}
	out, err = exec.Command(curl, "-sS", "--max-time", "20", "--proxy-cacert", caFile, "--cacert", partnerCA,
		"-x", fmt.Sprintf("https://billing:%s@%s", key, addr), partner.URL+"/tunnel").CombinedOutput()
	if err != nil || string(out) != "partner /tunnel" {
		t.Errorf("HTTPS proxy with the CA file: %q, %v", out, err)
	}
	// Without the CA file the gateway is not trusted.
	if out, err := exec.Command(curl, "-sS", "--max-time", "20", "--cacert", partnerCA, "-H", "Outgate-Key: "+key, "https://"+addr+"/partner/pay").CombinedOutput(); err == nil {
		t.Errorf("relay trusted without the CA file: %q", out)
	}
	t.Run("node-undici", func(t *testing.T) {
		node := testutil.Tool(t, "node")
		dir := filepath.Join("..", "..", "testdata", "clients", "node")
		if _, err := os.Stat(filepath.Join(dir, "node_modules", "undici")); err != nil {
			testutil.Unavailable(t, "undici is not installed: run npm ci --prefix testdata/clients/node")
		}
		bundle := filepath.Join(t.TempDir(), "bundle.pem")
		a, _ := os.ReadFile(caFile)
		b, _ := os.ReadFile(partnerCA)
		os.WriteFile(bundle, append(append(a, '\n'), b...), 0o644)
		// stdout only: Node warns on stderr (DEP0123) that undici sends the
		// proxy's IP as the TLS server name.
		cmd := exec.Command(node, filepath.Join(dir, "fetch.mjs"), partner.URL+"/node", fmt.Sprintf("https://billing:%s@%s", key, addr), bundle)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil || string(out) != "200 partner /node" {
			t.Errorf("node undici through the HTTPS proxy: %q, %v\n%s", out, err, stderr.String())
		}
	})
}

// fakeS3 is an S3 that is never called: New only builds the storage.
type fakeS3 struct{ acme.S3 }
