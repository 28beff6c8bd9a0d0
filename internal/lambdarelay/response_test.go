package lambdarelay_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/outgate/outgate/internal/config"
	"github.com/outgate/outgate/internal/keys"
	"github.com/outgate/outgate/internal/lambdarelay"
	"github.com/outgate/outgate/internal/testutil"
)

// lambdaLimit is Lambda's quota on a synchronous invocation's response
// payload: "6 MB" under "Invocation payload (request and response)" in
// https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html,
// which Lambda counts in binary units (its request-side error reads "Request
// must be smaller than 6291456 bytes"). The limit applies to the whole
// response event, JSON envelope included.
const lambdaLimit = 6 * 1024 * 1024

// soapish is XML full of the characters HTML escaping would triple.
const soapish = "<r><v a='1'>1&amp;2</v></r>"

func xmlBody(n int) []byte {
	return []byte(strings.Repeat(soapish, n/len(soapish)+1)[:n])
}

func binBody(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}

// sizedPartner answers /v2/sized?n=&kind=xml|bin&pad= with an n-byte body
// (Content-Length set) and an X-Pad header of pad bytes, and /v2/stream with
// up to 64 MiB of unknown length, reporting on streamed how much it wrote
// before the gateway stopped reading.
type sizedPartner struct {
	url      string
	ca       string
	streamed chan int
}

const streamTotal = 64 << 20

func newSizedPartner(t *testing.T) *sizedPartner {
	sp := &sizedPartner{streamed: make(chan int, 1)}
	p := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if r.URL.Path == "/v2/stream" {
			w.Header().Set("Content-Type", "application/octet-stream")
			chunk := binBody(32 << 10)
			written := 0
			for written < streamTotal {
				k, err := w.Write(chunk)
				written += k
				if err != nil {
					break
				}
			}
			sp.streamed <- written
			return
		}
		n, _ := strconv.Atoi(q.Get("n"))
		pad, _ := strconv.Atoi(q.Get("pad"))
		body := binBody(n)
		w.Header().Set("Content-Type", "application/octet-stream")
		if q.Get("kind") == "xml" {
			body = xmlBody(n)
			w.Header().Set("Content-Type", "application/soap+xml")
		}
		w.Header().Set("X-Pad", strings.Repeat("p", pad))
		w.Header().Set("Content-Length", strconv.Itoa(n))
		w.Write(body)
	}))
	t.Cleanup(p.Close)
	sp.url, sp.ca = p.URL, testutil.WriteCA(t, p)
	return sp
}

type sizedEnv struct {
	h   lambda.Handler
	key string
	out *bytes.Buffer
}

func setupSized(t *testing.T, sp *sizedPartner) *sizedEnv {
	key, hash := keys.New()
	cfg, err := config.Parse([]byte(fmt.Sprintf(`
upstreams:
  partner: {url: "%s/v2"}
clients:
  - {name: fn, key_sha256: %s, upstreams: [partner]}
network: {allow_cidrs: [127.0.0.0/8], ca_files: [%s]}
`, sp.url, hash, sp.ca)), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	out := &bytes.Buffer{}
	h, err := lambdarelay.New(lambdarelay.Options{Config: cfg, Function: "relay", Log: out, Metrics: out})
	if err != nil {
		t.Fatal(err)
	}
	return &sizedEnv{h: lambda.NewHandler(h.Handle), key: key, out: out}
}

// eventKinds builds each kind of event for a path and query, from the real
// samples aws-lambda-go ships.
var eventKinds = []struct {
	name  string
	event func(t *testing.T, key, path, query string) map[string]any
}{
	{"function URL", func(t *testing.T, key, path, query string) map[string]any {
		ev := sample(t, "events/testdata/lambda-urls-request.json")
		ev["rawPath"], ev["rawQueryString"] = path, query
		ev["headers"].(map[string]any)["outgate-key"] = key
		return ev
	}},
	{"HTTP API v2", func(t *testing.T, key, path, query string) map[string]any {
		ev := sample(t, "events/testdata/apigw-v2-request-no-authorizer.json")
		ev["rawPath"], ev["rawQueryString"] = path, query
		ev["headers"].(map[string]any)["outgate-key"] = key
		return ev
	}},
	{"REST v1", func(t *testing.T, key, path, query string) map[string]any {
		ev := sample(t, "events/testdata/apigw-request.json")
		ev["path"] = path
		ev["multiValueHeaders"].(map[string]any)["Outgate-Key"] = []any{key}
		single, multi := map[string]any{}, map[string]any{}
		for k, vs := range mustQuery(t, query) {
			single[k], multi[k] = vs[0], vs
		}
		ev["queryStringParameters"], ev["multiValueQueryStringParameters"] = single, multi
		return ev
	}},
}

func mustQuery(t *testing.T, q string) map[string][]string {
	m := map[string][]string{}
	for _, kv := range strings.Split(q, "&") {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = append(m[k], v)
	}
	return m
}

// result is one invocation's raw payload (what the runtime posts to Lambda)
// and its decoded fields.
type result struct {
	raw     []byte
	status  int
	errCode string
	body    []byte
}

func (e *sizedEnv) call(t *testing.T, ev map[string]any) result {
	t.Helper()
	payload, _ := json.Marshal(ev)
	raw, err := e.h.Invoke(context.Background(), payload)
	if err != nil {
		t.Fatalf("invoke: %v", err)
	}
	var m struct {
		StatusCode        int                 `json:"statusCode"`
		Headers           map[string]string   `json:"headers"`
		MultiValueHeaders map[string][]string `json:"multiValueHeaders"`
		Body              string              `json:"body"`
		IsBase64Encoded   bool                `json:"isBase64Encoded"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("response is not JSON: %v", err)
	}
	r := result{raw: raw, status: m.StatusCode, errCode: m.Headers["Outgate-Error"], body: []byte(m.Body)}
	if v := m.MultiValueHeaders["Outgate-Error"]; len(v) > 0 {
		r.errCode = v[0]
	}
	if m.IsBase64Encoded {
		if r.body, err = base64.StdEncoding.DecodeString(m.Body); err != nil {
			t.Fatalf("base64 body: %v", err)
		}
	}
	return r
}

// tooLarge checks that an answer that cannot fit came back as outgate's 502
// and that the audit line and the EMF metrics say so.
func (e *sizedEnv) tooLarge(t *testing.T, what string, r result) {
	t.Helper()
	if r.status != http.StatusBadGateway || r.errCode != "response_too_large" || !bytes.Contains(r.body, []byte(`"code":"response_too_large"`)) {
		t.Errorf("%s: got status %d, error %q, body %.200q; want 502 response_too_large", what, r.status, r.errCode, r.body)
	}
	log := e.out.String()
	if !strings.Contains(log, `"status":502`) || !strings.Contains(log, `"decision":"error"`) || !strings.Contains(log, `"reason":"response_too_large"`) {
		t.Errorf("%s: the audit line does not record the 502:\n%.2000s", what, log)
	}
	if strings.Contains(log, `"decision":"allow"`) {
		t.Errorf("%s: the audit line records an allowed request:\n%.2000s", what, log)
	}
	if !strings.Contains(log, `"Code":"response_too_large"`) || !strings.Contains(log, `"Errors":1`) || strings.Count(log, `"Requests":1`) != 1 {
		t.Errorf("%s: EMF must count one request, failed with response_too_large:\n%.2000s", what, log)
	}
}

func b64len(n int) int { return (n + 2) / 3 * 4 }

// TestResponseAtTheLimit: for every event kind, a text (XML) and a binary
// answer whose response event is exactly Lambda's limit arrive whole; one
// byte more, or 7,000,000 bytes, is outgate's 502 response_too_large, never
// a 200 with an empty body.
func TestResponseAtTheLimit(t *testing.T) {
	if lambdarelay.MaxResponsePayload != lambdaLimit {
		t.Fatalf("MaxResponsePayload is %d; Lambda's documented limit is %d", lambdarelay.MaxResponsePayload, lambdaLimit)
	}
	sp := newSizedPartner(t)
	e := setupSized(t, sp)
	for _, kind := range eventKinds {
		event := func(n, pad int, k string) map[string]any {
			return kind.event(t, e.key, "/partner/sized", fmt.Sprintf("n=%d&kind=%s&pad=%d", n, k, pad))
		}
		run := func(n, pad int, k string) result {
			e.out.Reset()
			return e.call(t, event(n, pad, k))
		}
		fits := func(what string, r result, want []byte) {
			t.Helper()
			if r.status != 200 || len(r.raw) != lambdaLimit || !bytes.Equal(r.body, want) {
				t.Errorf("%s %s: status %d, event %d bytes (want %d), body %d bytes intact=%v",
					kind.name, what, r.status, len(r.raw), lambdaLimit, len(r.body), bytes.Equal(r.body, want))
			}
		}
		// Probe the envelope's size with a 7-digit body, as the sizes below
		// (the Content-Length header's digits count).
		const n0 = 1_000_000
		probe := run(n0, 10, "xml")
		if probe.status != 200 {
			t.Fatalf("%s probe: status %d\n%s", kind.name, probe.status, e.out)
		}
		// XML: one byte of event per byte of body (no HTML escaping).
		n := n0 + lambdaLimit - len(probe.raw)
		fits("XML at the limit", run(n, 10, "xml"), xmlBody(n))
		e.tooLarge(t, kind.name+" XML one byte over", run(n+1, 10, "xml"))
		e.tooLarge(t, kind.name+" XML of 7,000,000 bytes", run(7_000_000, 10, "xml"))

		// Binary: base64 is 4 bytes per 3; the X-Pad header makes up the rest.
		probe = run(n0, 10, "bin")
		base := len(probe.raw) - b64len(n0) - 10
		n = (lambdaLimit - base - 10) / 4 * 3
		pad := lambdaLimit - base - b64len(n)
		fits("binary at the limit", run(n, pad, "bin"), binBody(n))
		e.tooLarge(t, kind.name+" binary one byte over", run(n, pad+1, "bin"))
		e.tooLarge(t, kind.name+" binary of 7,000,000 bytes", run(7_000_000, 10, "bin"))
	}
}

// TestResponseTooLargeStopsReading: an answer of unknown length that goes on
// and on is refused once it cannot fit: the gateway stops reading it (the
// partner's write fails long before its 64 MiB) and answers 502.
func TestResponseTooLargeStopsReading(t *testing.T) {
	sp := newSizedPartner(t)
	e := setupSized(t, sp)
	r := e.call(t, eventKinds[0].event(t, e.key, "/partner/stream", "x=1"))
	e.tooLarge(t, "a 64 MiB stream", r)
	select {
	case written := <-sp.streamed:
		if written >= streamTotal {
			t.Errorf("the partner wrote all %d bytes: the gateway read on past the limit", written)
		}
	case <-time.After(time.Minute):
		t.Fatal("the partner is still writing a minute after the gateway answered")
	}
}
