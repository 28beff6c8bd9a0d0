package verify

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/outgate/outgate/internal/deploy"
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
	ips := []deploy.IP{{PublicIP: "198.51.100.1", AttachedTo: "eni-1"}, {PublicIP: "203.0.113.7", AttachedTo: "eni-2"}}
	ctx := context.Background()
	if checks, err := Egress(ctx, srv.Client(), srv.URL+"/", "og_k", ips); err != nil || !checks[1].Seen || checks[0].Seen || !checks[0].OK {
		t.Fatalf("good egress: %+v %v", checks, err)
	}
	if _, err := Egress(ctx, srv.Client(), srv.URL, "og_k", ips[:1]); err == nil || !strings.Contains(err.Error(), "not one of the deployment's IPs (198.51.100.1)") {
		t.Errorf("wrong egress: %v", err)
	}
	if _, err := Egress(ctx, srv.Client(), srv.URL, "", ips); err == nil || !strings.Contains(err.Error(), "--key") {
		t.Errorf("no key: %v", err)
	}
	status, answer = 502, `{"error":{"code":"bad_gateway"}}`
	if _, err := Egress(ctx, srv.Client(), srv.URL, "og_k", ips); err == nil || !strings.Contains(err.Error(), "answered 502") {
		t.Errorf("relay error: %v", err)
	}
}

// TestVerifyChecksEveryIP: with two IPs, one that calls leave from and one
// that is attached to nothing, verify fails and names the second; calls
// that reach both IPs pass; the relay is called a bounded number of times.
func TestVerifyChecksEveryIP(t *testing.T) {
	var calls atomic.Int32
	egress := []string{"203.0.113.7"}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		fmt.Fprintf(w, `{"egress_ip":%q}`, egress[int(n)%len(egress)])
	}))
	defer srv.Close()
	ctx := context.Background()
	ips := []deploy.IP{{PublicIP: "203.0.113.7", AttachedTo: "eni-1"}, {PublicIP: "203.0.113.8"}}
	checks, err := Egress(ctx, srv.Client(), srv.URL, "og_k", ips)
	if err == nil || !strings.Contains(err.Error(), "203.0.113.8") || strings.Contains(err.Error(), "203.0.113.7") || checks[1].OK {
		t.Errorf("an IP on nothing passed verify: %+v %v", checks, err)
	}
	if n := calls.Load(); n != callsPerIP*2 {
		t.Errorf("%d calls, want the bound %d", n, callsPerIP*2)
	}
	calls.Store(0)
	egress = []string{"203.0.113.7", "203.0.113.8"}
	if checks, err := Egress(ctx, srv.Client(), srv.URL, "og_k", ips); err != nil || !checks[0].Seen || !checks[1].Seen {
		t.Errorf("both IPs seen: %+v %v", checks, err)
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("%d calls once both IPs were seen, want 2", n)
	}
}
