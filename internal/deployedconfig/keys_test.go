package deployedconfig

import (
	"context"
	"os"
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

// TestKeyRotationAgainstSSM, on moto's SSM: a key added with --config goes
// into both the file and the deployed parameter; revoking the old one takes
// it out of both and records it, so a config that still holds it (an old
// copy of the file) is refused by CheckRevoked, while the edited one passes.
func TestKeyRotationAgainstSSM(t *testing.T) {
	testutil.Moto(t)
	ctx := context.Background()
	ac, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := ssm.NewFromConfig(ac)
	oldHash := keys.Hash("og_old")
	cfg := []byte("clients: [{name: a, key_sha256: " + oldHash + ", hosts: [api.example]}]\n")
	if _, err := c.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String(Parameter("pay")), Value: aws.String(string(cfg)),
		Type: ssmtypes.ParameterTypeSecureString}); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "outgate.yaml")
	if err := os.WriteFile(file, cfg, 0o600); err != nil {
		t.Fatal(err)
	}

	key, hash, err := AddKey(ctx, c, KeyEdit{Name: "pay", Client: "a", File: file})
	if err != nil {
		t.Fatal(err)
	}
	if keys.Hash(key) != hash {
		t.Errorf("AddKey returned key %q with hash %s, not its own", key, hash)
	}
	deployed, err := Read(ctx, c, "pay")
	if err != nil {
		t.Fatal(err)
	}
	onDisk, _ := os.ReadFile(file)
	for where, data := range map[string][]byte{"deployed": deployed, "file": onDisk} {
		if !strings.Contains(string(data), hash) || !strings.Contains(string(data), oldHash) {
			t.Errorf("%s config after AddKey should hold both keys:\n%s", where, data)
		}
	}

	if err := RevokeKey(ctx, c, KeyEdit{Name: "pay", Client: "a", File: file}, oldHash); err != nil {
		t.Fatal(err)
	}
	deployed, _ = Read(ctx, c, "pay")
	onDisk, _ = os.ReadFile(file)
	for where, data := range map[string][]byte{"deployed": deployed, "file": onDisk} {
		if strings.Contains(string(data), oldHash) || !strings.Contains(string(data), hash) {
			t.Errorf("%s config after RevokeKey should hold only the new key:\n%s", where, data)
		}
	}
	if err := CheckRevoked(ctx, c, "pay", onDisk); err != nil {
		t.Errorf("the edited config is refused: %v", err)
	}
	if err := CheckRevoked(ctx, c, "pay", cfg); err == nil || !strings.Contains(err.Error(), "revoked") {
		t.Errorf("a config still holding the revoked key: %v", err)
	}
	if err := CheckRevoked(ctx, c, "other", cfg); err != nil {
		t.Errorf("another deployment's revocations apply: %v", err)
	}
}

// TestKeyEditRefusesABadName: the deployment name is checked before any
// AWS call (no SSM client is needed to get the error).
func TestKeyEditRefusesABadName(t *testing.T) {
	if _, _, err := AddKey(context.Background(), nil, KeyEdit{Name: "Pay", Client: "a"}); err == nil || !strings.Contains(err.Error(), "--name") {
		t.Errorf("AddKey with a bad name: %v", err)
	}
}
