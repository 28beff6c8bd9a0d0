package server_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/outgate/outgate/internal/config"
	"github.com/outgate/outgate/internal/idempotency"
	"github.com/outgate/outgate/internal/server"
	"github.com/outgate/outgate/internal/testutil"
)

// countingPartner answers per path and counts the requests it got per
// idempotency key: the number a payment partner would have charged.
type countingPartner struct {
	mu      sync.Mutex
	seen    map[string]int
	arrived chan string   // /slow: the key, once the request is in
	release chan struct{} // /slow and /hang wait for it
}

func (c *countingPartner) count(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seen[key]
}

func (c *countingPartner) handler(w http.ResponseWriter, r *http.Request) {
	key := r.Header.Get("Idempotency-Key")
	body, _ := io.ReadAll(r.Body)
	c.mu.Lock()
	c.seen[key]++
	n := c.seen[key]
	c.mu.Unlock()
	switch {
	case strings.HasSuffix(r.URL.Path, "/slow"):
		c.arrived <- key
		<-c.release
	case strings.HasSuffix(r.URL.Path, "/hang"):
		<-c.release // past the upstream's timeout
		return
	case strings.HasSuffix(r.URL.Path, "/big"):
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, strings.Repeat("x", 4096))
		return
	case strings.HasSuffix(r.URL.Path, "/break"):
		w.Header().Set("Content-Length", "100")
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, "partial")
		http.NewResponseController(w).Flush()
		panic(http.ErrAbortHandler)
	}
	w.Header().Set("X-Transfer", fmt.Sprintf("tr_%s_%d", key, n))
	w.WriteHeader(http.StatusCreated)
	fmt.Fprintf(w, "paid %s (%s) #%d", key, body, n)
}

func newCountingPartner(t *testing.T) (*countingPartner, *partner) {
	c := &countingPartner{seen: map[string]int{}, arrived: make(chan string, 1), release: make(chan struct{})}
	p := newPartner(t, c.handler)
	t.Cleanup(func() { close(c.release) })
	return c, p
}

func idemConfig(p *partner, a, b client, extra string) string {
	return fmt.Sprintf(`
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
upstreams:
  bank:
    url: %s/v1
    timeout: 300ms
    idempotency: {max_stored_body: 1KiB}
  strict:
    url: %s/v1
    idempotency: {required: true, methods: [POST]}
  down:
    url: http://127.0.0.1:1
    idempotency: {}
%sclients:
  - {name: %s, key_sha256: %s, upstreams: [bank, strict, down]}
  - {name: %s, key_sha256: %s, upstreams: [bank]}
network:
  allow_cidrs: [127.0.0.0/8]
  ca_files: [%s]
`, p.URL, p.URL, extra, a.name, a.hash, b.name, b.hash, p.ca)
}

func keyed(t *testing.T, g *gateway, c client, method, path, key, body string) *http.Request {
	req := relayReq(t, g, method, path, c.key, strings.NewReader(body))
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	return req
}

func TestIdempotentRetryIsReplayedNotResent(t *testing.T) {
	cp, p := newCountingPartner(t)
	a, b := newClient("shop"), newClient("other")
	g := start(t, idemConfig(p, a, b, ""))

	resp, body := do(t, nil, keyed(t, g, a, "POST", "/bank/pay?amount=10", "k1", `{"to":"x"}`))
	if resp.StatusCode != 201 || body != `paid k1 ({"to":"x"}) #1` || resp.Header.Get("Outgate-Idempotent-Replay") != "" {
		t.Fatalf("first: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	if a := g.logs.audit(t, resp.Header.Get("Outgate-Request-Id")); a["idempotency"] != "sent" {
		t.Errorf("audit of the first = %v", a)
	}
	for range 2 {
		resp2, body2 := do(t, nil, keyed(t, g, a, "POST", "/bank/pay?amount=10", "k1", `{"to":"x"}`))
		if resp2.StatusCode != 201 || body2 != body || resp2.Header.Get("X-Transfer") != "tr_k1_1" || resp2.Header.Get("Outgate-Idempotent-Replay") != "true" {
			t.Fatalf("retry: %d %q %v", resp2.StatusCode, body2, resp2.Header)
		}
		if resp2.Header.Get("Outgate-Request-Id") == resp.Header.Get("Outgate-Request-Id") {
			t.Error("a replay carries the first request's id")
		}
		au := g.logs.audit(t, resp2.Header.Get("Outgate-Request-Id"))
		if au["idempotency"] != "replay" || au["status"] != float64(201) || strings.Contains(g.logs.String(), "paid k1") {
			t.Errorf("audit of a replay = %v (the answer must never be in the log)", au)
		}
	}
	if n := cp.count("k1"); n != 1 {
		t.Fatalf("the partner got k1 %d times, want 1", n)
	}

	// The same key for another request is a client bug.
	for _, r := range []*http.Request{
		keyed(t, g, a, "POST", "/bank/pay?amount=11", "k1", `{"to":"x"}`),
		keyed(t, g, a, "POST", "/bank/pay?amount=10", "k1", `{"to":"y"}`),
		keyed(t, g, a, "PUT", "/bank/pay?amount=10", "k1", `{"to":"x"}`),
		keyed(t, g, a, "POST", "/bank/pay2?amount=10", "k1", `{"to":"x"}`),
	} {
		resp, body := do(t, nil, r)
		wantError(t, resp, body, 422, "idempotency_key_reused")
	}

	// Another client's k1 is its own: sent, and it never sees shop's answer.
	resp, body = do(t, nil, keyed(t, g, b, "POST", "/bank/pay?amount=10", "k1", `{"to":"x"}`))
	if resp.StatusCode != 201 || body != `paid k1 ({"to":"x"}) #2` || resp.Header.Get("Outgate-Idempotent-Replay") != "" {
		t.Fatalf("other client: %d %q", resp.StatusCode, body)
	}

	// Methods outside the list and requests without a key pass as before.
	for range 2 {
		do(t, nil, keyed(t, g, a, "GET", "/bank/pay", "g1", ""))
		do(t, nil, keyed(t, g, a, "POST", "/bank/pay", "", "x"))
	}
	if cp.count("g1") != 2 || cp.count("") != 2 {
		t.Errorf("uncovered requests: g1 %d, none %d; want 2 each", cp.count("g1"), cp.count(""))
	}

	// A malformed key is refused, not sent.
	resp, body = do(t, nil, keyed(t, g, a, "POST", "/bank/pay", strings.Repeat("k", 256), "x"))
	wantError(t, resp, body, 400, "idempotency_key_invalid")

	wantMetrics(t, g, map[string]float64{"replay": 2, "key_reused": 4, "sent": 2, "refused": 1})
}

func TestIdempotencyInFlightThenReplay(t *testing.T) {
	cp, p := newCountingPartner(t)
	a, b := newClient("shop"), newClient("other")
	g := start(t, idemConfig(p, a, b, ""))
	first := make(chan string, 1)
	go func() {
		resp, err := http.DefaultClient.Do(keyed(t, g, a, "POST", "/bank/slow", "s1", "x"))
		if err != nil {
			first <- err.Error()
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		first <- fmt.Sprint(resp.StatusCode, " ", string(body))
	}()
	<-cp.arrived
	resp, body := do(t, nil, keyed(t, g, a, "POST", "/bank/slow", "s1", "x"))
	wantError(t, resp, body, 409, "idempotency_in_flight")
	if resp.Header.Get("Retry-After") == "" {
		t.Error("409 idempotency_in_flight without Retry-After")
	}
	cp.release <- struct{}{}
	if got := <-first; got != "201 paid s1 (x) #1" {
		t.Fatalf("first = %q", got)
	}
	resp, body = do(t, nil, keyed(t, g, a, "POST", "/bank/slow", "s1", "x"))
	if resp.StatusCode != 201 || resp.Header.Get("Outgate-Idempotent-Replay") != "true" || body != "paid s1 (x) #1" {
		t.Fatalf("after: %d %q", resp.StatusCode, body)
	}
	if cp.count("s1") != 1 {
		t.Fatalf("partner got s1 %d times", cp.count("s1"))
	}
}

func TestIdempotencyUnknownOutcomeIsNeverResent(t *testing.T) {
	cp, p := newCountingPartner(t)
	a, b := newClient("shop"), newClient("other")
	g := start(t, idemConfig(p, a, b, ""))

	// The answer breaks off midway: the client sees a broken response.
	if resp, err := http.DefaultClient.Do(keyed(t, g, a, "POST", "/bank/break", "b1", "x")); err == nil {
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil {
			t.Fatalf("a broken answer looked complete: %d %q %v", resp.StatusCode, b, resp.Header)
		}
	}
	// The partner does not answer within the upstream's timeout.
	resp, body := do(t, nil, keyed(t, g, a, "POST", "/bank/hang", "h1", "x"))
	wantError(t, resp, body, 504, "upstream_timeout")

	for _, k := range []string{"b1", "h1"} {
		path := map[string]string{"b1": "/bank/break", "h1": "/bank/hang"}[k]
		for range 2 {
			resp, body := do(t, nil, keyed(t, g, a, "POST", path, k, "x"))
			wantError(t, resp, body, 409, "outcome_unknown")
		}
		if n := cp.count(k); n != 1 {
			t.Errorf("partner got %s %d times, want 1", k, n)
		}
	}
	wantMetrics(t, g, map[string]float64{"marked_unknown": 2, "outcome_unknown": 4})
}

func TestIdempotencyRequiredAndNeverSent(t *testing.T) {
	cp, p := newCountingPartner(t)
	a, b := newClient("shop"), newClient("other")
	g := start(t, idemConfig(p, a, b, ""))
	resp, body := do(t, nil, keyed(t, g, a, "POST", "/strict/pay", "", "x"))
	wantError(t, resp, body, 400, "idempotency_key_required")
	if cp.count("") != 0 {
		t.Fatal("a refused request reached the partner")
	}
	// PUT is not in strict's methods: no key needed.
	if resp, _ := do(t, nil, keyed(t, g, a, "PUT", "/strict/pay", "", "x")); resp.StatusCode != 201 {
		t.Fatalf("PUT = %d", resp.StatusCode)
	}
	// A request that could not even connect is not an unknown outcome:
	// the key is free again, and the retry is sent.
	for range 2 {
		resp, body = do(t, nil, keyed(t, g, a, "POST", "/down/pay", "d1", "x"))
		wantError(t, resp, body, 502, "upstream_unreachable")
	}
}

func TestIdempotencyAnswerTooLargeToStore(t *testing.T) {
	cp, p := newCountingPartner(t)
	a, b := newClient("shop"), newClient("other")
	g := start(t, idemConfig(p, a, b, ""))
	resp, body := do(t, nil, keyed(t, g, a, "POST", "/bank/big", "l1", "x"))
	if resp.StatusCode != 200 || len(body) != 4096 {
		t.Fatalf("first: %d, %d bytes: the client must get the whole answer once", resp.StatusCode, len(body))
	}
	resp, body = do(t, nil, keyed(t, g, a, "POST", "/bank/big", "l1", "x"))
	wantError(t, resp, body, 409, "idempotency_answer_not_stored")
	if resp.Header.Get("Outgate-Idempotent-Status") != "200" {
		t.Errorf("Outgate-Idempotent-Status = %q", resp.Header.Get("Outgate-Idempotent-Status"))
	}
	if cp.count("l1") != 1 {
		t.Fatalf("partner got l1 %d times", cp.count("l1"))
	}
}

// Plain-HTTP proxy requests to an upstream's origin get its idempotency.
func TestIdempotencyProxyAbsoluteForm(t *testing.T) {
	cp := &countingPartner{seen: map[string]int{}}
	plain := httptest.NewServer(http.HandlerFunc(cp.handler))
	defer plain.Close()
	c := newClient("shop")
	host := strings.TrimPrefix(plain.URL, "http://")
	g := start(t, fmt.Sprintf(`
listen: 127.0.0.1:0
proxy_listen: 127.0.0.1:0
upstreams:
  sms: {url: "%s/api", idempotency: {}}
clients:
  - {name: %s, key_sha256: %s, hosts: ["%s"], upstreams: [sms]}
network:
  allow_cidrs: [127.0.0.0/8]
`, plain.URL, c.name, c.hash, host))
	pu := &url.URL{Scheme: "http", User: url.UserPassword(c.name, c.key), Host: g.Proxy}
	hc := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu)}}
	var bodies []string
	for range 2 {
		req, _ := http.NewRequest("POST", plain.URL+"/api/send", strings.NewReader("hi"))
		req.Header.Set("Idempotency-Key", "p1")
		resp, body := do(t, hc, req)
		if resp.StatusCode != 201 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		bodies = append(bodies, body+resp.Header.Get("Outgate-Idempotent-Replay"))
	}
	if bodies[0] != "paid p1 (hi) #1" || bodies[1] != "paid p1 (hi) #1true" || cp.count("p1") != 1 {
		t.Fatalf("answers %q, partner count %d", bodies, cp.count("p1"))
	}
	// Through the relay the same key names the same request.
	resp, body := do(t, nil, keyed(t, g, c, "POST", "/sms/send", "p1", "hi"))
	if resp.StatusCode != 201 || resp.Header.Get("Outgate-Idempotent-Replay") != "true" || body != "paid p1 (hi) #1" {
		t.Fatalf("relay: %d %q", resp.StatusCode, body)
	}
}

func wantMetrics(t *testing.T, g *gateway, want map[string]float64) {
	t.Helper()
	for outcome, n := range want {
		// Metrics are counted when the audit line is written, after the
		// response: wait for it as audit() does.
		var got float64
		for range 500 {
			if got = idemMetric(t, g, outcome); got == n {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if got != n {
			_, all := do(t, nil, mustReq(t, "GET", "http://"+g.Admin+"/metrics"))
			var lines []string
			for _, l := range strings.Split(all, "\n") {
				if strings.Contains(l, "idempotency") || strings.HasPrefix(l, "outgate_requests_total") {
					lines = append(lines, l)
				}
			}
			t.Errorf("outgate_idempotency_total{outcome=%q} = %v, want %v; metrics:\n%s", outcome, got, n, strings.Join(lines, "\n"))
		}
	}
}

// idemMetric reads outgate_idempotency_total for one outcome (0 if absent).
func idemMetric(t *testing.T, g *gateway, outcome string) float64 {
	resp, body := do(t, nil, mustReq(t, "GET", "http://"+g.Admin+"/metrics"))
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %d", resp.StatusCode)
	}
	prefix := `outgate_idempotency_total{outcome="` + outcome + `"} `
	for _, l := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(l, prefix); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

// An operator who reconciled an unknown outcome clears the key, with the
// gateway running (through admin_listen) or stopped (the file itself).
func TestIdempotencyClear(t *testing.T) {
	cp, p := newCountingPartner(t)
	a, b := newClient("shop"), newClient("other")
	g := start(t, idemConfig(p, a, b, ""))
	resp, body := do(t, nil, keyed(t, g, a, "POST", "/bank/hang", "c1", "x"))
	wantError(t, resp, body, 504, "upstream_timeout")
	resp, body = do(t, nil, keyed(t, g, a, "POST", "/bank/hang", "c1", "x"))
	wantError(t, resp, body, 409, "outcome_unknown")

	cfg, err := config.Load(g.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg.AdminListen = g.Admin // the file says port 0
	// Another client's clear of the same key name touches nothing of shop's.
	if ok, err := server.ClearKey(context.Background(), cfg, idempotency.Key{Client: b.name, Upstream: "bank", Key: "c1"}); err != nil || ok {
		t.Fatalf("clear of other's c1 = %v, %v", ok, err)
	}
	resp, body = do(t, nil, keyed(t, g, a, "POST", "/bank/hang", "c1", "x"))
	wantError(t, resp, body, 409, "outcome_unknown")

	// A cross-site form post (what a web page on the gateway host could
	// send to the loopback admin address) is refused: no custom header.
	form := strings.NewReader("client=" + a.name + "&upstream=bank&key=c1")
	req := mustReq(t, "POST", "http://"+g.Admin+server.AdminClearPath)
	req.Body = io.NopCloser(form)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if resp, body := do(t, nil, req); resp.StatusCode != 400 {
		t.Fatalf("a plain form post: %d %s", resp.StatusCode, body)
	}
	resp, body = do(t, nil, keyed(t, g, a, "POST", "/bank/hang", "c1", "x"))
	wantError(t, resp, body, 409, "outcome_unknown")
	if ok, err := server.ClearKey(context.Background(), cfg, idempotency.Key{Client: a.name, Upstream: "bank", Key: "c1"}); err != nil || !ok {
		t.Fatalf("clear through the running gateway = %v, %v", ok, err)
	}
	resp, body = do(t, nil, keyed(t, g, a, "POST", "/bank/pay", "c1", "y"))
	if resp.StatusCode != 201 || cp.count("c1") != 2 {
		t.Fatalf("after clear: %d %q, partner count %d", resp.StatusCode, body, cp.count("c1"))
	}

	g.stop()
	<-g.done
	g.done <- nil // for the cleanup
	if ok, err := server.ClearKey(context.Background(), cfg, idempotency.Key{Client: a.name, Upstream: "bank", Key: "c1"}); err != nil || !ok {
		t.Fatalf("clear with the gateway stopped = %v, %v", ok, err)
	}
	if ok, err := server.ClearKey(context.Background(), cfg, idempotency.Key{Client: a.name, Upstream: "bank", Key: "c1"}); err != nil || ok {
		t.Fatalf("second clear = %v, %v; want nothing to clear", ok, err)
	}
}

// With idempotency_store.dynamodb_table, outgate serve keeps its keys in
// DynamoDB (moto here), and clear works on the table.
func TestIdempotencyDynamoDBStore(t *testing.T) {
	testutil.Moto(t)
	awsCfg, err := awsconfig.LoadDefaultConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	db := dynamodb.NewFromConfig(awsCfg)
	if _, err := db.CreateTable(context.Background(), &dynamodb.CreateTableInput{
		TableName:            aws.String("outgate-idem"),
		BillingMode:          ddbtypes.BillingModePayPerRequest,
		AttributeDefinitions: []ddbtypes.AttributeDefinition{{AttributeName: aws.String("pk"), AttributeType: ddbtypes.ScalarAttributeTypeS}},
		KeySchema:            []ddbtypes.KeySchemaElement{{AttributeName: aws.String("pk"), KeyType: ddbtypes.KeyTypeHash}},
	}); err != nil {
		t.Fatal(err)
	}
	// A missing table fails the start, not the first payment.
	cp, p := newCountingPartner(t)
	a, b := newClient("shop"), newClient("other")
	if err := runOnce(t, idemConfig(p, a, b, "idempotency_store: {dynamodb_table: no-such-table}\n")); err == nil || !strings.Contains(err.Error(), "no-such-table") {
		t.Fatalf("start with a missing table: %v", err)
	}
	g := start(t, idemConfig(p, a, b, "idempotency_store: {dynamodb_table: outgate-idem}\n"))
	for i := range 2 {
		resp, body := do(t, nil, keyed(t, g, a, "POST", "/bank/pay", "d1", "x"))
		if resp.StatusCode != 201 || body != "paid d1 (x) #1" || (i == 1) != (resp.Header.Get("Outgate-Idempotent-Replay") == "true") {
			t.Fatalf("try %d: %d %q %v", i, resp.StatusCode, body, resp.Header)
		}
	}
	resp, body := do(t, nil, keyed(t, g, a, "POST", "/bank/hang", "d2", "x"))
	wantError(t, resp, body, 504, "upstream_timeout")
	resp, body = do(t, nil, keyed(t, g, a, "POST", "/bank/hang", "d2", "x"))
	wantError(t, resp, body, 409, "outcome_unknown")
	cfg, err := config.Load(g.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := server.ClearKey(context.Background(), cfg, idempotency.Key{Client: a.name, Upstream: "bank", Key: "d2"}); err != nil || !ok {
		t.Fatalf("clear = %v, %v", ok, err)
	}
	if resp, _ := do(t, nil, keyed(t, g, a, "POST", "/bank/pay", "d2", "x")); resp.StatusCode != 201 {
		t.Fatalf("after clear: %d", resp.StatusCode)
	}
	if cp.count("d1") != 1 || cp.count("d2") != 2 {
		t.Fatalf("partner counts d1 %d, d2 %d", cp.count("d1"), cp.count("d2"))
	}

	// A store that fails refuses the request: it never goes out unprotected.
	if _, err := db.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String("outgate-idem")}); err != nil {
		t.Fatal(err)
	}
	resp, body = do(t, nil, keyed(t, g, a, "POST", "/bank/pay", "d3", "x"))
	wantError(t, resp, body, 503, "idempotency_unavailable")
	if cp.count("d3") != 0 {
		t.Fatal("a request went out without its record")
	}
	if au := g.logs.audit(t, resp.Header.Get("Outgate-Request-Id")); au["decision"] != "error" || !strings.Contains(fmt.Sprint(au["detail"]), "idempotency store") {
		t.Errorf("audit of a store failure: %v", au)
	}
}

// A reload may turn idempotency on (the store opens then); it may not move
// the store while records live in it.
func TestIdempotencyOnReload(t *testing.T) {
	cp, p := newCountingPartner(t)
	a, b := newClient("shop"), newClient("other")
	plain := strings.Replace(idemConfig(p, a, b, ""), "    idempotency: {max_stored_body: 1KiB}\n", "", 1)
	plain = strings.Replace(plain, "    idempotency: {required: true, methods: [POST]}\n", "", 1)
	plain = strings.Replace(plain, "    idempotency: {}\n", "", 1)
	g := start(t, plain)
	for range 2 {
		do(t, nil, keyed(t, g, a, "POST", "/bank/pay", "r1", "x"))
	}
	if cp.count("r1") != 2 {
		t.Fatalf("without idempotency the partner got r1 %d times, want 2", cp.count("r1"))
	}
	g.rewrite(t, idemConfig(p, a, b, ""))
	waitFor(t, func() bool { return len(g.logs.lines("config reloaded")) > 0 })
	for range 2 {
		do(t, nil, keyed(t, g, a, "POST", "/bank/pay", "r2", "x"))
	}
	if cp.count("r2") != 1 {
		t.Fatalf("after the reload the partner got r2 %d times, want 1", cp.count("r2"))
	}
	g.rewrite(t, idemConfig(p, a, b, "idempotency_store: {path: elsewhere.db}\n"))
	waitFor(t, func() bool { return strings.Contains(g.logs.String(), "config reload refused") })
	if !strings.Contains(g.logs.String(), "idempotency_store cannot change on reload") {
		t.Errorf("the refusal does not say why:\n%s", g.logs.String())
	}
}
