package e2e

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outgate/outgate/internal/keys"
	"github.com/outgate/outgate/internal/testutil"
)

// TestBurstOf10000Connections opens 10,000 client connections to the built
// gateway at once, half on the relay listener and half on the forward
// proxy, and sends a request on each that the partner answers after 2 s, so
// every request needs its own upstream connection at the same time: twice
// the descriptors of the connections. Every one must get its answer, even
// though the gateway's connection limit (derived from this sandbox's
// open-file limit) is below 10,000: the rest wait in the listen backlog and
// are served as others close. Afterwards the gateway holds no more
// descriptors or goroutines than before plus its upstream keep-alive pool.
//
// The test process is race-instrumented, which allows at most 8,128
// goroutines, so the clients run from a bounded pool and the partner is a
// separate, uninstrumented process.
func TestBurstOf10000Connections(t *testing.T) {
	const total = 10000
	origin := startOrigin(t)
	key, hash := keys.New()
	relayAddr, proxyAddr, adminAddr := "127.0.0.1:"+freePortNum(t), "127.0.0.1:"+freePortNum(t), "127.0.0.1:"+freePortNum(t)
	cfg := fmt.Sprintf(`listen: %s
proxy_listen: %s
admin_listen: %s
upstreams: {p: {url: "http://%s"}}
clients:
  - {name: a, key_sha256: %s, upstreams: [p], hosts: [%q], limits: {requests_per_second: 1000000, burst: 1000000, max_concurrent: 1000000}}
network: {allow_cidrs: [127.0.0.0/8]}
log: {level: error}
# Every connection comes from 127.0.0.1: one source may take them all here.
# All 10,000 are opened before any sends its request (the phases below), so
# the first ones accepted wait longer than the default auth_timeout.
limits: {max_connections_per_ip: 1000000, auth_timeout: 10m}
`, relayAddr, proxyAddr, adminAddr, origin, hash, origin)
	path := filepath.Join(t.TempDir(), "gw.yaml")
	os.WriteFile(path, []byte(cfg), 0o600)
	cmd, logs := serve(t, path)
	waitListening(t, adminAddr)

	relayReq := fmt.Sprintf("GET /p/x?delay=2s HTTP/1.1\r\nHost: gw\r\nOutgate-Key: %s\r\nConnection: close\r\n\r\n", key)
	proxyReq := fmt.Sprintf("GET http://%s/x?delay=2s HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: Basic %s\r\nConnection: close\r\n\r\n",
		origin, origin, basic("a", key))
	one := func(i int) (net.Conn, error) {
		addr := relayAddr
		if i%2 == 1 {
			addr = proxyAddr
		}
		c, err := net.DialTimeout("tcp", addr, 30*time.Second)
		if err != nil {
			return nil, err
		}
		return c, nil
	}
	send := func(i int, c net.Conn) error {
		req := relayReq
		if i%2 == 1 {
			req = proxyReq
		}
		_, err := io.WriteString(c, req)
		return err
	}
	// Warm up, then take the baseline.
	if c, err := one(0); err != nil {
		t.Fatal(err)
	} else if err := send(0, c); err != nil {
		t.Fatal(err)
	} else if err := readOK(c); err != nil {
		t.Fatal(err)
	}
	// The warm-up's connection (Connection: close) is gone once the
	// gateway counts no connection open: only then is the baseline taken.
	for deadline := time.Now().Add(10 * time.Second); testutil.Metric(t, adminAddr, "outgate_connections_open") != 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the warm-up connection is still open after 10s")
		}
	}
	fdsBefore, gorBefore := countFDs(t, cmd.Process.Pid), testutil.Metric(t, adminAddr, "go_goroutines")
	limit := testutil.Metric(t, adminAddr, "outgate_connections_max")

	// Open every connection before sending any request, so all 10,000 are
	// open at the same time, then send every request, then read.
	conns := make([]net.Conn, total)
	var failed atomic.Int64
	var firstErr atomic.Value
	fail := func(i int, err error) {
		failed.Add(1)
		firstErr.CompareAndSwap(nil, fmt.Sprintf("connection %d: %v", i, err))
	}
	// Each phase runs from a bounded pool of workers over all connections.
	phase := func(f func(i int)) {
		const workers = 100
		var wg sync.WaitGroup
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < total; i += workers {
					f(i)
				}
			}()
		}
		wg.Wait()
	}
	phase(func(i int) {
		c, err := one(i)
		if err != nil {
			fail(i, err)
			return
		}
		conns[i] = c
	})
	phase(func(i int) {
		if conns[i] == nil {
			return
		}
		if err := send(i, conns[i]); err != nil {
			fail(i, err)
			conns[i].Close()
			conns[i] = nil
		}
	})
	phase(func(i int) {
		if conns[i] == nil {
			return
		}
		if err := readOK(conns[i]); err != nil {
			fail(i, err)
		}
	})
	if n := failed.Load(); n != 0 {
		t.Fatalf("%d of %d connections failed; first: %v\n%s", n, total, firstErr.Load(), tail(logs.String(), 2000))
	}
	if waits := testutil.Metric(t, adminAddr, "outgate_connection_waits_total"); limit < total && waits == 0 {
		t.Errorf("the limit is %v connections but no connection waited for a slot", limit)
	}

	// Nothing stays behind but the upstream keep-alive pool (256 idle
	// connections to one partner, each with a read and a write goroutine).
	const pool = 256
	deadline := time.Now().Add(15 * time.Second)
	for {
		open := testutil.Metric(t, adminAddr, "outgate_connections_open")
		fds, gor := countFDs(t, cmd.Process.Pid), testutil.Metric(t, adminAddr, "go_goroutines")
		if open == 0 && fds <= fdsBefore+pool+8 && gor <= gorBefore+2*pool+16 {
			break
		}
		if time.Now().After(deadline) {
			ss, _ := exec.Command("ss", "-tanpo").CombinedOutput()
			t.Logf("ss:\n%s", grepLines(string(ss), strings.TrimPrefix(relayAddr, "127.0.0.1"), strings.TrimPrefix(proxyAddr, "127.0.0.1")))
			t.Fatalf("after the burst: %v client connections open, %d descriptors (%d before), %v goroutines (%v before)",
				open, fds, fdsBefore, gor, gorBefore)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// startOrigin builds and starts e2e/internal/origin and returns its address.
func startOrigin(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "origin")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/outgate/outgate/e2e/internal/origin").CombinedOutput(); err != nil {
		t.Fatalf("go build origin: %v\n%s", err, out)
	}
	cmd := exec.Command(bin)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("origin did not print its address: %v", err)
	}
	return strings.TrimSpace(addr)
}

func readOK(c net.Conn) error {
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return err
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 || string(b) != "ok" {
		return fmt.Errorf("%d %q", resp.StatusCode, b)
	}
	return nil
}

func waitListening(t *testing.T, addr string) {
	t.Helper()
	for i := 0; ; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
		if i > 250 {
			t.Fatalf("nothing listens on %s", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func countFDs(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func basic(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
}

func grepLines(s string, subs ...string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		for _, sub := range subs {
			if strings.Contains(l, sub) {
				out = append(out, l)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}
