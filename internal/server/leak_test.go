package server_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/outgate/outgate/internal/testutil"
)

func openFDs() int {
	ents, _ := os.ReadDir("/proc/self/fd")
	return len(ents)
}

// TestNoLeaksAfterABurst: 2,000 relay requests on fresh connections and 200
// tunnels, then everything closed: goroutines and file descriptors come back
// to where they were (within a small slack for the runtime's own), and every
// connection slot (limits.max_connections) is free again, hijacked tunnels
// included: a slot that leaked would one day stop the gateway accepting.
func TestNoLeaksAfterABurst(t *testing.T) {
	// The gateway's keep-alive pool to the partner may end the burst
	// fuller than it began (each pooled connection holds one partner
	// goroutine and two descriptors here), which is not a leak as long as
	// the pool stays within its bound: the partner counts its connections.
	up := newPartner(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	e := echo(t)
	c := newClient("burst")
	g := start(t, relayConfig(up, c, fmt.Sprintf("    hosts: [%q]\n    limits: {requests_per_second: 100000, burst: 100000, max_concurrent: 10000, max_tunnels: 10000}\n", e),
		"proxy_listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\nlimits: {idle_timeout: 1s, max_connections: 250, max_connections_per_ip: 250}\n"))
	settle := func() (int, int) {
		runtime.GC()
		time.Sleep(200 * time.Millisecond)
		return runtime.NumGoroutine(), openFDs()
	}
	// The warm-up runs at the same concurrency, so the gateway's keep-alive
	// pool to the partner (up to 100 connections here, by design) is already
	// full when the baseline is taken.
	burst := func(n, tunnels int) {
		var wg sync.WaitGroup
		sem := make(chan struct{}, 100)
		for i := 0; i < n; i++ {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				tr := &http.Transport{DisableKeepAlives: true}
				req := relayReq(t, g, "GET", "/partner/x", c.key, nil)
				resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}()
		}
		wg.Wait()
		var conns []net.Conn
		for i := 0; i < tunnels; i++ {
			conn, _, resp, _ := rawProxy(t, g, "CONNECT "+e+" HTTP/1.1", "Host: "+e, "Proxy-Authorization: "+basic(c.name, c.key))
			if resp.StatusCode != 200 {
				t.Fatalf("tunnel %d: %d", i, resp.StatusCode)
			}
			conns = append(conns, conn)
		}
		for _, conn := range conns {
			conn.Close()
		}
	}
	burst(500, 20)
	g0, f0 := settle()
	p0 := int(up.conns.Load())
	burst(2000, 200)
	var g1, f1, grown int
	for i := 0; i < 25; i++ { // idle keep-alive conns close after idle_timeout (1s)
		g1, f1 = settle()
		grown = int(up.conns.Load()) - p0
		if g1 <= g0+10+grown && f1 <= f0+10+2*grown {
			break
		}
	}
	if g1 > g0+10+grown || f1 > f0+10+2*grown {
		t.Fatalf("after the burst: %d goroutines (was %d), %d fds (was %d), the upstream pool grew by %d", g1, g0, f1, f0, grown)
	}
	// 100 requests at a time: at most 100 pooled HTTP/1.1 connections, plus
	// what the first wave (before the partner was known to speak HTTP/1.1)
	// left in http.Transport's pool.
	if n := up.conns.Load(); n > 200 {
		t.Errorf("%d connections open to the partner after the burst", n)
	}
	if n := testutil.Metric(t, g.Admin, "outgate_connections_open"); n != 0 {
		t.Errorf("after the burst %v client connections count as open", n)
	}
}
