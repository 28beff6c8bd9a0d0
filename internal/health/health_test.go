package health

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// admin is a stand-in for the admin listener on loopback: /healthz 200,
// /readyz 503 (a gateway that is draining).
func admin(t *testing.T) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
	})
	mux.HandleFunc("GET /moved", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/healthz", http.StatusFound) })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestCheck(t *testing.T) {
	srv := admin(t)
	addr := strings.TrimPrefix(srv.URL, "http://")
	ctx := context.Background()
	if err := Check(ctx, addr, Live, 5*time.Second); err != nil {
		t.Errorf("/healthz 200: %v, want nil", err)
	}
	err := Check(ctx, addr, Ready, 5*time.Second)
	if err == nil || !strings.Contains(err.Error(), "503") || !strings.Contains(err.Error(), "shutting down") {
		t.Errorf("/readyz 503: %v, want an error naming the status and the answer", err)
	}
	// A redirect is an answer, not a reason to go elsewhere.
	if err := Check(ctx, addr, Probe("/moved"), 5*time.Second); err == nil || !strings.Contains(err.Error(), "302") {
		t.Errorf("redirect: %v, want a 302 error", err)
	}
	srv.Close()
	if err := Check(ctx, addr, Live, 5*time.Second); err == nil {
		t.Error("nothing listening: nil, want an error")
	}
}

func TestAdminAddr(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct{ name, cfg, want, err string }{
		{"all interfaces", "listen: 0.0.0.0:8080\nadmin_listen: 0.0.0.0:9090\n", "127.0.0.1:9090", ""},
		{"empty host", "admin_listen: :9091\n", "127.0.0.1:9091", ""},
		{"ipv6 wildcard", "admin_listen: \"[::]:9092\"\n", "127.0.0.1:9092", ""},
		{"one address", "admin_listen: 10.0.0.5:9090\n", "10.0.0.5:9090", ""},
		{"broken yaml", "admin_listen: 127.0.0.1:9090\nlisten: [broken\n", "", "health.yaml"},
		{"off", "listen: 0.0.0.0:8080\n", "", "admin_listen is off"},
		{"no port", "listen: 0.0.0.0:8080\nadmin_listen: 0.0.0.0\n", "", "health.yaml:2:15: admin_listen: must be host:port"},
		{"port 0", "admin_listen: 127.0.0.1:0\n", "", "port 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := AdminAddr(write("health.yaml", tc.cfg))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %q, %v; want an error with %q", got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
	if _, err := AdminAddr(filepath.Join(dir, "missing.yaml")); err == nil || !strings.Contains(err.Error(), "reading config") {
		t.Errorf("missing file: %v", err)
	}
}
