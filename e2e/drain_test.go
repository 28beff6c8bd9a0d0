package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/outgate/outgate/internal/keys"
)

// TestDrainIsVisible: after SIGTERM, while a request is still in flight,
// the admin listener stays up and says /readyz 503 (so a load balancer
// stops sending) and /healthz 200 (so nothing restarts the process); the
// request then completes and the process exits 0.
func TestDrainIsVisible(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	partner := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		io.WriteString(w, "done")
	}))
	t.Cleanup(partner.Close)
	released := false
	t.Cleanup(func() {
		if !released {
			close(release)
		}
	})
	key, hash := keys.New()
	relayAddr, adminAddr := "127.0.0.1:"+freePortNum(t), "127.0.0.1:"+freePortNum(t)
	cfg := fmt.Sprintf(`listen: %s
admin_listen: %s
upstreams: {p: {url: %q}}
clients: [{name: a, key_sha256: %s, upstreams: [p]}]
network: {allow_cidrs: [127.0.0.0/8]}
limits: {shutdown_grace: 30s}
`, relayAddr, adminAddr, partner.URL, hash)
	path := filepath.Join(t.TempDir(), "gw.yaml")
	os.WriteFile(path, []byte(cfg), 0o600)
	cmd, logs := serve(t, path)
	waitListening(t, adminAddr)

	get := func(u string) (int, error) {
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(u)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	if s, err := get("http://" + adminAddr + "/readyz"); s != 200 {
		t.Fatalf("/readyz before SIGTERM: %d %v", s, err)
	}

	type result struct {
		status int
		body   string
		err    error
	}
	inflight := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest("GET", "http://"+relayAddr+"/p/slow", nil)
		req.Header.Set("Outgate-Key", key)
		resp, err := (&http.Client{Timeout: 60 * time.Second}).Do(req)
		if err != nil {
			inflight <- result{err: err}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		inflight <- result{resp.StatusCode, string(b), nil}
	}()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatalf("the request did not reach the partner; log:\n%s", logs.String())
	}

	cmd.Process.Signal(syscall.SIGTERM)
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(logs.String(), `"msg":"shutting down"`); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no shutdown line; log:\n%s", logs.String())
		}
	}
	if s, err := get("http://" + adminAddr + "/readyz"); s != http.StatusServiceUnavailable {
		t.Errorf("/readyz while draining: %d %v, want 503", s, err)
	}
	if s, err := get("http://" + adminAddr + "/healthz"); s != http.StatusOK {
		t.Errorf("/healthz while draining: %d %v, want 200", s, err)
	}

	released = true
	close(release)
	r := <-inflight
	if r.err != nil || r.status != 200 || r.body != "done" {
		t.Errorf("request in flight across SIGTERM: %d %q %v", r.status, r.body, r.err)
	}
	waitExit0(t, cmd, 30*time.Second, logs)
}
