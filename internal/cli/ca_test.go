package cli

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/outgate/outgate/internal/ownca"
	"github.com/outgate/outgate/internal/testutil"
)

// TestCACommand: `outgate ca` writes the CA certificate `up` stored (to a
// file, to stdout, or as JSON with its fingerprint), on moto's SSM, and a
// deployment without a CA gets an error that says where one comes from.
func TestCACommand(t *testing.T) {
	testutil.Moto(t)
	ac, err := awsconfig.LoadDefaultConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	cert, _, err := ownca.EnsureCA(context.Background(), ssm.NewFromConfig(ac), "pay")
	if err != nil {
		t.Fatal(err)
	}
	want := string(ownca.PEM(cert))

	file := filepath.Join(t.TempDir(), "outgate-ca.pem")
	r := runCLI(t, false, "", "ca", "--name", "pay", "--out", file)
	got, _ := os.ReadFile(file)
	if r.code != 0 || string(got) != want || !strings.Contains(r.out, ownca.Fingerprint(cert)) || !strings.Contains(r.out, "NODE_EXTRA_CA_CERTS="+file) {
		t.Errorf("ca --out: exit %d, %q, %q; file matches: %v", r.code, r.out, r.err, string(got) == want)
	}
	if r := runCLI(t, false, "", "ca", "--name", "pay"); r.code != 0 || r.out != want {
		t.Errorf("ca to stdout: exit %d, %q, %q", r.code, r.out, r.err)
	}
	r = runCLI(t, false, "", "ca", "--name", "pay", "-o", "json")
	var j struct{ Name, Parameter, SHA256, PEM string }
	if r.code != 0 || json.Unmarshal([]byte(r.out), &j) != nil || j.PEM != want || j.SHA256 != ownca.Fingerprint(cert) || j.Parameter != "/outgate/pay/ca/cert" {
		t.Errorf("ca -o json: exit %d, %q, %q", r.code, r.out, r.err)
	}
	r = runCLI(t, false, "", "ca", "--name", "other")
	if r.code != 1 || !strings.Contains(r.err, "deployment other has no CA (no SSM parameter /outgate/other/ca/cert)") {
		t.Errorf("ca of a deployment without one: exit %d, %q", r.code, r.err)
	}
}
