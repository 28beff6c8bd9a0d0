package lambdarelay_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/outgate/outgate/internal/config"
	"github.com/outgate/outgate/internal/idempotency/dynamo"
	"github.com/outgate/outgate/internal/keys"
	"github.com/outgate/outgate/internal/lambdarelay"
	"github.com/outgate/outgate/internal/testutil"
)

// The relay function keeps idempotency keys in DynamoDB (moto here): a
// retried invocation gets the stored answer, and an answer the function
// could not return (over Lambda's payload limit) leaves the key unknown.
func TestLambdaIdempotencyWithDynamoDB(t *testing.T) {
	testutil.Moto(t)
	ac, err := awsconfig.LoadDefaultConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	db := dynamodb.NewFromConfig(ac)
	if _, err := db.CreateTable(context.Background(), &dynamodb.CreateTableInput{
		TableName:            aws.String("relay-idem"),
		BillingMode:          ddbtypes.BillingModePayPerRequest,
		AttributeDefinitions: []ddbtypes.AttributeDefinition{{AttributeName: aws.String(dynamo.AttrKey), AttributeType: ddbtypes.ScalarAttributeTypeS}},
		KeySchema:            []ddbtypes.KeySchemaElement{{AttributeName: aws.String(dynamo.AttrKey), KeyType: ddbtypes.KeyTypeHash}},
	}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	count := map[string]int{}
	p := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k := r.Header.Get("Idempotency-Key")
		mu.Lock()
		count[k]++
		n := count[k]
		mu.Unlock()
		if r.URL.Path == "/v2/huge" {
			w.Write(make([]byte, 5<<20))
			return
		}
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, "paid %s #%d", k, n)
	}))
	defer p.Close()
	key, hash := keys.New()
	src := fmt.Sprintf(`
upstreams:
  partner: {url: "%s/v2", idempotency: {max_stored_body: 6MiB}}
clients:
  - {name: fn, key_sha256: %s, upstreams: [partner]}
network: {allow_cidrs: [127.0.0.0/8], ca_files: [%s]}
`, p.URL, hash, testutil.WriteCA(t, p))
	cfg, err := config.Parse([]byte(src), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	noEnv := func(string) string { return "" }
	newAPI := func() (dynamo.API, error) { return db, nil }
	if _, err := lambdarelay.OpenIdempotency(cfg, noEnv, newAPI); err == nil || !strings.Contains(err.Error(), "dynamodb_table") {
		t.Fatalf("no table named: %v", err)
	}
	env := func(k string) string {
		if k == lambdarelay.EnvIdempotencyTable {
			return "relay-idem"
		}
		return ""
	}
	st, err := lambdarelay.OpenIdempotency(cfg, env, newAPI)
	if err != nil {
		t.Fatal(err)
	}
	out := &bytes.Buffer{}
	h, err := lambdarelay.New(lambdarelay.Options{Config: cfg, Log: out, Metrics: out, Idempotency: st})
	if err != nil {
		t.Fatal(err)
	}
	e := &env2{h: lambda.NewHandler(h.Handle)}
	call := func(path, k string) map[string]any {
		ev := sample(t, "events/testdata/lambda-urls-request.json")
		ev["rawPath"] = path
		ev["headers"].(map[string]any)["outgate-key"] = key
		ev["headers"].(map[string]any)["idempotency-key"] = k
		return e.invoke(t, ev)
	}
	first, second := call("/partner/pay", "L1"), call("/partner/pay", "L1")
	if first["statusCode"] != float64(201) || first["body"] != "paid L1 #1" {
		t.Fatalf("first %v", first)
	}
	if second["statusCode"] != float64(201) || second["body"] != "paid L1 #1" || second["headers"].(map[string]any)["Outgate-Idempotent-Replay"] != "true" {
		t.Fatalf("retry %v", second)
	}
	huge := call("/partner/huge", "L2")
	if huge["statusCode"] != float64(502) || huge["headers"].(map[string]any)["Outgate-Error"] != "response_too_large" {
		t.Fatalf("too large: %v %v", huge["statusCode"], huge["headers"])
	}
	// The audit line says what the caller got, not the partner's 200.
	if !strings.Contains(out.String(), `"status":502,`) || !strings.Contains(out.String(), `"reason":"response_too_large"`) {
		t.Errorf("the audit line of the refused answer:\n%s", out)
	}
	again := call("/partner/huge", "L2")
	if again["statusCode"] != float64(409) || again["headers"].(map[string]any)["Outgate-Error"] != "outcome_unknown" {
		t.Fatalf("retry of an answer never returned: %v %v", again["statusCode"], again["headers"])
	}
	if count["L1"] != 1 || count["L2"] != 1 {
		t.Fatalf("partner counts %v", count)
	}
}

type env2 struct{ h lambda.Handler }

func (e *env2) invoke(t *testing.T, ev any) map[string]any {
	return (&env{h: e.h}).invoke(t, ev)
}
