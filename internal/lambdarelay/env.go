package lambdarelay

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/outgate/outgate/internal/config"
	"github.com/outgate/outgate/internal/idempotency"
	"github.com/outgate/outgate/internal/idempotency/dynamo"
)

// SSM is the one SSM call the relay makes, read once per cold start.
// IAM: ssm:GetParameter on the parameter's ARN, plus kms:Decrypt on its key
// for a SecureString under a customer-managed key (aws/ssm needs nothing).
type SSM interface {
	GetParameter(ctx context.Context, in *ssm.GetParameterInput, opts ...func(*ssm.Options)) (*ssm.GetParameterOutput, error)
}

// Environment variables the relay function reads.
const (
	EnvConfig      = "OUTGATE_CONFIG"       // the YAML config itself
	EnvConfigSSM   = "OUTGATE_CONFIG_SSM"   // or the name of an SSM parameter holding it
	EnvExpectedIPs = "OUTGATE_EXPECTED_IPS" // comma-separated allowlisted egress IPs
	// EnvIdempotencyTable names the DynamoDB table of idempotency keys; it
	// overrides the config's idempotency_store.dynamodb_table.
	EnvIdempotencyTable = "OUTGATE_IDEMPOTENCY_TABLE"
)

// OpenIdempotency returns the relay's idempotency store: DynamoDB, the table
// from OUTGATE_IDEMPOTENCY_TABLE or the config's dynamodb_table; nil when
// neither names one and no upstream uses idempotency. A Lambda function has
// no disk that outlives it, so the embedded store is refused. newAPI is
// called only when a table is named.
func OpenIdempotency(cfg *config.Config, getenv func(string) string, newAPI func() (dynamo.API, error)) (idempotency.Store, error) {
	table := getenv(EnvIdempotencyTable)
	if table == "" {
		table = cfg.IdempotencyStore.DynamoDBTable
	}
	if table == "" {
		if cfg.UsesIdempotency() {
			return nil, errors.New("an upstream uses idempotency: the Lambda relay keeps keys in DynamoDB only; set idempotency_store.dynamodb_table (a function's disk does not outlive it)")
		}
		return nil, nil
	}
	api, err := newAPI()
	if err != nil {
		return nil, fmt.Errorf("DynamoDB client: %w", err)
	}
	return dynamo.New(api, table, nil), nil
}

// LoadConfig reads the config from OUTGATE_CONFIG or OUTGATE_CONFIG_SSM.
// newSSM is called only when the SSM variable is used.
func LoadConfig(ctx context.Context, getenv func(string) string, newSSM func(context.Context) (SSM, error)) (*config.Config, error) {
	inline, param := getenv(EnvConfig), getenv(EnvConfigSSM)
	switch {
	case inline != "" && param != "":
		return nil, fmt.Errorf("set %s or %s, not both", EnvConfig, EnvConfigSSM)
	case inline != "":
		return config.Parse([]byte(inline), "$"+EnvConfig)
	case param != "":
		client, err := newSSM(ctx)
		if err != nil {
			return nil, fmt.Errorf("SSM client: %w", err)
		}
		cfg, _, err := SSMSource(client, param)(ctx)
		return cfg, err
	}
	return nil, errors.New("no config: set " + EnvConfig + " (the YAML) or " + EnvConfigSSM + " (an SSM parameter name)")
}

// SSMSource reads the config from an SSM parameter and reports its version,
// so a warm relay can pick up a changed config (new keys) without a deploy.
func SSMSource(client SSM, name string) func(context.Context) (*config.Config, string, error) {
	return func(ctx context.Context) (*config.Config, string, error) {
		out, err := client.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(name), WithDecryption: aws.Bool(true)})
		if err != nil {
			return nil, "", fmt.Errorf("reading SSM parameter %s: %w", name, err)
		}
		if out.Parameter == nil || out.Parameter.Value == nil {
			return nil, "", fmt.Errorf("SSM parameter %s has no value", name)
		}
		cfg, err := config.Parse([]byte(*out.Parameter.Value), "ssm:"+name)
		return cfg, fmt.Sprint(out.Parameter.Version), err
	}
}

// ParseExpected reads OUTGATE_EXPECTED_IPS.
func ParseExpected(s string) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		ip, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %q is not an IP address", EnvExpectedIPs, f)
		}
		out = append(out, ip.Unmap())
	}
	return out, nil
}
