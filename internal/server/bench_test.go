package server_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

// BenchmarkRelay measures one relay round trip through a running gateway
// (client, gateway and upstream in this process, on loopback). Profile with
// go test ./internal/server -run XXX -bench Relay -cpuprofile cpu.out
func BenchmarkRelay(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"status":"ok"}`)
	}))
	defer up.Close()
	c := newClient("bench")
	g := startB(b, fmt.Sprintf(`
listen: 127.0.0.1:0
upstreams: {origin: {url: %q}}
clients: [{name: bench, key_sha256: %s, upstreams: [origin], limits: {requests_per_second: 1000000, burst: 1000000, max_concurrent: 100000}}]
network: {allow_cidrs: [127.0.0.0/8]}
`, up.URL, c.hash))
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest("GET", "http://"+g.Relay+"/origin/ping", nil)
			req.Header.Set("Outgate-Key", c.key)
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}

// BenchmarkRelayPost is a payment-sized JSON POST through the relay, with
// idempotency off ("off") and on with the embedded store ("bolt": each
// request a new Idempotency-Key, so each is claimed, sent and its answer
// stored: two bbolt write transactions, each with an fsync). The
// difference is what the embedded store costs per request
// (docs/performance.md).
func BenchmarkRelayPost(b *testing.B) {
	for _, mode := range []string{"off", "bolt"} {
		b.Run(mode, func(b *testing.B) {
			up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				io.WriteString(w, `{"status":"ok"}`)
			}))
			defer up.Close()
			idem := ""
			if mode == "bolt" {
				idem = ", idempotency: {}"
			}
			c := newClient("bench")
			g := startB(b, fmt.Sprintf(`
listen: 127.0.0.1:0
upstreams: {origin: {url: %q%s}}
clients: [{name: bench, key_sha256: %s, upstreams: [origin], limits: {requests_per_second: 1000000, burst: 1000000, max_concurrent: 100000}}]
network: {allow_cidrs: [127.0.0.0/8]}
`, up.URL, idem, c.hash))
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			body := `{"amount":1000,"currency":"EUR","to":"DE89370400440532013000","reference":"invoice 42"}`
			var n atomic.Int64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req, _ := http.NewRequest("POST", "http://"+g.Relay+"/origin/pay", strings.NewReader(body))
					req.Header.Set("Outgate-Key", c.key)
					req.Header.Set("Content-Type", "application/json")
					req.Header.Set("Idempotency-Key", "k"+strconv.FormatInt(n.Add(1), 10))
					resp, err := client.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						b.Errorf("status %d", resp.StatusCode)
						return
					}
				}
			})
		})
	}
}
