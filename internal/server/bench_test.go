package server_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
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
