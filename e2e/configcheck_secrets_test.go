package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/outgate/outgate/internal/keys"
	"github.com/outgate/outgate/internal/testutil"
)

// TestConfigCheckSecrets: `config check` fetches every ${secret:...}: one
// that does not exist fails the check at its file:line:col, a source it
// cannot reach is a warning, and no value is ever printed. SSM is moto.
func TestConfigCheckSecrets(t *testing.T) {
	testutil.Moto(t)
	ctx := context.Background()
	ac, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ssm.NewFromConfig(ac).PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String("/pay/key"),
		Value: aws.String("SSMSECRETVALUE"), Type: ssmtypes.ParameterTypeSecureString}); err != nil {
		t.Fatal(err)
	}
	t.Setenv("OUTGATE_E2E_SECRET", "ENVSECRETVALUE")
	dir := t.TempDir()
	write := func(name, headers string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte("upstreams:\n  pay:\n    url: https://api.pay.example\n    inject_headers:\n"+headers+
			"clients: [{name: a, key_sha256: "+keys.Hash("og_x")+", upstreams: [pay]}]\n"), 0o600)
		return p
	}
	check := func(path string, env ...string) (int, string, string) {
		cmd := exec.Command(binary(t), "config", "check", "--config", path)
		cmd.Env = append(os.Environ(), env...)
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		cmd.Run()
		if all := stdout.String() + stderr.String(); strings.Contains(all, "SECRETVALUE") {
			t.Errorf("config check printed a secret value: %s", all)
		}
		return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
	}

	good := write("good.yaml", "      X-Api-Key: \"${secret:ssm:/pay/key}\"\n      X-Env: \"${secret:env:OUTGATE_E2E_SECRET}\"\n")
	if code, out, errOut := check(good); code != 0 || !strings.Contains(out, "ok (1 client, 1 upstream)") {
		t.Errorf("present secrets: exit %d, %q %q", code, out, errOut)
	}

	bad := write("bad.yaml", "      X-Api-Key: \"${secret:ssm:/pay/missing}\"\n      X-Env: \"${secret:env:OUTGATE_E2E_ABSENT}\"\n")
	code, _, errOut := check(bad)
	if code != 1 || !strings.Contains(errOut, "bad.yaml:5:18: upstreams.pay.inject_headers.X-Api-Key: ${secret:ssm:/pay/missing}: no such SSM parameter") ||
		!strings.Contains(errOut, "bad.yaml:6:14: upstreams.pay.inject_headers.X-Env: ${secret:env:OUTGATE_E2E_ABSENT}: the environment variable is not set") {
		t.Errorf("missing secrets: exit %d, %q", code, errOut)
	}

	// No AWS to reach: a warning, and the check passes.
	code, _, errOut = check(good, "AWS_ENDPOINT_URL=http://127.0.0.1:1", "AWS_MAX_ATTEMPTS=1")
	if code != 0 || !strings.Contains(errOut, "good.yaml:5:18: warning: upstreams.pay.inject_headers.X-Api-Key: could not check: ${secret:ssm:/pay/key}") {
		t.Errorf("unreachable SSM: exit %d, %q", code, errOut)
	}
}
