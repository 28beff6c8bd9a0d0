package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/outgate/outgate/internal/testutil"
)

// wsgiEcho is a partner on Python's wsgiref server, which (like CGI and
// several WSGI servers) turns header names into environment variables by
// upper-casing them and replacing '-' with '_': X_Forwarded_For and
// X-Forwarded-For both become HTTP_X_FORWARDED_FOR. It answers with the
// HTTP_* variables it got, as JSON.
const wsgiEcho = `
import json, sys
from wsgiref.simple_server import make_server, WSGIRequestHandler
class Quiet(WSGIRequestHandler):
    def log_message(self, *a): pass
def app(env, start):
    body = json.dumps({k: v for k, v in env.items() if k.startswith("HTTP_")}).encode()
    start("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
srv = make_server("127.0.0.1", 0, app, handler_class=Quiet)
print(srv.server_port, flush=True)
srv.serve_forever()
`

// TestUnderscoreClientHeadersStayBehind: a client cannot get its
// X-Forwarded-For (or X-Real-Ip, or Outgate-Key) to a partner by spelling
// the name with underscores, which such a partner reads as the same
// variable and may trust for an allowlist.
func TestUnderscoreClientHeadersStayBehind(t *testing.T) {
	py := testutil.Tool(t, "python3")
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, py, "-c", wsgiEcho)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); cmd.Wait() })
	port, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("python partner did not start: %v", err)
	}

	p := newPartner(t, nil)
	c := newClient("billing")
	cfg := relayConfig(p, c, "", "")
	cfg = strings.Replace(cfg, "upstreams:\n", fmt.Sprintf("upstreams:\n  wsgi:\n    url: http://127.0.0.1:%s/v2\n", strings.TrimSpace(port)), 1)
	cfg = strings.Replace(cfg, "upstreams: [partner, metadata]", "upstreams: [wsgi]", 1)
	g := start(t, cfg)

	req := relayReq(t, g, "GET", "/wsgi/x", c.key, nil)
	claims := map[string]string{
		"X_Forwarded_For":  "HTTP_X_FORWARDED_FOR",
		"x_real_ip":        "HTTP_X_REAL_IP",
		"True_Client-Ip":   "HTTP_TRUE_CLIENT_IP",
		"X-Forwarded_Host": "HTTP_X_FORWARDED_HOST",
		"X_API_KEY":        "HTTP_X_API_KEY",
		"Outgate_Key":      "HTTP_OUTGATE_KEY",
	}
	for k := range claims {
		req.Header[k] = []string{"198.51.100.1"}
	}
	req.Header["X_Partner_Token"] = []string{"kept"}
	resp, body := do(t, nil, req)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	var env map[string]string
	if err := json.Unmarshal([]byte(body), &env); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	for sent, v := range claims {
		if got, ok := env[v]; ok {
			t.Errorf("the client's %s reached the partner as %s=%q", sent, v, got)
		}
	}
	if env["HTTP_X_PARTNER_TOKEN"] != "kept" {
		t.Errorf("an ordinary underscore header was dropped: %v", env)
	}
}
