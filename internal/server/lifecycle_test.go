package server_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/outgate/outgate/internal/testutil"
)

func TestReload(t *testing.T) {
	p := newPartner(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	a, b := newClient("a"), newClient("b")
	cfg := relayConfig(p, a, "", "admin_listen: 127.0.0.1:0\n")
	g := start(t, cfg)
	resp, denied := do(t, nil, relayReq(t, g, "GET", "/partner/x", b.key, nil))
	if resp.StatusCode != 401 {
		t.Fatalf("b before reload: %d", resp.StatusCode)
	}
	// A good config adds client b.
	reloadedAt := time.Now()
	g.rewrite(t, relayConfig(p, a, fmt.Sprintf("  - {name: b, key_sha256: %s, upstreams: [partner]}\n", b.hash), "admin_listen: 127.0.0.1:0\n"))
	waitFor(t, func() bool { return len(g.logs.lines("config reloaded")) == 1 })
	if resp, body := do(t, nil, relayReq(t, g, "GET", "/partner/x", b.key, nil)); resp.StatusCode != 200 {
		t.Fatalf("b after reload: %d %s", resp.StatusCode, body)
	}
	// A bad config is refused, logged with its line, and the old one keeps serving.
	g.rewrite(t, strings.Replace(cfg, "upstreams: [partner, metadata]", "upstreams: [partner, nosuch]", 1))
	waitFor(t, func() bool { return len(g.logs.lines("config reload refused; the previous config keeps serving")) == 1 })
	refused := g.logs.lines("config reload refused; the previous config keeps serving")[0]
	if !strings.Contains(fmt.Sprint(refused["error"]), `clients[0].upstreams[1]: unknown upstream "nosuch"`) {
		t.Errorf("refusal does not say what is wrong: %v", refused["error"])
	}
	if resp, _ := do(t, nil, relayReq(t, g, "GET", "/partner/x", b.key, nil)); resp.StatusCode != 200 {
		t.Fatalf("b after a refused reload: %d", resp.StatusCode)
	}
	// Listeners cannot move on reload.
	g.rewrite(t, strings.Replace(cfg, "listen: 127.0.0.1:0", "listen: 127.0.0.1:1", 1))
	waitFor(t, func() bool { return len(g.logs.lines("config reload refused; the previous config keeps serving")) == 2 })

	resp, body := do(t, nil, mustReq(t, "GET", "http://"+g.Admin+"/metrics"))
	for _, want := range []string{`outgate_config_reloads_total{result="ok"} 1`, `outgate_config_reloads_total{result="error"} 2`,
		`outgate_requests_total{client="b",decision="allow",error_code="",mode="relay"} 2`,
		`outgate_requests_total{client="",decision="deny",error_code="unauthorized",mode="relay"} 1`,
		`outgate_bytes_total{direction="in"} 0`, fmt.Sprintf(`outgate_bytes_total{direction="out"} %d`, 4+len(denied)), // two "ok" bodies and the 401's
		`outgate_upstream_duration_seconds_count{mode="relay",route="partner"} 2`} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if resp.StatusCode != 200 {
		t.Errorf("/metrics: %d", resp.StatusCode)
	}
	// The one good reload is when the config in force was loaded.
	if ts := testutil.Metric(t, g.Admin, "outgate_config_last_reload_success_timestamp_seconds"); ts < float64(reloadedAt.Unix()) || ts > float64(time.Now().Unix()+1) {
		t.Errorf("last reload success at %v, the good reload was at %v", ts, reloadedAt.Unix())
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if resp, _ := do(t, nil, mustReq(t, "GET", "http://"+g.Admin+path)); resp.StatusCode != 200 {
			t.Errorf("%s: %d", path, resp.StatusCode)
		}
	}
}

// TestShutdownFinishesInFlight: a request in flight when the stop comes
// completes, and Run returns nil.
func TestShutdownFinishesInFlight(t *testing.T) {
	// The partner holds the request until the gateway says it is draining,
	// so the stop certainly comes while the request is in flight.
	entered, draining := make(chan struct{}), make(chan struct{})
	p := newPartner(t, func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-draining
		io.WriteString(w, "finished")
	})
	c := newClient("billing")
	g := start(t, relayConfig(p, c, "", ""))
	type result struct {
		status int
		body   string
		err    error
	}
	res := make(chan result, 1)
	go func() {
		resp, err := http.DefaultClient.Do(relayReq(t, g, "GET", "/partner/x", c.key, nil))
		if err != nil {
			res <- result{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		res <- result{resp.StatusCode, string(b), err}
	}()
	<-entered
	g.stop()
	waitFor(t, func() bool { return strings.Contains(g.logs.String(), `"msg":"shutting down"`) })
	close(draining)
	r := <-res
	if r.err != nil || r.status != 200 || r.body != "finished" {
		t.Fatalf("in-flight request: %+v", r)
	}
	select {
	case err := <-g.done:
		if err != nil {
			t.Fatalf("Run returned %v", err)
		}
		g.done <- nil // for the cleanup
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
	if _, err := http.Get("http://" + g.Relay + "/_outgate/health"); err == nil {
		t.Error("the gateway still accepts connections after shutdown")
	}
}

func TestStartErrors(t *testing.T) {
	c := newClient("a")
	taken := freePort(t)
	l := mustListen(t, taken)
	defer l.Close()
	cfg := fmt.Sprintf("listen: %s\nclients: [{name: a, key_sha256: %s, hosts: [x.example]}]\n", taken, c.hash)
	err := runOnce(t, cfg)
	if err == nil || !strings.Contains(err.Error(), "listen "+taken) {
		t.Errorf("busy port: %v", err)
	}
	err = runOnce(t, "listen: nope\n")
	if err == nil || !strings.Contains(err.Error(), "outgate.yaml:1:9: listen: must be host:port") {
		t.Errorf("bad config: %v", err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRelayOverTLS: with tls configured the relay speaks HTTPS (HTTP/2 too),
// and a reload picks up a rotated certificate.
func TestRelayOverTLS(t *testing.T) {
	p := newPartner(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	c := newClient("billing")
	cert1, key1 := testutil.SelfSigned(t, "first")
	cert2, key2 := testutil.SelfSigned(t, "second")
	cfg := func(cert, key string) string {
		return relayConfig(p, c, "", fmt.Sprintf("tls: {cert_file: %s, key_file: %s}\n", cert, key))
	}
	g := start(t, cfg(cert1, key1))
	get := func(ca string) (*http.Response, error) {
		tr := &http.Transport{TLSClientConfig: testutil.TLSConfig(ca), ForceAttemptHTTP2: true}
		defer tr.CloseIdleConnections()
		req, _ := http.NewRequest("GET", "https://"+g.Relay+"/partner/x", nil)
		req.Header.Set("Outgate-Key", c.key)
		return (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
	}
	resp, err := get(cert1)
	if err != nil || resp.StatusCode != 200 || resp.ProtoMajor != 2 {
		t.Fatalf("HTTPS relay: %v %v", resp, err)
	}
	resp.Body.Close()
	if resp, err := http.Get("http://" + g.Relay + "/_outgate/health"); err == nil && resp.StatusCode != 400 {
		t.Errorf("plain HTTP on the TLS listener got %d, want a refusal", resp.StatusCode)
	}
	g.rewrite(t, cfg(cert2, key2))
	waitFor(t, func() bool { return len(g.logs.lines("config reloaded")) == 1 })
	if resp, err := get(cert2); err != nil || resp.StatusCode != 200 {
		t.Fatalf("after rotation: %v %v", resp, err)
	}
	if _, err := get(cert1); err == nil {
		t.Error("the old certificate is still served after a reload")
	}
}
