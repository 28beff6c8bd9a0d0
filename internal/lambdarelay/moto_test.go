package lambdarelay_test

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/outgate/outgate/internal/keys"
	"github.com/outgate/outgate/internal/lambdarelay"
	"github.com/outgate/outgate/internal/testutil"
)

// TestConfigFromSSM reads a SecureString config through the real SDK and
// wire protocol, served by moto.
func TestConfigFromSSM(t *testing.T) {
	testutil.Moto(t)
	ctx := context.Background()
	ac, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	client := ssm.NewFromConfig(ac)
	yaml := "clients: [{name: a, key_sha256: " + keys.Hash("og_x") + ", hosts: [api.example]}]\n"
	if _, err := client.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String("/outgate/prod/config"),
		Value: aws.String(yaml), Type: ssmtypes.ParameterTypeSecureString}); err != nil {
		t.Fatal(err)
	}
	newSSM := func(context.Context) (lambdarelay.SSM, error) { return client, nil }
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

	cfg, err := lambdarelay.LoadConfig(ctx, env(map[string]string{"OUTGATE_CONFIG_SSM": "/outgate/prod/config"}), newSSM)
	if err != nil || cfg.Clients[0].Name != "a" || cfg.Source != "ssm:/outgate/prod/config" {
		t.Fatalf("config from SSM: %+v, %v", cfg, err)
	}
	_, err = lambdarelay.LoadConfig(ctx, env(map[string]string{"OUTGATE_CONFIG_SSM": "/outgate/missing"}), newSSM)
	if err == nil || !strings.Contains(err.Error(), "reading SSM parameter /outgate/missing") || !strings.Contains(err.Error(), "ParameterNotFound") {
		t.Errorf("missing parameter: %v", err)
	}
}
