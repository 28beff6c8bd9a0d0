package server_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outgate/outgate/internal/config"
	"github.com/outgate/outgate/internal/server"
)

// TestGateRefusesBeforeAnythingLeaves: while Options.Gate is closed, a
// relay request, a proxy request and a CONNECT each get 503
// egress_unverified, the partner sees nothing (no request, no
// connection), /readyz is 503; once it opens they go through, and closing
// it again refuses at once.
func TestGateRefusesBeforeAnythingLeaves(t *testing.T) {
	var requests atomic.Int32
	partner := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		io.WriteString(w, "partner\n")
	}))
	defer partner.Close()
	pHost := strings.TrimPrefix(partner.URL, "http://")
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tl.Close()
	var accepted atomic.Int32
	go func() {
		for {
			c, err := tl.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	tHost := tl.Addr().String()

	c := newClient("billing")
	cfg := fmt.Sprintf(`
listen: 127.0.0.1:0
proxy_listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
upstreams: {partner: {url: %q}}
clients:
  - name: %s
    key_sha256: %s
    upstreams: [partner]
    hosts: ["%s", "%s"]
    raw_tunnels: ["%s"]
network: {allow_cidrs: [127.0.0.0/8]}
`, partner.URL, c.name, c.hash, pHost, tHost, tHost)
	var gateErr atomic.Pointer[error]
	closed := errors.New("egress IP not yet checked")
	gateErr.Store(&closed)
	g := startWith(t, cfg, func(o *server.Options) {
		o.Gate = func() error { return *gateErr.Load() }
	})

	relayGet := func() *http.Response {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+g.Relay+"/partner/x", nil)
		req.Header.Set("Outgate-Key", c.key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	readyz := func() int {
		t.Helper()
		resp, err := http.Get("http://" + g.Admin + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	auth := "Proxy-Authorization: " + basic(c.name, c.key)
	refused := func(what string, status int, code, retry string) {
		t.Helper()
		if status != http.StatusServiceUnavailable || code != "egress_unverified" || retry != "30" {
			t.Errorf("%s while the gate is closed: %d %q Retry-After %q, want 503 egress_unverified 30", what, status, code, retry)
		}
	}

	resp := relayGet()
	refused("relay", resp.StatusCode, resp.Header.Get("Outgate-Error"), resp.Header.Get("Retry-After"))
	id := resp.Header.Get("Outgate-Request-Id")
	_, _, presp, _ := rawProxy(t, g, "GET "+partner.URL+"/y HTTP/1.1", "Host: "+pHost, auth)
	refused("proxy", presp.StatusCode, presp.Header.Get("Outgate-Error"), presp.Header.Get("Retry-After"))
	_, _, cresp, _ := rawProxy(t, g, "CONNECT "+tHost+" HTTP/1.1", "Host: "+tHost, auth)
	refused("CONNECT", cresp.StatusCode, cresp.Header.Get("Outgate-Error"), cresp.Header.Get("Retry-After"))
	if s := readyz(); s != 503 {
		t.Errorf("/readyz = %d while the gate is closed", s)
	}
	line := g.logs.audit(t, id)
	if line["reason"] != "egress_unverified" || line["decision"] != "deny" || !strings.Contains(fmt.Sprint(line["detail"]), "not yet checked") {
		t.Errorf("audit line %v", line)
	}
	if n, a := requests.Load(), accepted.Load(); n != 0 || a != 0 {
		t.Fatalf("the partner saw %d requests and %d connections while the gate was closed", n, a)
	}

	var open error
	gateErr.Store(&open)
	if resp := relayGet(); resp.StatusCode != 200 {
		t.Fatalf("relay with the gate open: %d", resp.StatusCode)
	}
	if _, _, presp, body := rawProxy(t, g, "GET "+partner.URL+"/y HTTP/1.1", "Host: "+pHost, auth); presp.StatusCode != 200 || body != "partner\n" {
		t.Fatalf("proxy with the gate open: %d %q", presp.StatusCode, body)
	}
	if _, _, cresp, _ := rawProxy(t, g, "CONNECT "+tHost+" HTTP/1.1", "Host: "+tHost, auth); cresp.StatusCode != 200 {
		t.Fatalf("CONNECT with the gate open: %d", cresp.StatusCode)
	}
	if s := readyz(); s != 200 {
		t.Errorf("/readyz = %d with the gate open", s)
	}

	gateErr.Store(&closed)
	resp = relayGet()
	refused("relay after closing again", resp.StatusCode, resp.Header.Get("Outgate-Error"), resp.Header.Get("Retry-After"))
	if s := readyz(); s != 503 {
		t.Errorf("/readyz = %d after closing again", s)
	}
}

// TestOverrideSetsListeners: Options.Override replaces the config's
// listeners before validation, at start and on every reload, so a config
// written for the Lambda relay (listen addresses that would not do here)
// serves on the instance's, and a reload of it is not refused as a change
// of listeners.
func TestOverrideSetsListeners(t *testing.T) {
	c := newClient("billing")
	cfgFor := func(listen string) string {
		return fmt.Sprintf("listen: %q\nclients:\n  - name: %s\n    key_sha256: %s\n    hosts: [\"api.example:443\"]\n", listen, c.name, c.hash)
	}
	relayAddr, adminAddr := freePort(t), freePort(t)
	g := startWith(t, cfgFor("not-an-address"), func(o *server.Options) {
		o.Override = func(cfg *config.Config) {
			cfg.Listen, cfg.AdminListen = relayAddr, adminAddr
		}
	})
	if g.Relay != relayAddr || g.Admin != adminAddr {
		t.Fatalf("listening on %+v, want relay %s admin %s", g.Addrs, relayAddr, adminAddr)
	}
	g.rewrite(t, cfgFor("0.0.0.0:1"))
	deadline := time.Now().Add(10 * time.Second)
	for len(g.logs.lines("config reloaded")) == 0 {
		if len(g.logs.lines("config reload refused; the previous config keeps serving")) > 0 || time.Now().After(deadline) {
			t.Fatalf("reload not applied:\n%s", g.logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestStartedGivesTheEgressCheck: Running.EgressIP asks the config's
// egress_check_url through the gateway's way out and returns its answer.
func TestStartedGivesTheEgressCheck(t *testing.T) {
	check := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "203.0.113.10\n")
	}))
	defer check.Close()
	c := newClient("billing")
	cfg := fmt.Sprintf("listen: 127.0.0.1:0\negress_check_url: %q\nnetwork: {allow_cidrs: [127.0.0.0/8]}\nclients:\n  - name: %s\n    key_sha256: %s\n    hosts: [\"api.example:443\"]\n", check.URL, c.name, c.hash)
	running := make(chan server.Running, 1)
	startWith(t, cfg, func(o *server.Options) { o.Started = func(r server.Running) { running <- r } })
	r := <-running
	ip, err := r.EgressIP(context.Background())
	if err != nil || ip.String() != "203.0.113.10" {
		t.Fatalf("egress IP %v, %v", ip, err)
	}
}
