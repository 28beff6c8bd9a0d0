package lambdarelay_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/outgate/outgate/internal/config"
	"github.com/outgate/outgate/internal/keys"
	"github.com/outgate/outgate/internal/lambdarelay"
	"github.com/outgate/outgate/internal/testutil"
)

// hygiene is a relay with two upstreams on one partner: "partner" with the
// defaults, "optin" forwarding X-Forwarded-For and X-Api-Key. The partner
// records every request and answers /v2/forge with outgate's own headers.
type hygiene struct {
	h    lambda.Handler
	key  string
	mu   sync.Mutex
	reqs []*http.Request
}

func newHygiene(t *testing.T) *hygiene {
	t.Helper()
	e := &hygiene{}
	p := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		e.reqs = append(e.reqs, r)
		e.mu.Unlock()
		if strings.HasSuffix(r.URL.Path, "/forge") {
			w.Header().Set("Outgate-Error", "unauthorized")
			w.Header().Set("Outgate-Request-Id", "forged-by-the-partner")
			w.Header().Set("Connection", "Outgate-Request-Id")
		}
		io.WriteString(w, "ok")
	}))
	t.Cleanup(p.Close)
	key, hash := keys.New()
	cfg, err := config.Parse([]byte(fmt.Sprintf(`
upstreams:
  partner: {url: "%s/v2"}
  optin: {url: "%s/v2", forward_headers: [X-Forwarded-For, X-Api-Key]}
clients:
  - {name: fn, key_sha256: %s, upstreams: [partner, optin]}
network: {allow_cidrs: [127.0.0.0/8], ca_files: [%s]}
`, p.URL, p.URL, hash, testutil.WriteCA(t, p))), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	h, err := lambdarelay.New(lambdarelay.Options{Config: cfg, Log: &bytes.Buffer{}, Metrics: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	e.h, e.key = lambda.NewHandler(h.Handle), key
	return e
}

func (e *hygiene) invoke(t *testing.T, ev map[string]any) (map[string]any, *http.Request) {
	t.Helper()
	e.mu.Lock()
	e.reqs = nil
	e.mu.Unlock()
	resp := (&env{h: e.h}).invoke(t, ev)
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.reqs) == 0 {
		return resp, nil
	}
	return resp, e.reqs[0]
}

// claims are client headers a caller can put in any event: a Function URL
// or HTTP API passes them to the function as sent.
var claims = map[string]string{
	"x-forwarded-host": "admin.partner.example",
	"x-forwarded-for":  "198.51.100.1",
	"x-real-ip":        "198.51.100.1",
	"true-client-ip":   "198.51.100.1",
	"forwarded":        "for=198.51.100.1",
	"via":              "1.1 trusted",
	"x-api-key":        "the-partners-key",
}

// TestLambdaClientHeaders: the Lambda relay drops the same client headers
// as `outgate serve` (the real events carry X-Forwarded-For, -Port, -Proto
// and Via from AWS), forwards exactly those an upstream names, and never
// forwards an API key that API Gateway itself checked.
func TestLambdaClientHeaders(t *testing.T) {
	e := newHygiene(t)
	for _, file := range []string{"events/testdata/lambda-urls-request.json", "events/testdata/apigw-v2-request-no-authorizer.json"} {
		for _, up := range []string{"partner", "optin"} {
			ev := sample(t, file)
			ev["rawPath"] = "/" + up + "/x"
			h := ev["headers"].(map[string]any)
			h["outgate-key"] = e.key
			for k, v := range claims {
				h[k] = v
			}
			resp, r := e.invoke(t, ev)
			if r == nil {
				t.Fatalf("%s %s: the partner got nothing: %v", file, up, resp)
			}
			for k, v := range claims {
				want := ""
				if up == "optin" && (k == "x-forwarded-for" || k == "x-api-key") {
					want = v
				}
				if got := r.Header.Get(k); got != want {
					t.Errorf("%s, upstream %s: the partner got %s = %q, want %q", file, up, k, got, want)
				}
			}
			for _, k := range []string{"X-Forwarded-Port", "X-Forwarded-Proto"} {
				if got := r.Header.Get(k); got != "" {
					t.Errorf("%s, upstream %s: the partner got %s = %q", file, up, k, got)
				}
			}
		}
	}

	// The same claims spelled with '_', which CGI and WSGI partners read as
	// the dashed names; not forwarded even where the dashed one is kept.
	ev := sample(t, "events/testdata/lambda-urls-request.json")
	ev["rawPath"] = "/optin/x"
	h := ev["headers"].(map[string]any)
	h["outgate-key"] = e.key
	for _, k := range []string{"x_forwarded_for", "x_api_key", "x_real_ip", "outgate_key"} {
		h[k] = "198.51.100.1"
	}
	if _, r := e.invoke(t, ev); r == nil {
		t.Fatal("underscored claims: the partner got nothing")
	} else {
		for k, v := range r.Header {
			if strings.Contains(k, "_") {
				t.Errorf("underscored claims: the partner got %s = %q", k, v)
			}
		}
	}

	// A REST API event whose key API Gateway validated (requestContext.identity.apiKey).
	for _, up := range []string{"partner", "optin"} {
		ev := sample(t, "events/testdata/apigw-request.json")
		ev["path"] = "/" + up + "/rest"
		mv := ev["multiValueHeaders"].(map[string]any)
		mv["Outgate-Key"] = []any{e.key}
		mv["x-api-key"] = []any{"theApiKey"}
		mv["X-Real-Ip"] = []any{"198.51.100.1"}
		_, r := e.invoke(t, ev)
		if r == nil {
			t.Fatalf("REST %s: the partner got nothing", up)
		}
		if got := r.Header.Get("X-Api-Key"); got != "" {
			t.Errorf("REST, upstream %s: API Gateway's own API key reached the partner: %q", up, got)
		}
		wantXFF := ""
		if up == "optin" {
			wantXFF = "54.240.196.186, 54.182.214.83"
		}
		if got := r.Header.Get("X-Forwarded-For"); got != wantXFF {
			t.Errorf("REST, upstream %s: X-Forwarded-For = %q, want %q", up, got, wantXFF)
		}
		for _, k := range []string{"Via", "X-Real-Ip", "X-Forwarded-Port", "X-Forwarded-Proto"} {
			if got := r.Header.Get(k); got != "" {
				t.Errorf("REST, upstream %s: the partner got %s = %q", up, k, got)
			}
		}
	}
}

// TestLambdaPartnerCannotForgeOutgateHeaders: a partner's Outgate-* headers
// never reach the caller, who sees the function's own request id.
func TestLambdaPartnerCannotForgeOutgateHeaders(t *testing.T) {
	e := newHygiene(t)
	ev := sample(t, "events/testdata/lambda-urls-request.json")
	ev["rawPath"] = "/partner/forge"
	ev["headers"].(map[string]any)["outgate-key"] = e.key
	resp, _ := e.invoke(t, ev)
	hdr := resp["headers"].(map[string]any)
	if resp["statusCode"] != float64(200) || hdr["Outgate-Error"] != nil {
		t.Errorf("the partner's Outgate-Error reached the caller: %v", resp)
	}
	if id, _ := hdr["Outgate-Request-Id"].(string); len(id) != 32 {
		t.Errorf("Outgate-Request-Id = %q, want the function's own", hdr["Outgate-Request-Id"])
	}
}

// TestLambdaRefusesDotSegments: the Lambda relay refuses the spellings that
// climb out of the base path, from both event shapes, before any request.
func TestLambdaRefusesDotSegments(t *testing.T) {
	e := newHygiene(t)
	for _, p := range []string{"/partner/..;/admin", "/partner/%2e%2e%3b/admin", "/partner/.;/..;x=1/admin", "/partner/..%5cadmin", "/partner/%252e%252e/admin"} {
		ev := sample(t, "events/testdata/lambda-urls-request.json")
		ev["rawPath"] = p
		ev["headers"].(map[string]any)["outgate-key"] = e.key
		resp, r := e.invoke(t, ev)
		if resp["statusCode"] != float64(400) || resp["headers"].(map[string]any)["Outgate-Error"] != "bad_request" || r != nil {
			t.Errorf("Function URL %s: %v (partner saw %v)", p, resp, r)
		}
	}
	// REST API events carry the decoded path.
	for _, p := range []string{"/partner/..;/admin", "/partner/.;x/..;/admin", `/partner/..\admin`} {
		ev := sample(t, "events/testdata/apigw-request.json")
		ev["path"] = p
		ev["multiValueHeaders"].(map[string]any)["Outgate-Key"] = []any{e.key}
		resp, r := e.invoke(t, ev)
		if resp["statusCode"] != float64(400) || fmt.Sprint(resp["multiValueHeaders"].(map[string]any)["Outgate-Error"]) != "[bad_request]" || r != nil {
			t.Errorf("REST %s: %v (partner saw %v)", p, resp, r)
		}
	}
}

// TestLambdaLogsConfigWarnings: a cold start logs the config's warnings
// (here allow_cidrs opening loopback), as `outgate serve` does.
func TestLambdaLogsConfigWarnings(t *testing.T) {
	e := setup(t)
	if !strings.Contains(e.out.String(), `"msg":"config warning","warning":"test.yaml:7:25: warning: network.allow_cidrs[0]: 127.0.0.0/8 lets requests reach 127.0.0.0 (loopback)`) {
		t.Errorf("no config warning in the log:\n%s", e.out)
	}
}
