package server_test

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"

	"github.com/outgate/outgate/internal/testutil"
)

// ignoresGetBody starts testdata/partners/ignores_get_body.py, a partner
// on Python's http.server that does not read GET bodies, as its own
// process, over https when cert and key are given. It returns its base URL.
func ignoresGetBody(t *testing.T, cert, key string) string {
	t.Helper()
	py := testutil.Tool(t, "python3")
	args := []string{"../../testdata/partners/ignores_get_body.py"}
	scheme := "http"
	if cert != "" {
		args, scheme = append(args, cert, key), "https"
	}
	cmd := exec.Command(py, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	port, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("the python partner did not start: %v", err)
	}
	return fmt.Sprintf("%s://127.0.0.1:%s", scheme, strings.TrimSpace(port))
}

// TestTenantsAreIsolated: a client puts a whole request in the body of a
// GET to a partner that ignores GET bodies. Outgate refuses the body
// (400 body_not_allowed) unless the upstream opts in with allow_body_on;
// even then the smuggled request's answer never reaches another client, and
// the other client's answer never reaches the attacker.
func TestTenantsAreIsolated(t *testing.T) {
	for _, scheme := range []string{"http", "https"} {
		t.Run(scheme, func(t *testing.T) {
			var partnerURL, caLine string
			if scheme == "https" {
				cert, key := testutil.SelfSigned(t, "partner")
				partnerURL = ignoresGetBody(t, cert, key)
				caLine = "ca_files: [" + cert + "]"
			} else {
				partnerURL = ignoresGetBody(t, "", "")
			}
			attacker, victim := newClient("attacker"), newClient("victim")
			g := start(t, fmt.Sprintf(`
listen: 127.0.0.1:0
upstreams:
  strict: {url: %[1]q}
  lenient: {url: %[1]q, allow_body_on: [GET]}
clients:
  - {name: attacker, key_sha256: %[2]s, upstreams: [strict, lenient]}
  - {name: victim, key_sha256: %[3]s, upstreams: [strict, lenient]}
network: {allow_cidrs: [127.0.0.0/8], %[4]s}
`, partnerURL, attacker.hash, victim.hash, caLine))

			get := func(who client, path string, body string) (*http.Response, string) {
				t.Helper()
				var r io.Reader
				if body != "" {
					r = strings.NewReader(body)
				}
				return do(t, nil, relayReq(t, g, "GET", path, who.key, r))
			}
			smuggled := "GET /hold HTTP/1.1\r\nHost: partner\r\n\r\n"

			// Refused by default, also as an empty chunked body.
			resp, body := get(attacker, "/strict/first", smuggled)
			wantError(t, resp, body, http.StatusBadRequest, "body_not_allowed")
			req := relayReq(t, g, "GET", "/strict/first", attacker.key, io.NopCloser(strings.NewReader("")))
			req.ContentLength, req.TransferEncoding = -1, []string{"chunked"}
			resp, body = do(t, nil, req)
			wantError(t, resp, body, http.StatusBadRequest, "body_not_allowed")

			// Both clients have called the partner (an https partner is
			// then known to speak HTTP/1.1).
			for _, who := range []client{attacker, victim} {
				if _, body := get(who, "/lenient/warm", ""); body != "/warm" {
					t.Fatalf("warm-up answered %q", body)
				}
			}
			// Where the upstream allows it, the body goes through; the
			// partner takes it for a request of its own and answers it
			// when the next request arrives on the connection.
			if resp, body := get(attacker, "/lenient/first", smuggled); body != "/first" {
				t.Fatalf("attacker's GET with a body: %d %q", resp.StatusCode, body)
			}
			if resp, body := get(victim, "/lenient/victim", ""); body != "/victim" {
				t.Errorf("the victim got %d %q, not its own answer", resp.StatusCode, body)
			}
			if resp, body := get(attacker, "/lenient/again", ""); body != "/again" {
				t.Errorf("the attacker got %d %q, not its own answer", resp.StatusCode, body)
			}
		})
	}
}

// TestProxyRefusesBodyOnGet: the forward proxy has no per-destination
// settings to opt in with, so a body on GET (or DELETE) never reaches a
// partner through it; without a body the same request goes through.
func TestProxyRefusesBodyOnGet(t *testing.T) {
	partnerURL := ignoresGetBody(t, "", "")
	c := newClient("attacker")
	g := start(t, fmt.Sprintf(`
listen: 127.0.0.1:0
proxy_listen: 127.0.0.1:0
clients:
  - {name: attacker, key_sha256: %s, hosts: [%q]}
network: {allow_cidrs: [127.0.0.0/8]}
`, c.hash, strings.TrimPrefix(partnerURL, "http://")))
	pc := proxyClient(g, c, "")
	for _, method := range []string{"GET", "DELETE"} {
		req, _ := http.NewRequest(method, partnerURL+"/first", strings.NewReader("GET /hold HTTP/1.1\r\nHost: partner\r\n\r\n"))
		resp, body := do(t, pc, req)
		wantError(t, resp, body, http.StatusBadRequest, "body_not_allowed")
	}
	req, _ := http.NewRequest("GET", partnerURL+"/plain", nil)
	if resp, body := do(t, pc, req); resp.StatusCode != 200 || body != "/plain" {
		t.Errorf("GET without a body: %d %q", resp.StatusCode, body)
	}
}
