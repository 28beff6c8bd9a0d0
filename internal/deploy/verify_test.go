package deploy

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestVerify(t *testing.T) {
	answer := `{"egress_ip":"203.0.113.7","checked_via":"https://checkip.amazonaws.com"}`
	status := 200
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/_outgate/whoami" || r.Header.Get("Outgate-Key") != "og_k" {
			http.Error(w, "bad call", 400)
			return
		}
		w.WriteHeader(status)
		io.WriteString(w, answer)
	}))
	defer srv.Close()
	ips := []IP{{PublicIP: "198.51.100.1"}, {PublicIP: "203.0.113.7"}}
	ctx := context.Background()
	if ip, err := Verify(ctx, srv.Client(), srv.URL+"/", "og_k", ips); err != nil || ip != "203.0.113.7" {
		t.Fatalf("good egress: %q %v", ip, err)
	}
	if _, err := Verify(ctx, srv.Client(), srv.URL, "og_k", ips[:1]); err == nil || !strings.Contains(err.Error(), "not one of the deployment's IPs (198.51.100.1)") {
		t.Errorf("wrong egress: %v", err)
	}
	if _, err := Verify(ctx, srv.Client(), srv.URL, "", ips); err == nil || !strings.Contains(err.Error(), "--key") {
		t.Errorf("no key: %v", err)
	}
	status, answer = 502, `{"error":{"code":"bad_gateway"}}`
	if _, err := Verify(ctx, srv.Client(), srv.URL, "og_k", ips); err == nil || !strings.Contains(err.Error(), "answered 502") {
		t.Errorf("relay error: %v", err)
	}
}
