package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Row is one path measured.
type Row struct {
	Path   string  `json:"path"`   // direct, relay, proxy-http, connect
	Peer   string  `json:"peer"`   // outgate, squid, tinyproxy, (none)
	RPS    float64 `json:"rps"`    // at saturation, keep-alive
	Rate   float64 `json:"rate"`   // fixed rate for the latency figures
	P50    float64 `json:"p50_ms"` // latency at Rate
	P99    float64 `json:"p99_ms"`
	P999   float64 `json:"p999_ms"`
	CPUus  float64 `json:"cpu_us_per_req"` // the proxy's (or, direct, the origin's) CPU time per request at saturation
	Errors int64   `json:"errors"`
}

// Results is one run.
type Results struct {
	Time, Machine, Command string
	Rows                   []Row
	BulkMBps               map[string]float64 // CONNECT (and direct TLS) download
	TunnelsPerSec          map[string]float64
	IdleKiBPerTunnel       map[string]float64
	MaxTunnels             map[string]int
	Notes, Errors          []string
}

type target struct {
	client *httpClient
	req    func() *http.Request
	do     func() error // if set, one request of a mix (see mixTarget)
}

func transport(conns int, proxy *peer, e *environment) *http.Transport {
	t := &http.Transport{MaxIdleConns: conns * 2, MaxIdleConnsPerHost: conns * 2, MaxConnsPerHost: conns, TLSClientConfig: e.tlsConf,
		DisableCompression: true, IdleConnTimeout: time.Minute}
	if proxy != nil {
		u := &url.URL{Scheme: "http", Host: proxy.proxyAddr}
		if proxy.user != "" {
			u.User = url.UserPassword(proxy.user, proxy.pass)
		}
		t.Proxy = http.ProxyURL(u)
	}
	return t
}

func get(u string, header ...string) func() *http.Request {
	return send("GET", u, "", header...)
}

// paymentBody is the size of a typical payment API call's JSON.
const paymentBody = `{"amount":1000,"currency":"eur","source":"tok_visa","description":"order 4711","metadata":{"order_id":"4711","customer":"c_8f2a"},"idempotency":"b1b0712-4711"}`

func send(method, u, body string, header ...string) func() *http.Request {
	return func() *http.Request {
		r, _ := http.NewRequest(method, u, strings.NewReader(body))
		for i := 0; i+1 < len(header); i += 2 {
			r.Header.Set(header[i], header[i+1])
		}
		return r
	}
}

func once(t target) error {
	if t.do != nil {
		return t.do()
	}
	resp, err := t.client.Do(t.req())
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// saturate runs conns closed loops for dur and returns requests/s.
func saturate(t target, conns int, dur time.Duration) (float64, int64) {
	var n, errs atomic.Int64
	deadline := time.Now().Add(dur)
	var wg sync.WaitGroup
	for i := 0; i < conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				if once(t) != nil {
					errs.Add(1)
					continue
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	return float64(n.Load()) / dur.Seconds(), errs.Load()
}

// latencyAt sends requests at a fixed rate (open loop: latency counts from
// the scheduled send time, so queueing shows) and returns p50/p99/p99.9 in ms.
func latencyAt(t target, rate float64, dur time.Duration) (p50, p99, p999 float64, errs int64) {
	if rate < 1 {
		rate = 1
	}
	total := int(rate * dur.Seconds())
	if total < 1 {
		total = 1
	}
	interval := time.Duration(float64(time.Second) / rate)
	lat := make([]float64, total)
	sem := make(chan struct{}, 512)
	var wg sync.WaitGroup
	var e atomic.Int64
	start := time.Now()
	for i := 0; i < total; i++ {
		at := start.Add(time.Duration(i) * interval)
		time.Sleep(time.Until(at))
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if once(t) != nil {
				e.Add(1)
			}
			lat[i] = float64(time.Since(at).Microseconds()) / 1000
		}()
	}
	wg.Wait()
	q := quantiles(lat)
	return q(0.5), q(0.99), q(0.999), e.Load()
}

// quantiles sorts lat and returns a function giving its f-quantile (0 for
// no samples).
func quantiles(lat []float64) func(f float64) float64 {
	sort.Float64s(lat)
	return func(f float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return lat[int(f*float64(len(lat)-1))]
	}
}

// bulk downloads n bytes and returns MB/s.
func bulk(t target) (float64, error) {
	start := time.Now()
	resp, err := t.client.Do(t.req())
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil {
		return 0, err
	}
	return float64(n) / (1 << 20) / time.Since(start).Seconds(), nil
}

// connect opens one tunnel through p to target and returns the connection.
func connect(p *peer, target string) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", p.proxyAddr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	auth := ""
	if p.user != "" {
		auth = "Proxy-Authorization: Basic " + basicAuth(p.user, p.pass) + "\r\n"
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n%s\r\n", target, target, auth)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: "CONNECT"})
	if err != nil {
		c.Close()
		return nil, err
	}
	if resp.StatusCode != 200 {
		c.Close()
		return nil, fmt.Errorf("CONNECT answered %d", resp.StatusCode)
	}
	c.SetDeadline(time.Time{})
	return c, nil
}

// tunnelRate opens and closes tunnels (with one echo round trip) from 8
// workers for dur and returns tunnels/s.
func tunnelRate(p *peer, echo string, dur time.Duration) (float64, int64) {
	var n, errs atomic.Int64
	deadline := time.Now().Add(dur)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 4)
			for time.Now().Before(deadline) {
				c, err := connect(p, echo)
				if err == nil {
					_, err = c.Write([]byte("ping"))
					if err == nil {
						_, err = io.ReadFull(c, buf)
					}
					c.Close()
				}
				if err != nil {
					errs.Add(1)
					continue
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	return float64(n.Load()) / dur.Seconds(), errs.Load()
}

// cpuSeconds reads a process's user plus system CPU time. Unlike
// requests/s, CPU per request hardly depends on what else shares the cores,
// and it compares a one-process proxy (squid) with a multi-threaded one fairly.
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / clockTicks
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat times: 100 on Linux.
const clockTicks = 100

// rssKiB reads a process's resident memory.
func rssKiB(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			f := strings.Fields(l)
			v, _ := strconv.ParseFloat(f[1], 64)
			return v
		}
	}
	return 0
}

// hold opens n tunnels to the echo server, checks each with a round trip,
// and returns how many were held at once with no error, and the
// proxy's RSS growth per tunnel.
func hold(p *peer, echoes []string, n int) (held int, kibPerTunnel float64, err error) {
	pid := 0
	if p.cmd != nil {
		pid = p.cmd.Process.Pid
	}
	before := rssKiB(pid)
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	buf := make([]byte, 4)
	for i := 0; i < n; i++ {
		c, err := connect(p, echoes[i%len(echoes)])
		if err == nil {
			c.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err = c.Write([]byte("ping")); err == nil {
				_, err = io.ReadFull(c, buf)
			}
			c.SetDeadline(time.Time{})
		}
		if err != nil {
			return len(conns), 0, fmt.Errorf("tunnel %d: %v", i+1, err)
		}
		conns = append(conns, c)
	}
	time.Sleep(500 * time.Millisecond) // let the proxy settle
	after := rssKiB(pid)
	if pid != 0 && n > 0 {
		kibPerTunnel = (after - before) / float64(n)
	}
	return len(conns), kibPerTunnel, nil
}

func basicAuth(u, p string) string {
	return base64Std(u + ":" + p)
}
