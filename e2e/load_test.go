package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/outgate/outgate/internal/keys"
)

// TestReloadAndShutdownUnderLoad: reload after reload under steady load drops
// nothing, a bad config on SIGHUP keeps the old one, and SIGTERM with
// requests in flight lets every one of them finish.
func TestReloadAndShutdownUnderLoad(t *testing.T) {
	// /slow requests are held by the partner until the test lets them go,
	// so "in flight at SIGTERM" is a fact the test observes, not a guess.
	arrived := make(chan struct{}, 64)
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			arrived <- struct{}{}
			<-release
		}
		io.WriteString(w, "ok")
	}))
	defer up.Close()
	var releaseOnce sync.Once
	defer releaseOnce.Do(func() { close(release) })
	key, hash := keys.New()
	addr := "127.0.0.1:" + freePortNum(t)
	good := fmt.Sprintf("listen: %s\nupstreams: {p: {url: %q}}\nclients: [{name: a, key_sha256: %s, upstreams: [p], limits: {requests_per_second: 100000, burst: 100000, max_concurrent: 10000}}]\nnetwork: {allow_cidrs: [127.0.0.0/8]}\nlimits: {shutdown_grace: 10s}\n", addr, up.URL, hash)
	path := filepath.Join(t.TempDir(), "gw.yaml")
	os.WriteFile(path, []byte(good), 0o600)
	cmd, logs := serve(t, path)
	for i := 0; ; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if i > 200 {
			t.Fatal("outgate did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}, Timeout: 10 * time.Second}
	get := func(p string) error {
		req, _ := http.NewRequest("GET", "http://"+addr+"/p"+p, nil)
		req.Header.Set("Outgate-Key", key)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(b) != "ok" {
			return fmt.Errorf("%d %s", resp.StatusCode, b)
		}
		return nil
	}

	// Steady load while the config is reloaded 20 times, alternating a good
	// and a broken file; each SIGHUP waits for the gateway to log its outcome.
	var sent, failed atomic.Int64
	var firstErr atomic.Value
	var stop atomic.Bool
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				sent.Add(1)
				if err := get("/x"); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				}
			}
		}()
	}
	for i := 0; i < 20; i++ {
		body, outcome := good, `"msg":"config reloaded"`
		if i%2 == 1 {
			body, outcome = "listen: [broken\n", `"msg":"config reload refused`
		}
		before := strings.Count(logs.String(), outcome)
		os.WriteFile(path, []byte(body), 0o600)
		cmd.Process.Signal(syscall.SIGHUP)
		for deadline := time.Now().Add(10 * time.Second); strings.Count(logs.String(), outcome) == before; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("reload %d: no %s line within 10s\n%s", i, outcome, logs.String())
			}
		}
	}
	stop.Store(true)
	wg.Wait()
	os.WriteFile(path, []byte(good), 0o600)
	if failed.Load() != 0 || sent.Load() < 100 {
		t.Fatalf("%d of %d requests failed during reloads (first: %v)", failed.Load(), sent.Load(), firstErr.Load())
	}

	// 40 slow requests in flight, then SIGTERM: every one finishes.
	var inflight sync.WaitGroup
	var lost atomic.Int64
	for i := 0; i < 40; i++ {
		inflight.Add(1)
		go func() {
			defer inflight.Done()
			if err := get("/slow"); err != nil {
				lost.Add(1)
			}
		}()
	}
	for i := 0; i < 40; i++ { // all 40 are waiting on the partner
		select {
		case <-arrived:
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d of 40 slow requests reached the partner", i)
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	// The gateway is draining (its log says so) while all 40 are still held.
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(logs.String(), `"msg":"shutting down"`); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no shutting down line after SIGTERM\n%s", logs.String())
		}
	}
	releaseOnce.Do(func() { close(release) })
	inflight.Wait()
	if lost.Load() != 0 {
		t.Fatalf("%d of 40 in-flight requests were lost on SIGTERM", lost.Load())
	}
	waitExit0(t, cmd, 15*time.Second, logs)
}
