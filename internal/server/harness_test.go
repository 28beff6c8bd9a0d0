package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/outgate/outgate/internal/keys"
	"github.com/outgate/outgate/internal/server"
	"github.com/outgate/outgate/internal/testutil"
)

// logBuf collects the gateway's JSON log lines.
type logBuf struct{ testutil.SafeBuffer }

// lines returns the log lines with the given msg, decoded.
func (l *logBuf) lines(msg string) []map[string]any {
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(l.String()))
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil && m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// audit waits for the audit line of a request id (it is written after the
// response, so it may lag the client by a moment).
func (l *logBuf) audit(t *testing.T, id string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, m := range l.lines("request") {
			if m["request_id"] == id {
				return m
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no audit line for request %s in:\n%s", id, l.String())
	return nil
}

type gateway struct {
	server.Addrs
	cfgPath string
	logs    *logBuf
	reload  chan struct{}
	stop    context.CancelFunc
	done    chan error
}

// startB is start for benchmarks: the gateway's log goes nowhere.
func startB(b *testing.B, cfg string) *gateway {
	b.Helper()
	path := filepath.Join(b.TempDir(), "outgate.yaml")
	os.WriteFile(path, []byte(cfg), 0o600)
	ctx, cancel := context.WithCancel(context.Background())
	g := &gateway{cfgPath: path, logs: &logBuf{}, stop: cancel, done: make(chan error, 1)}
	ready := make(chan server.Addrs, 1)
	go func() {
		g.done <- server.Run(ctx, server.Options{ConfigPath: path, LogOutput: io.Discard, Ready: func(a server.Addrs) { ready <- a }})
	}()
	select {
	case g.Addrs = <-ready:
	case err := <-g.done:
		b.Fatalf("gateway did not start: %v", err)
	}
	b.Cleanup(func() { cancel(); <-g.done })
	return g
}

// start runs the gateway in-process on a config and waits until it listens.
func start(t *testing.T, cfg string) *gateway {
	t.Helper()
	return startWith(t, cfg, nil)
}

// startWith is start with more Options (set by opts).
func startWith(t *testing.T, cfg string, opts func(*server.Options)) *gateway {
	t.Helper()
	path := filepath.Join(t.TempDir(), "outgate.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	g := &gateway{cfgPath: path, logs: &logBuf{}, reload: make(chan struct{}), stop: cancel, done: make(chan error, 1)}
	ready := make(chan server.Addrs, 1)
	o := server.Options{ConfigPath: path, LogOutput: g.logs, Reload: g.reload, Ready: func(a server.Addrs) { ready <- a }}
	if opts != nil {
		opts(&o)
	}
	go func() { g.done <- server.Run(ctx, o) }()
	select {
	case g.Addrs = <-ready:
	case err := <-g.done:
		t.Fatalf("gateway did not start: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("gateway did not start within 10s")
	}
	t.Cleanup(func() {
		cancel()
		select {
		case <-g.done:
		case <-time.After(30 * time.Second):
			t.Error("gateway did not stop within 30s")
		}
	})
	return g
}

// rewrite replaces the config file and asks for a reload.
func (g *gateway) rewrite(t *testing.T, cfg string) {
	t.Helper()
	if err := os.WriteFile(g.cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	g.reload <- struct{}{}
}

type client struct{ name, key, hash string }

func newClient(name string) client {
	k, h := keys.New()
	return client{name, k, h}
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// do sends a request and returns the response with its body read.
func do(t *testing.T, c *http.Client, req *http.Request) (*http.Response, string) {
	t.Helper()
	if c == nil {
		c = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return resp, b.String()
}

// wantError checks a gateway-made error response.
func wantError(t *testing.T, resp *http.Response, body string, status int, code string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status = %d, want %d; body: %s", resp.StatusCode, status, body)
	}
	if got := resp.Header.Get("Outgate-Error"); got != code {
		t.Errorf("Outgate-Error = %q, want %q", got, code)
	}
	var e struct {
		Error struct{ Code, Message, Request_ID string } `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("error body is not JSON: %q", body)
	}
	if e.Error.Code != code || e.Error.Message == "" || e.Error.Request_ID != resp.Header.Get("Outgate-Request-Id") || e.Error.Request_ID == "" {
		t.Errorf("error body = %+v (request id header %q)", e.Error, resp.Header.Get("Outgate-Request-Id"))
	}
}

func mustListen(t *testing.T, addr string) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// runOnce runs the gateway on cfg and returns the error it fails to start with.
func runOnce(t *testing.T, cfg string) error {
	t.Helper()
	path := filepath.Join(t.TempDir(), "outgate.yaml")
	os.WriteFile(path, []byte(cfg), 0o600)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return server.Run(ctx, server.Options{ConfigPath: path, LogOutput: io.Discard})
}
