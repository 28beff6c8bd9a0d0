package lambdarelay_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/outgate/outgate/internal/config"
	"github.com/outgate/outgate/internal/keys"
	"github.com/outgate/outgate/internal/lambdarelay"
	"github.com/outgate/outgate/internal/secrets"
	"github.com/outgate/outgate/internal/testutil"
)

// TestRelayInjectsSecretsFromAWS: the Lambda relay reads the config's SSM
// and Secrets Manager references (moto, through the SDK as in the function)
// and sets them on the partner's request; a config reload fetches them
// again; a missing one fails the cold start, naming it.
func TestRelayInjectsSecretsFromAWS(t *testing.T) {
	testutil.Moto(t)
	ctx := context.Background()
	ac, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sc := ssm.NewFromConfig(ac)
	putParam := func(v string) {
		if _, err := sc.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String("/pay/basic"), Value: aws.String(v),
			Type: ssmtypes.ParameterTypeSecureString, Overwrite: aws.Bool(true)}); err != nil {
			t.Fatal(err)
		}
	}
	putParam("SSMSECRET-1")
	if _, err := secretsmanager.NewFromConfig(ac).CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("pay/keys"),
		SecretString: aws.String(`{"api_key":"SMSECRET"}`)}); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	var got http.Header
	p := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = r.Header.Clone()
		mu.Unlock()
		io.WriteString(w, "ok")
	}))
	t.Cleanup(p.Close)
	key, hash := keys.New()
	yaml := func(param string) *config.Config {
		cfg, err := config.Parse([]byte(fmt.Sprintf(`
upstreams:
  pay:
    url: %s/v1
    inject_headers:
      Authorization: "Basic ${secret:ssm:%s}"
      X-Api-Key: "${secret:secretsmanager:pay/keys#api_key}"
clients:
  - {name: fn, key_sha256: %s, upstreams: [pay]}
network: {allow_cidrs: [127.0.0.0/8]}
`, p.URL, param, hash)), "test.yaml")
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	src := secrets.AWS(func(ctx context.Context) (aws.Config, error) { return awsconfig.LoadDefaultConfig(ctx) })
	version := "1"
	reload := func(context.Context) (*config.Config, string, error) { return yaml("/pay/basic"), version, nil }
	out := &bytes.Buffer{}
	h, err := lambdarelay.New(lambdarelay.Options{Config: yaml("/pay/basic"), Version: "1", Reload: reload, ReloadEvery: time.Nanosecond,
		Log: out, Metrics: io.Discard, Secrets: src})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{h: lambda.NewHandler(h.Handle), key: key, out: out}
	call := func() {
		t.Helper()
		ev := sample(t, "events/testdata/lambda-urls-request.json")
		ev["rawPath"] = "/pay/charge"
		hd := ev["headers"].(map[string]any)
		hd["outgate-key"] = e.key
		hd["authorization"] = "Bearer the-function-own"
		hd["x_api_key"] = "the-function-own"
		if resp := e.invoke(t, ev); resp["statusCode"] != float64(200) {
			t.Fatalf("response %v", resp)
		}
	}
	want := func(auth string) {
		t.Helper()
		mu.Lock()
		defer mu.Unlock()
		if a := got.Values("Authorization"); len(a) != 1 || a[0] != auth {
			t.Errorf("Authorization %q, want %q", a, auth)
		}
		if k := got.Values("X-Api-Key"); len(k) != 1 || k[0] != "SMSECRET" || len(got.Values("X_api_key")) != 0 {
			t.Errorf("X-Api-Key %q, X_api_key %q", k, got.Values("X_api_key"))
		}
	}
	call()
	want("Basic SSMSECRET-1")

	putParam("SSMSECRET-2")
	version = "2"
	call() // reloads first
	want("Basic SSMSECRET-2")
	if strings.Contains(out.String(), "SSMSECRET") || strings.Contains(out.String(), "SMSECRET") {
		t.Errorf("the relay's log holds a secret value:\n%s", out)
	}

	// TRACE would have the partner echo the injected credentials back
	// (TestTraceCannotEchoInjectedCredentials): refused, nothing sent.
	mu.Lock()
	got = nil
	mu.Unlock()
	ev := sample(t, "events/testdata/lambda-urls-request.json")
	ev["rawPath"] = "/pay/charge"
	ev["requestContext"].(map[string]any)["http"].(map[string]any)["method"] = "TRACE"
	ev["headers"].(map[string]any)["outgate-key"] = e.key
	ev["body"] = ""
	if resp := e.invoke(t, ev); resp["statusCode"] != float64(405) {
		t.Errorf("TRACE: %v", resp)
	}
	mu.Lock()
	if got != nil {
		t.Error("TRACE reached the partner")
	}
	mu.Unlock()

	_, err = lambdarelay.New(lambdarelay.Options{Config: yaml("/pay/missing"), Log: io.Discard, Metrics: io.Discard, Secrets: src})
	if err == nil || !strings.Contains(err.Error(), "${secret:ssm:/pay/missing}: no such SSM parameter") {
		t.Errorf("cold start with a missing secret: %v", err)
	}
}
