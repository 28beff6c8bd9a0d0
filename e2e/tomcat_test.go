package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/outgate/outgate/internal/keys"
	"github.com/outgate/outgate/internal/testutil"
)

// tomcatJars are the embedded Tomcat's classes in Debian's libtomcat10-java.
var tomcatJars = []string{"catalina", "servlet-api", "api", "util", "util-scan", "coyote", "juli", "jaspic-api", "annotations-api", "jni"}

// startTomcat runs testdata/tomcat/Partner.java, a real Tomcat with a public
// /v2/* and an /admin/* area, and returns its host:port. Source-file mode
// compiles it in memory, so only the JRE is needed.
func startTomcat(t *testing.T) string {
	t.Helper()
	java := testutil.Tool(t, "java")
	var cp []string
	for _, j := range tomcatJars {
		p := "/usr/share/java/tomcat10-" + j + ".jar"
		if _, err := os.Stat(p); err != nil {
			testutil.Unavailable(t, "Tomcat 10 is not installed (apt-get install libtomcat10-java)")
		}
		cp = append(cp, p)
	}
	src, err := filepath.Abs("testdata/tomcat/Partner.java")
	if err != nil {
		t.Fatal(err)
	}
	logs := &testutil.SafeBuffer{}
	cmd := exec.Command(java, "-Xshare:auto", "-XX:TieredStopAtLevel=1", "-cp", strings.Join(cp, ":"), src, t.TempDir())
	cmd.Stderr = logs
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	port := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if p, ok := strings.CutPrefix(sc.Text(), "PORT "); ok {
				port <- p
			}
		}
		close(port)
	}()
	// Compiling the partner and starting Tomcat takes a few seconds, more on
	// a busy machine; the bound only keeps a broken start from hanging.
	select {
	case p, ok := <-port:
		if !ok {
			t.Fatalf("Tomcat exited before it listened:\n%s", logs.String())
		}
		return "127.0.0.1:" + p
	case <-time.After(3 * time.Minute):
		t.Fatalf("Tomcat did not listen within 3 minutes:\n%s", logs.String())
	}
	return ""
}

// rawGet sends target exactly as written (no client-side clean-up of the
// path) and returns the status, the Outgate-Error header and the body.
func rawGet(t *testing.T, addr, target string, hdr ...string) (int, string, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n%s\r\n", target, addr, strings.Join(append(hdr, ""), "\r\n"))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Outgate-Error"), string(b)
}

// TestNoWayOutOfTheBasePath: against a real Tomcat partner, relay paths that
// Tomcat resolves out of the upstream's base path (/v2) into /admin are
// refused by the built outgate with its own 400, and never reach Tomcat.
func TestNoWayOutOfTheBasePath(t *testing.T) {
	tomcat := startTomcat(t)

	// The partner really is reachable this way when called directly: Tomcat
	// drops ";params" from a segment before resolving dot segments.
	escapes := []string{"..;", "..;x=1", "%2e%2e;", "%2E%2E;jsessionid=1", ".;/..;", "%2e%2e", ".%2e"}
	for _, seg := range escapes {
		status, _, body := rawGet(t, tomcat, "/v2/"+seg+"/admin/users")
		if status != 200 || !strings.HasPrefix(body, "ADMIN /admin/users") {
			t.Fatalf("direct /v2/%s/admin/users: %d %q; the partner should have resolved it into /admin", seg, status, body)
		}
	}
	_, _, before := rawGet(t, tomcat, "/v2/admin-hits")

	key, hash := keys.New()
	addr := "127.0.0.1:" + freePortNum(t)
	cfg := fmt.Sprintf(`listen: %s
upstreams:
  partner: {url: "http://%s/v2"}
clients:
  - {name: a, key_sha256: %s, upstreams: [partner]}
network: {allow_cidrs: [127.0.0.0/8]}
`, addr, tomcat, hash)
	path := filepath.Join(t.TempDir(), "outgate.yaml")
	os.WriteFile(path, []byte(cfg), 0o600)
	_, logs := serve(t, path)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("outgate did not listen:\n%s", logs.String())
		}
	}
	key2 := "Outgate-Key: " + key

	status, _, body := rawGet(t, addr, "/partner/users", key2)
	if status != 200 || body != "public /v2/users" {
		t.Fatalf("a plain relay request: %d %q", status, body)
	}
	spellings := append(escapes, "%2e%2e%3b", "..%3B", ".%2e%3bx", "..%5c", `..\`, "%252e%252e", "%252e%252e%253b",
		"%c0%ae%c0%ae", "%EF%BC%8E%EF%BC%8E")
	for _, seg := range spellings {
		for _, target := range []string{"/partner/" + seg + "/admin/users", "/partner/x/" + seg + "/" + seg + "/admin/users"} {
			status, code, body := rawGet(t, addr, target, key2)
			var e struct{ Error struct{ Code string } }
			if status != 400 || code != "bad_request" || json.Unmarshal([]byte(body), &e) != nil || e.Error.Code != "bad_request" {
				t.Errorf("GET %s through outgate: %d %s %q, want outgate's 400 bad_request", target, status, code, body)
			}
		}
	}
	// Nothing reached the admin area through outgate.
	if _, _, after := rawGet(t, addr, "/partner/admin-hits", key2); after != before {
		t.Errorf("Tomcat's /admin was hit %s times before and %s after the relay requests", before, after)
	}
}
