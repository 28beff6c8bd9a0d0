package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/outgate/outgate/internal/keys"
	"github.com/outgate/outgate/internal/testutil"
)

// TestIdempotencySurvivesSIGKILL kills the built gateway with SIGKILL after
// it sent a keyed request and before the partner answered, restarts it on
// the same store, and retries: the key must read outcome_unknown (never
// free), and across retries, kills and restarts the partner must see each
// key at most once. A key answered before a kill is replayed after it.
func TestIdempotencySurvivesSIGKILL(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]int{}
	arrived := make(chan string, 1)
	release := make(chan struct{})
	partner := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k := r.Header.Get("Idempotency-Key")
		io.Copy(io.Discard, r.Body)
		mu.Lock()
		seen[k]++
		n := seen[k]
		mu.Unlock()
		if r.URL.Path == "/hold" {
			arrived <- k
			<-release // the gateway dies meanwhile
		}
		fmt.Fprintf(w, "paid %s #%d", k, n)
	}))
	defer partner.Close()
	defer close(release)

	key, hash := keys.New()
	addr := "127.0.0.1:" + freePortNum(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "outgate.yaml")
	os.WriteFile(path, []byte(fmt.Sprintf(`listen: %s
upstreams:
  bank: {url: "%s", idempotency: {}}
clients:
  - {name: shop, key_sha256: %s, upstreams: [bank]}
network:
  allow_cidrs: [127.0.0.0/8]
`, addr, partner.URL, hash)), 0o600)

	post := func(p, k string) (int, string, http.Header, error) {
		req, _ := http.NewRequest("POST", "http://"+addr+"/bank"+p, strings.NewReader("amount=10"))
		req.Header.Set("Outgate-Key", key)
		req.Header.Set("Idempotency-Key", k)
		resp, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
		if err != nil {
			return 0, "", nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header, err
	}
	start := func() *serveProc {
		cmd, logs := serve(t, path)
		waitListening(t, addr)
		return &serveProc{cmd: cmd, logs: logs}
	}

	var killed []string
	for round := range 3 {
		g := start()
		// A key answered in full is replayed, across every restart.
		if code, body, h, err := post("/pay", "done"); err != nil || code != 200 || body != "paid done #1" {
			t.Fatalf("round %d: done = %d %q %v", round, code, body, err)
		} else if round > 0 && h.Get("Outgate-Idempotent-Replay") != "true" {
			t.Fatalf("round %d: done was not replayed after a restart", round)
		}
		// Every key killed so far stays unknown.
		for _, k := range killed {
			code, body, _, err := post("/hold", k)
			if err != nil || code != 409 || !strings.Contains(body, `"outcome_unknown"`) {
				t.Fatalf("round %d: retry of %s = %d %q %v; want 409 outcome_unknown", round, k, code, body, err)
			}
		}
		k := fmt.Sprintf("kill-%d", round)
		sent := make(chan error, 1)
		go func() { _, _, _, err := post("/hold", k); sent <- err }()
		<-arrived // recorded and sent; not answered
		g.cmd.Process.Signal(syscall.SIGKILL)
		g.cmd.Wait()
		if err := <-sent; err == nil {
			t.Fatalf("round %d: the client got an answer from a killed gateway", round)
		}
		release <- struct{}{} // the partner answers into the void
		killed = append(killed, k)
		// Retries while the gateway is down reach nobody.
		if _, _, _, err := post("/hold", k); err == nil {
			t.Fatal("a request reached a killed gateway")
		}
	}
	g := start()
	for _, k := range killed {
		code, body, _, err := post("/hold", k)
		if err != nil || code != 409 || !strings.Contains(body, `"outcome_unknown"`) {
			t.Fatalf("final retry of %s = %d %q %v", k, code, body, err)
		}
	}
	g.cmd.Process.Signal(syscall.SIGTERM)
	waitExit0(t, g.cmd, 30*time.Second, g.logs)

	mu.Lock()
	defer mu.Unlock()
	for k, n := range seen {
		if n > 1 {
			t.Errorf("the partner saw %s %d times", k, n)
		}
	}
	if len(seen) != 4 {
		t.Errorf("the partner saw %v; want done and three killed keys once each", seen)
	}

	// The operator's way out, with the gateway stopped: the CLI opens the
	// store itself.
	for want, k := range map[string]string{"cleared": "kill-0", "no such key": "never-used"} {
		out, err := exec.Command(binary(t), "idempotency", "clear", "--config", path, "--client", "shop", "--upstream", "bank", k).CombinedOutput()
		if err != nil || !strings.HasPrefix(string(out), want) {
			t.Errorf("idempotency clear %s: %v\n%s", k, err, out)
		}
	}
	if out, err := exec.Command(binary(t), "idempotency", "clear", "--config", path, "kill-1").CombinedOutput(); err == nil {
		t.Errorf("clear without --client and --upstream succeeded:\n%s", out)
	}
}

type serveProc struct {
	cmd  *exec.Cmd
	logs *testutil.SafeBuffer
}
