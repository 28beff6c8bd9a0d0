package lambdarelay_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/outgate/outgate/internal/config"
	"github.com/outgate/outgate/internal/keys"
	"github.com/outgate/outgate/internal/lambdarelay"
	"github.com/outgate/outgate/internal/testutil"
)

// sample reads one of the real events aws-lambda-go ships in its testdata.
func sample(t *testing.T, rel string) map[string]any {
	t.Helper()
	dir, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/aws/aws-lambda-go").Output()
	if err != nil {
		t.Fatalf("locating aws-lambda-go: %v", err)
	}
	data, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(dir)), rel))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

type seen struct {
	mu  sync.Mutex
	req *http.Request
	b   []byte
}

type env struct {
	h       lambda.Handler
	key     string
	partner *seen
	out     *bytes.Buffer
}

func setup(t *testing.T, expected ...string) *env {
	t.Helper()
	s := &seen{}
	p := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.req, s.b = r, b
		s.mu.Unlock()
		switch r.URL.Path {
		case "/v2/binary":
			w.Header().Set("Content-Type", "image/png")
			w.Write([]byte{0x89, 'P', 'N', 'G', 0, 1, 2, 0xff})
		case "/v2/huge":
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Write(make([]byte, 5<<20)) // 5 MiB raw is over 6 MB once base64-encoded
		case "/v2/ip":
			io.WriteString(w, "203.0.113.9\n")
		default:
			w.Header().Set("Content-Type", "application/json")
			w.Header().Add("Set-Cookie", "s=1; Path=/")
			w.Header().Add("Set-Cookie", "t=2")
			w.Header().Add("X-Multi", "a")
			w.Header().Add("X-Multi", "b")
			w.WriteHeader(http.StatusAccepted)
			fmt.Fprintf(w, `{"method":%q,"len":%d}`, r.Method, len(b))
		}
	}))
	t.Cleanup(p.Close)
	key, hash := keys.New()
	yaml := fmt.Sprintf(`
egress_check_url: %s/v2/ip
upstreams:
  partner: {url: "%s/v2"}
clients:
  - {name: fn, key_sha256: %s, upstreams: [partner]}
network: {allow_cidrs: [127.0.0.0/8], ca_files: [%s]}
`, p.URL, p.URL, hash, testutil.WriteCA(t, p))
	cfg, err := config.Parse([]byte(yaml), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var exp []netip.Addr
	for _, e := range expected {
		exp = append(exp, netip.MustParseAddr(e))
	}
	out := &bytes.Buffer{}
	h, err := lambdarelay.New(lambdarelay.Options{Config: cfg, Function: "relay", Expected: exp, Log: out, Metrics: out})
	if err != nil {
		t.Fatal(err)
	}
	return &env{h: lambda.NewHandler(h.Handle), key: key, partner: s, out: out}
}

func (e *env) invoke(t *testing.T, event any) map[string]any {
	t.Helper()
	payload, _ := json.Marshal(event)
	out, err := e.h.Invoke(context.Background(), payload)
	if err != nil {
		t.Fatalf("invoke: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatalf("response %s: %v", out, err)
	}
	return m
}

func TestFunctionURLEvent(t *testing.T) {
	e := setup(t)
	ev := sample(t, "events/testdata/lambda-urls-request.json")
	ev["rawPath"] = "/partner/pay/a%2Fb"
	ev["headers"].(map[string]any)["outgate-key"] = e.key
	ev["headers"].(map[string]any)["x-forwarded-for"] = "123.123.123.123"
	ev["headers"].(map[string]any)["x-amzn-trace-id"] = "Root=1-abc"
	resp := e.invoke(t, ev)

	if resp["statusCode"] != float64(202) || resp["body"] != `{"method":"POST","len":18}` || resp["isBase64Encoded"] == true {
		t.Fatalf("response %v", resp)
	}
	cookies := resp["cookies"].([]any)
	if len(cookies) != 2 || cookies[0] != "s=1; Path=/" {
		t.Errorf("cookies %v: each Set-Cookie must be its own cookie", cookies)
	}
	hdr := resp["headers"].(map[string]any)
	if hdr["X-Multi"] != "a, b" || hdr["Outgate-Request-Id"] == nil {
		t.Errorf("headers %v", hdr)
	}
	r := e.partner.req
	if r.URL.EscapedPath() != "/v2/pay/a%2Fb" || r.URL.RawQuery != "parameter1=value1&parameter1=value2&parameter2=value" {
		t.Errorf("partner saw %s?%s", r.URL.EscapedPath(), r.URL.RawQuery)
	}
	if string(e.partner.b) != "Hello from client!" || r.Header.Get("Cookie") != "cookie1; cookie2" || r.Header.Get("Header2") != "value1,value2" {
		t.Errorf("partner saw body %q, headers %v", e.partner.b, r.Header)
	}
	for _, h := range []string{"Outgate-Key", "X-Forwarded-For", "X-Amzn-Trace-Id", "Authorization", "X-Amz-Security-Token"} {
		if r.Header.Get(h) != "" {
			t.Errorf("partner received %s", h)
		}
	}
	if !strings.Contains(e.out.String(), `"msg":"request"`) || !strings.Contains(e.out.String(), `"CloudWatchMetrics"`) {
		t.Errorf("no audit line or EMF metrics:\n%s", e.out)
	}
	if strings.Contains(e.out.String(), e.key) || strings.Contains(e.out.String(), "parameter1") {
		t.Error("the key or the query string reached the log")
	}
}

func TestFunctionURLBase64AndBinary(t *testing.T) {
	e := setup(t)
	ev := sample(t, "lambdaurl/testdata/function-url-domain-only-request-with-base64-encoded-body.json")
	ev["rawPath"] = "/partner/binary"
	ev["headers"].(map[string]any)["outgate-key"] = e.key
	resp := e.invoke(t, ev)
	if string(e.partner.b) != "<idk/>" {
		t.Errorf("partner body %q: the base64 request body must be decoded", e.partner.b)
	}
	body, _ := base64.StdEncoding.DecodeString(fmt.Sprint(resp["body"]))
	if resp["isBase64Encoded"] != true || !bytes.Equal(body, []byte{0x89, 'P', 'N', 'G', 0, 1, 2, 0xff}) {
		t.Errorf("binary response: %v", resp)
	}
}

func TestAPIGatewayV2Event(t *testing.T) {
	e := setup(t)
	ev := sample(t, "events/testdata/apigw-v2-request-no-authorizer.json")
	ev["rawPath"] = "/partner/v2path"
	ev["rawQueryString"] = "a=1&a=2"
	ev["headers"].(map[string]any)["outgate-key"] = e.key
	resp := e.invoke(t, ev)
	if resp["statusCode"] != float64(202) || e.partner.req.URL.Path != "/v2/v2path" || e.partner.req.URL.RawQuery != "a=1&a=2" {
		t.Fatalf("response %v, partner saw %s", resp, e.partner.req.URL)
	}
	// A stage other than $default is the first path segment.
	ev["requestContext"].(map[string]any)["stage"] = "prod"
	ev["rawPath"] = "/prod/partner/staged"
	e.invoke(t, ev)
	if e.partner.req.URL.Path != "/v2/staged" {
		t.Errorf("staged path reached the partner as %s", e.partner.req.URL.Path)
	}
}

func TestAPIGatewayV1Event(t *testing.T) {
	e := setup(t)
	ev := sample(t, "events/testdata/apigw-request.json")
	ev["path"] = "/partner/rest"
	mv := ev["multiValueHeaders"].(map[string]any)
	mv["Outgate-Key"] = []any{e.key}
	resp := e.invoke(t, ev)
	if resp["statusCode"] != float64(202) {
		t.Fatalf("response %v", resp)
	}
	mvh := resp["multiValueHeaders"].(map[string]any)
	if fmt.Sprint(mvh["X-Multi"]) != "[a b]" || fmt.Sprint(mvh["Set-Cookie"]) != "[s=1; Path=/ t=2]" {
		t.Errorf("multiValueHeaders %v", mvh)
	}
	r := e.partner.req
	if r.Method != "POST" || r.URL.Path != "/v2/rest" || r.Header.Get("Via") != "" || r.Header.Get("Cloudfront-Viewer-Country") != "" {
		t.Errorf("partner saw %s %s %v", r.Method, r.URL, r.Header)
	}
	if q := r.URL.Query(); q.Get("name") == "" {
		t.Errorf("multi-value query lost: %v", r.URL.RawQuery)
	}
	// Without a key: outgate's own 401.
	delete(mv, "Outgate-Key")
	resp = e.invoke(t, ev)
	if resp["statusCode"] != float64(401) || fmt.Sprint(resp["multiValueHeaders"].(map[string]any)["Outgate-Error"]) != "[unauthorized]" {
		t.Errorf("no key: %v", resp)
	}
}

func TestResponseTooLarge(t *testing.T) {
	e := setup(t)
	ev := sample(t, "events/testdata/lambda-urls-request.json")
	ev["rawPath"] = "/partner/huge"
	ev["headers"].(map[string]any)["outgate-key"] = e.key
	resp := e.invoke(t, ev)
	if resp["statusCode"] != float64(502) || resp["headers"].(map[string]any)["Outgate-Error"] != "response_too_large" {
		t.Fatalf("oversized response: status %v headers %v", resp["statusCode"], resp["headers"])
	}
	if !strings.Contains(fmt.Sprint(resp["body"]), "response_too_large") {
		t.Errorf("body %v", resp["body"])
	}
}

func TestKeepalive(t *testing.T) {
	for _, tt := range []struct {
		expected []string
		want     string
	}{{[]string{"203.0.113.9"}, `"EgressIpExpected":1`}, {[]string{"198.51.100.1"}, `"EgressIpExpected":0`}} {
		e := setup(t, tt.expected...)
		// An EventBridge scheduled event, as the EventBridge user guide shows it
		// (aws-lambda-go ships no sample of this kind).
		ev := map[string]any{"version": "0", "id": "89d1a02d-5ec7-412e-82f5-13505f849b41", "detail-type": "Scheduled Event",
			"source": "aws.events", "account": "123456789012", "time": "2026-11-23T10:00:00Z", "region": "us-east-1",
			"resources": []string{"arn:aws:events:us-east-1:123456789012:rule/outgate-keepalive"}, "detail": map[string]any{}}
		resp := e.invoke(t, ev)
		if resp["egress_ip"] != "203.0.113.9" {
			t.Fatalf("keepalive: %v", resp)
		}
		if !strings.Contains(e.out.String(), tt.want) {
			t.Errorf("expected %v: no %s metric in\n%s", tt.expected, tt.want, e.out)
		}
	}
	e := setup(t)
	resp := e.invoke(t, map[string]string{"outgate": "keepalive"})
	if resp["egress_ip"] != "203.0.113.9" || resp["expected"] != nil {
		t.Errorf("keepalive without expected IPs: %v", resp)
	}
}

func TestUnsupportedEvent(t *testing.T) {
	e := setup(t)
	payload := []byte(`{"Records":[{"eventSource":"aws:sqs"}]}`)
	if _, err := e.h.Invoke(context.Background(), payload); err == nil || !strings.Contains(err.Error(), "unsupported event") {
		t.Errorf("SQS event: %v", err)
	}
}

func TestLoadConfig(t *testing.T) {
	yaml := "clients: [{name: a, key_sha256: " + keys.Hash("og_x") + ", hosts: [api.example]}]\n"
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	noSSM := func(context.Context) (lambdarelay.SSM, error) { t.Fatal("SSM used"); return nil, nil }

	cfg, err := lambdarelay.LoadConfig(context.Background(), env(map[string]string{"OUTGATE_CONFIG": yaml}), noSSM)
	if err != nil || len(cfg.Clients) != 1 {
		t.Fatalf("inline: %v", err)
	}
	_, err = lambdarelay.LoadConfig(context.Background(), env(map[string]string{"OUTGATE_CONFIG": "clients: []\n"}), noSSM)
	if err == nil || !strings.HasPrefix(err.Error(), "$OUTGATE_CONFIG:1:10: clients: at least one client") {
		t.Errorf("bad inline config: %v", err)
	}
	_, err = lambdarelay.LoadConfig(context.Background(), env(nil), noSSM)
	if err == nil || !strings.Contains(err.Error(), "OUTGATE_CONFIG_SSM") {
		t.Errorf("no config: %v", err)
	}
	_, err = lambdarelay.LoadConfig(context.Background(), env(map[string]string{"OUTGATE_CONFIG": yaml, "OUTGATE_CONFIG_SSM": "/x"}), noSSM)
	if err == nil || !strings.Contains(err.Error(), "not both") {
		t.Errorf("both: %v", err)
	}
}

func TestParseExpected(t *testing.T) {
	ips, err := lambdarelay.ParseExpected(" 203.0.113.9, ::ffff:198.51.100.1 ,")
	if err != nil || len(ips) != 2 || ips[1].String() != "198.51.100.1" {
		t.Errorf("%v %v", ips, err)
	}
	if _, err := lambdarelay.ParseExpected("203.0.113.9,nope"); err == nil {
		t.Error("accepted a bad IP")
	}
}

// TestReloadFromSource: a warm relay picks up a new config version (a key
// added with outgate keys) once ReloadEvery has passed, and keeps the old
// config when the new one cannot be read.
func TestReloadFromSource(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer up.Close()
	k1, h1 := keys.New()
	k2, h2 := keys.New()
	yaml := func(hashes string) *config.Config {
		c, err := config.Parse([]byte(fmt.Sprintf("upstreams: {p: {url: %q}}\nclients: [{name: fn, key_sha256: %s, upstreams: [p]}]\nnetwork: {allow_cidrs: [127.0.0.0/8]}\n", up.URL, hashes)), "t")
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	var version = "1"
	var fail error
	src := func(context.Context) (*config.Config, string, error) {
		if fail != nil {
			return nil, "", fail
		}
		if version == "1" {
			return yaml(h1), version, nil
		}
		return yaml("[" + h1 + ", " + h2 + "]"), version, nil
	}
	out := &bytes.Buffer{}
	h, err := lambdarelay.New(lambdarelay.Options{Config: yaml(h1), Version: "1", Reload: src, ReloadEvery: time.Hour, Log: out, Metrics: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Now()
	lambdarelay.SetClock(h, func() time.Time { return clock })
	call := func(key string) float64 {
		ev := map[string]any{"version": "2.0", "rawPath": "/p/x", "headers": map[string]string{"outgate-key": key},
			"requestContext": map[string]any{"http": map[string]any{"method": "GET"}}}
		payload, _ := json.Marshal(ev)
		res, err := lambda.NewHandler(h.Handle).Invoke(context.Background(), payload)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		json.Unmarshal(res, &m)
		return m["statusCode"].(float64)
	}
	if call(k1) != 200 || call(k2) != 401 {
		t.Fatal("before the reload")
	}
	version = "2"
	if call(k2) != 401 {
		t.Fatal("the config was re-read before ReloadEvery passed")
	}
	clock = clock.Add(2 * time.Hour)
	if call(k2) != 200 || call(k1) != 200 {
		t.Fatal("the new key does not work after the reload")
	}
	fail = fmt.Errorf("SSM is down")
	clock = clock.Add(2 * time.Hour)
	if call(k2) != 200 || !strings.Contains(out.String(), "config reload failed; the running config stays") {
		t.Fatalf("a failed reload must keep the running config:\n%s", out)
	}
}

// TestKeepaliveWithABrokenEgressCheck: an egress check whose answer breaks
// off is a failed check (EgressIpExpected 0), not a crashed invocation.
func TestKeepaliveWithABrokenEgressCheck(t *testing.T) {
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		io.WriteString(w, "203.0")
		conn, _, _ := http.NewResponseController(w).Hijack()
		conn.Close()
	}))
	defer broken.Close()
	_, hash := keys.New()
	cfg, err := config.Parse([]byte(fmt.Sprintf("egress_check_url: %s\nclients: [{name: a, key_sha256: %s, hosts: [x.example]}]\nnetwork: {allow_cidrs: [127.0.0.0/8]}\n", broken.URL, hash)), "t")
	if err != nil {
		t.Fatal(err)
	}
	out := &bytes.Buffer{}
	h, err := lambdarelay.New(lambdarelay.Options{Config: cfg, Expected: []netip.Addr{netip.MustParseAddr("203.0.113.9")}, Log: out, Metrics: out})
	if err != nil {
		t.Fatal(err)
	}
	res, err := lambda.NewHandler(h.Handle).Invoke(context.Background(), []byte(`{"outgate":"keepalive"}`))
	if err != nil {
		t.Fatalf("the keepalive crashed: %v", err)
	}
	if !strings.Contains(string(res), `"error":"bad_gateway"`) || !strings.Contains(out.String(), `"EgressIpExpected":0`) {
		t.Errorf("result %s\nlog %s", res, out)
	}
}
