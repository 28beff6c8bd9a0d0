package server_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/outgate/outgate/internal/server"
)

// TestEgressCheckTakesOnlyOneWholeAnswer: the egress check's service is
// outside the deployment, and its answer opens instance mode's gate, so
// every answer that is not exactly one address is an error: garbage, an
// answer too large to keep, the right address followed by more (in one
// write or after a flush), a redirect (never followed, even to a server
// answering the right address) and an error status. An IPv6 answer is
// returned as what it is (the verdict then finds it is not one of the
// deployment's). A slow drip ends with the caller's context.
func TestEgressCheckTakesOnlyOneWholeAnswer(t *testing.T) {
	const right = "203.0.113.10"
	var redirected atomic.Int64
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		redirected.Add(1)
		io.WriteString(w, right+"\n")
	}))
	defer target.Close()
	dripping := make(chan struct{})
	var dripOnce atomic.Bool
	answers := map[string]http.HandlerFunc{
		"/garbage": func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "<html>hello</html>") },
		"/huge":    func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, strings.Repeat("9", 1<<20)) },
		"/junk":    func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, right+" and more") },
		"/flushed-junk": func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, right)
			w.(http.Flusher).Flush()
			io.WriteString(w, strings.Repeat(" ", 8<<10)+"198.51.100.7")
		},
		// One write with a length: the client's first read of the body
		// is what its 4 KiB header buffer already holds (the address and
		// spaces), the next the rest: a recorder that kept the first part
		// and dropped the second would read the address.
		"/long-junk": func(w http.ResponseWriter, r *http.Request) {
			body := right + strings.Repeat(" ", 8<<10) + "198.51.100.7"
			w.Header().Set("Content-Length", fmt.Sprint(len(body)))
			io.WriteString(w, body)
		},
		"/redirect": func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, target.URL+"/ip", http.StatusFound) },
		"/error":    func(w http.ResponseWriter, r *http.Request) { http.Error(w, right, http.StatusInternalServerError) },
		"/ipv6":     func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "2001:db8::10\n") },
		"/json":     func(w http.ResponseWriter, r *http.Request) { fmt.Fprintf(w, `{"ip": %q}`, right) },
		"/drip": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "13")
			w.WriteHeader(200)
			io.WriteString(w, "2")
			w.(http.Flusher).Flush()
			if dripOnce.CompareAndSwap(false, true) {
				close(dripping)
			}
			<-r.Context().Done()
		},
	}
	var path atomic.Value
	check := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		answers[path.Load().(string)](w, r)
	}))
	defer check.Close()
	c := newClient("billing")
	cfg := fmt.Sprintf("listen: 127.0.0.1:0\negress_check_url: %q\nnetwork: {allow_cidrs: [127.0.0.0/8]}\nclients:\n  - name: %s\n    key_sha256: %s\n    hosts: [\"api.example:443\"]\n", check.URL, c.name, c.hash)
	running := make(chan server.Running, 1)
	startWith(t, cfg, func(o *server.Options) { o.Started = func(r server.Running) { running <- r } })
	r := <-running

	for _, p := range []string{"/garbage", "/huge", "/junk", "/flushed-junk", "/long-junk", "/redirect", "/error"} {
		path.Store(p)
		if ip, err := r.EgressIP(context.Background()); err == nil {
			t.Errorf("%s: answered %v, want an error", p, ip)
		}
	}
	if n := redirected.Load(); n != 0 {
		t.Errorf("the redirect was followed (%d requests)", n)
	}
	path.Store("/ipv6")
	if ip, err := r.EgressIP(context.Background()); err != nil || ip.String() != "2001:db8::10" {
		t.Errorf("IPv6 answer: %v, %v", ip, err)
	}
	path.Store("/json")
	if ip, err := r.EgressIP(context.Background()); err != nil || ip.String() != right {
		t.Errorf("JSON answer: %v, %v", ip, err)
	}
	path.Store("/drip")
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-dripping; cancel() }()
	if ip, err := r.EgressIP(ctx); err == nil {
		t.Errorf("a dripping answer: %v", ip)
	}
}
