package secrets_test

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/outgate/outgate/internal/secrets"
	"github.com/outgate/outgate/internal/testutil"
)

// TestAWSSources reads SSM SecureStrings and Secrets Manager secrets (whole,
// and one key of a JSON secret) through the real SDK and wire protocol,
// served by moto, and checks that every failure names the reference and
// not a value.
func TestAWSSources(t *testing.T) {
	testutil.Moto(t)
	ctx := context.Background()
	ac, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sc, sm := ssm.NewFromConfig(ac), secretsmanager.NewFromConfig(ac)
	put := func(name, value string, typ ssmtypes.ParameterType) {
		if _, err := sc.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String(name), Value: aws.String(value), Type: typ}); err != nil {
			t.Fatal(err)
		}
	}
	put("/outgate/pay/basic", "dXNlcjpTRUNSRVQ=", ssmtypes.ParameterTypeSecureString)
	put("/outgate/pay/plain", "PLAINSECRET", ssmtypes.ParameterTypeString)
	created, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("pay/keys"),
		SecretString: aws.String(`{"api_key":"KEYSECRET","n":1}`)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("pay/raw"), SecretString: aws.String("RAWSECRET")}); err != nil {
		t.Fatal(err)
	}

	src := secrets.AWS(loadAWS)
	ok := map[string]string{
		"${secret:ssm:/outgate/pay/basic}":                      "dXNlcjpTRUNSRVQ=",
		"${secret:secretsmanager:pay/raw}":                      "RAWSECRET",
		"${secret:secretsmanager:pay/keys#api_key}":             "KEYSECRET",
		"${secret:secretsmanager:" + *created.ARN + "#api_key}": "KEYSECRET",
	}
	for in, want := range ok {
		r, err := secrets.ParseWhole(in)
		if err != nil {
			t.Fatal(err)
		}
		if v, err := src.Fetch(ctx, r); err != nil || v != want {
			t.Errorf("%s = %q, %v; want %q", in, v, err, want)
		}
	}
	bad := map[string]string{
		"${secret:ssm:/outgate/pay/missing}":       "no such SSM parameter",
		"${secret:ssm:/outgate/pay/plain}":         "not a SecureString",
		"${secret:secretsmanager:pay/missing}":     "no such secret",
		"${secret:secretsmanager:pay/keys#nokey}":  "has no key nokey",
		"${secret:secretsmanager:pay/keys#n}":      "is not a string",
		"${secret:secretsmanager:pay/raw#api_key}": "not a JSON object",
	}
	var refs []secrets.Ref
	for in, want := range bad {
		r, err := secrets.ParseWhole(in)
		if err != nil {
			t.Fatal(err)
		}
		refs = append(refs, r)
		_, err = src.Fetch(ctx, r)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), in) {
			t.Errorf("%s: %v, want %q naming the reference", in, err, want)
		}
		if err != nil && (strings.Contains(err.Error(), "SECRET") || strings.Contains(err.Error(), "PLAIN")) {
			t.Errorf("%s: the error shows a value: %v", in, err)
		}
		if se, ok := err.(*secrets.Error); !ok || se.Unreachable {
			t.Errorf("%s: an answer from AWS counted as unreachable: %#v", in, err)
		}
	}
	if errs := secrets.Check(ctx, src, refs); len(errs) != len(bad) {
		t.Errorf("Check found %d problems, want %d: %v", len(errs), len(bad), errs)
	}
}

// TestAWSUnreachable: with nothing listening where AWS should be, the error
// says the source was not reached (config check warns instead of failing).
func TestAWSUnreachable(t *testing.T) {
	t.Setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
	t.Setenv("AWS_ACCESS_KEY_ID", "testing")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "testing")
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_MAX_ATTEMPTS", "1")
	src := secrets.AWS(loadAWS)
	_, err := src.Fetch(context.Background(), secrets.Ref{Source: "ssm", Name: "/x"})
	se, ok := err.(*secrets.Error)
	if !ok || !se.Unreachable {
		t.Fatalf("unreachable SSM: %#v", err)
	}
}

func loadAWS(ctx context.Context) (aws.Config, error) { return awsconfig.LoadDefaultConfig(ctx) }
