// Package e2e runs the outgate binary across network namespaces: a partner
// that allowlists one address, a client whose direct call the partner
// refuses, and the same call through the gateway succeeding.
package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/outgate/outgate/internal/keys"
	"github.com/outgate/outgate/internal/testutil"
)

// TEST-NET-3 addresses only (RFC 5737), on a bridge of our own.
const (
	partnerIP = "203.0.113.10"
	gatewayIP = "203.0.113.20"
	clientIP  = "203.0.113.30"
)

func run(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// topology makes namespaces partner, gateway and client, each with a veth to
// a bridge in a fourth namespace, and returns their names.
func topology(t *testing.T) map[string]string {
	ip := testutil.Tool(t, "ip")
	suffix := fmt.Sprintf("%d", os.Getpid()%100000)
	ns := map[string]string{}
	sw := "ogsw" + suffix
	run(t, ip, "netns", "add", sw)
	t.Cleanup(func() { exec.Command(ip, "netns", "del", sw).Run() })
	run(t, ip, "-n", sw, "link", "add", "br0", "type", "bridge")
	run(t, ip, "-n", sw, "link", "set", "br0", "up")
	for i, h := range []struct{ role, addr string }{{"partner", partnerIP}, {"gateway", gatewayIP}, {"client", clientIP}} {
		name := fmt.Sprintf("og%s%s", h.role[:2], suffix)
		ns[h.role] = name
		run(t, ip, "netns", "add", name)
		t.Cleanup(func() { exec.Command(ip, "netns", "del", name).Run() })
		host, port := fmt.Sprintf("veth%d", i), fmt.Sprintf("p%d", i)
		run(t, ip, "-n", name, "link", "add", host, "type", "veth", "peer", "name", port, "netns", sw)
		run(t, ip, "-n", sw, "link", "set", port, "master", "br0")
		run(t, ip, "-n", sw, "link", "set", port, "up")
		run(t, ip, "-n", name, "addr", "add", h.addr+"/24", "dev", host)
		run(t, ip, "-n", name, "link", "set", host, "up")
		run(t, ip, "-n", name, "link", "set", "lo", "up")
	}
	return ns
}

// inNetns runs f on a thread switched into the named network namespace, so
// sockets f creates belong to it.
func inNetns(name string, f func() error) error {
	target, err := os.Open(filepath.Join("/run/netns", name))
	if err != nil {
		return err
	}
	defer target.Close()
	runtime.LockOSThread()
	orig, err := os.Open(fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid()))
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer orig.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return err
	}
	ferr := f()
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		// The thread is stuck in the wrong namespace: keep it locked so
		// the runtime retires it instead of reusing it.
		return fmt.Errorf("restoring the network namespace: %w", err)
	}
	runtime.UnlockOSThread()
	return ferr
}

// clientHTTP is an HTTP client whose connections start in the client namespace.
func clientHTTP(ns string, proxy *url.URL) *http.Client {
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := inNetns(ns, func() (err error) {
			var d net.Dialer
			c, err = d.DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
	tr := &http.Transport{DialContext: dial, Proxy: nil}
	if proxy != nil {
		tr.Proxy = http.ProxyURL(proxy)
	}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func TestStaticEgressAcrossNamespaces(t *testing.T) {
	testutil.Root(t)
	ns := topology(t)

	// The partner accepts only the gateway's address, like a payment API's allowlist.
	var ln net.Listener
	if err := inNetns(ns["partner"], func() (err error) {
		ln, err = net.Listen("tcp", partnerIP+":80")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	partner := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		if host != gatewayIP {
			http.Error(w, "source "+host+" is not allowlisted", http.StatusForbidden)
			return
		}
		fmt.Fprintf(w, "payment accepted from %s for %s", host, r.URL.Path)
	})}
	go partner.Serve(ln)
	t.Cleanup(func() { partner.Close() })

	// The real outgate binary in the gateway namespace.
	bin := binary(t)
	key, hash := keys.New()
	cfg := fmt.Sprintf(`
listen: %[1]s:8080
proxy_listen: %[1]s:3128
upstreams:
  partner: {url: "http://%[2]s"}
clients:
  - name: billing
    key_sha256: %[3]s
    upstreams: [partner]
    hosts: ["%[2]s:80"]
network:
  allow_cidrs: [%[2]s/32]   # TEST-NET is blocked by default; this partner lives there
`, gatewayIP, partnerIP, hash)
	cfgPath := filepath.Join(t.TempDir(), "outgate.yaml")
	os.WriteFile(cfgPath, []byte(cfg), 0o600)
	logs := &testutil.SafeBuffer{}
	gw := exec.Command(testutil.Tool(t, "ip"), "netns", "exec", ns["gateway"], bin, "serve", "--config", cfgPath)
	gw.Stderr = logs
	if err := gw.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		gw.Process.Signal(unix.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- gw.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("outgate exited with %v after SIGTERM; want 0", err)
			}
		case <-time.After(30 * time.Second):
			gw.Process.Kill()
			t.Error("outgate did not exit within 30s of SIGTERM")
		}
	})

	direct := clientHTTP(ns["client"], nil)
	waitUp(t, direct, "http://"+gatewayIP+":8080/_outgate/health")

	// Direct: the partner refuses the client's address.
	resp, body := get(t, direct, "http://"+partnerIP+"/pay", "")
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, clientIP) {
		t.Fatalf("direct call: %d %q; want the partner to refuse %s", resp.StatusCode, body, clientIP)
	}
	// Relay: the same call leaves from the gateway's address and is accepted.
	resp, body = get(t, direct, "http://"+gatewayIP+":8080/partner/pay", key)
	if resp.StatusCode != 200 || body != "payment accepted from "+gatewayIP+" for /pay" {
		t.Fatalf("relay call: %d %q", resp.StatusCode, body)
	}
	// Forward proxy, as HTTP_PROXY=http://billing:key@gateway:3128.
	viaProxy := clientHTTP(ns["client"], &url.URL{Scheme: "http", User: url.UserPassword("billing", key), Host: gatewayIP + ":3128"})
	resp, body = get(t, viaProxy, "http://"+partnerIP+"/pay", "")
	if resp.StatusCode != 200 || body != "payment accepted from "+gatewayIP+" for /pay" {
		t.Fatalf("proxy call: %d %q", resp.StatusCode, body)
	}
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(logs.String(), `"msg":"request"`); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) { // audit lines are flushed every 100ms
			t.Fatalf("no audit lines from the gateway:\n%s", logs.String())
		}
	}
}

func get(t *testing.T, c *http.Client, u, key string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", u, nil)
	if key != "" {
		req.Header.Set("Outgate-Key", key)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func waitUp(t *testing.T, c *http.Client, u string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := c.Get(u)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway not up at %s: %v", u, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
