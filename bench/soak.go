package main

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Sample is one window of a soak: the traffic in it and outgate's
// resources at its end.
type Sample struct {
	AtSeconds  float64 `json:"at_s"`
	Requests   int64   `json:"requests"`
	Errors     int64   `json:"errors"`
	P50        float64 `json:"p50_ms"`
	P99        float64 `json:"p99_ms"`
	RSSKiB     float64 `json:"rss_kib"`
	FDs        int     `json:"fds"`
	Goroutines int     `json:"goroutines"`
}

// Soak is the result of `go run ./bench -soak D`.
type Soak struct {
	Time, Machine, Command string
	SaturationRPS          float64  `json:"saturation_rps"` // the mix, closed loop
	Rate                   float64  `json:"rate"`           // 80% of it, open loop
	Duration               string   `json:"duration"`
	Samples                []Sample `json:"samples"`
	Requests, Errors       int64
	// RSSGrowth compares the last window with the end of the first fifth
	// (warm-up: pools and buffers filling): flat memory is a few percent.
	RSSGrowth float64 `json:"rss_growth"`
}

// mixTarget cycles through relay, absolute-form proxy and CONNECT (TLS,
// keep-alive) requests, the three ways clients use outgate.
func mixTarget(e *environment, s settings) target {
	ts := []target{
		{client: clientFor(e, nil, s), req: get("http://"+e.relayAddr+"/origin/ping", "Outgate-Key", e.relayKey)},
		{client: clientFor(e, e.outgate, s), req: get("http://" + e.originHTTP + "/ping")},
		{client: clientFor(e, e.outgate, s), req: get("https://" + e.originTLS + "/ping")},
	}
	var n atomic.Uint64
	return target{do: func() error { return once(ts[n.Add(1)%uint64(len(ts))]) }}
}

// soak measures the mix's saturation, then sends it open loop at 80% of that
// for d, sampling outgate every window.
func soak(e *environment, s settings, d, window time.Duration) *Soak {
	t := mixTarget(e, s)
	sat, _ := saturate(t, s.conns, min(s.dur, d))
	r := &Soak{SaturationRPS: sat, Rate: 0.8 * sat, Duration: d.String()}
	interval := time.Duration(float64(time.Second) / r.Rate)
	sem := make(chan struct{}, 512)
	var mu sync.Mutex
	var lat []float64
	var reqs, errs int64
	var wg sync.WaitGroup
	start := time.Now()
	next := start.Add(window)
	pid := e.outgate.cmd.Process.Pid
	// take closes a window: requests still in flight count in the next one,
	// and outgate is sampled outside the lock the requests record under.
	take := func() {
		mu.Lock()
		wl, wr, we := lat, reqs, errs
		lat, reqs, errs = nil, 0, 0
		mu.Unlock()
		r.Samples = append(r.Samples, sampleOf(time.Since(start), wl, wr, we, pid, e.adminAddr))
		r.Requests, r.Errors = r.Requests+wr, r.Errors+we
	}
	for i := 0; ; i++ {
		at := start.Add(time.Duration(i) * interval)
		if at.Sub(start) >= d {
			break
		}
		if at.After(next) {
			take()
			next = next.Add(window)
		}
		time.Sleep(time.Until(at))
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			err := t.do()
			ms := float64(time.Since(at).Microseconds()) / 1000
			mu.Lock()
			lat = append(lat, ms)
			reqs++
			if err != nil {
				errs++
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	take()
	if n := len(r.Samples); n >= 2 {
		base := r.Samples[max(0, n/5-1)].RSSKiB
		r.RSSGrowth = (r.Samples[n-1].RSSKiB - base) / base
	}
	return r
}

func sampleOf(at time.Duration, lat []float64, reqs, errs int64, pid int, admin string) Sample {
	q := quantiles(lat)
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return Sample{AtSeconds: at.Round(time.Second).Seconds(), Requests: reqs, Errors: errs, P50: q(0.5), P99: q(0.99),
		RSSKiB: rssKiB(pid), FDs: len(fds), Goroutines: int(scrape(admin, "go_goroutines"))}
}

// scrape reads one unlabelled metric from outgate's admin listener.
func scrape(admin, name string) float64 {
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return -1
}

func (r *Soak) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# outgate soak\n\n%s; %s; `%s`\n\n", r.Time, r.Machine, r.Command)
	fmt.Fprintf(&b, "mix of relay, forward-proxy and CONNECT requests: saturation %.0f req/s, soak at %.0f req/s (80%%) for %s\n\n",
		r.SaturationRPS, r.Rate, r.Duration)
	fmt.Fprintln(&b, "| at s | requests | errors | p50 ms | p99 ms | outgate RSS MiB | descriptors | goroutines |")
	fmt.Fprintln(&b, "|---|---|---|---|---|---|---|---|")
	for _, s := range r.Samples {
		fmt.Fprintf(&b, "| %.0f | %d | %d | %.3f | %.3f | %.1f | %d | %d |\n", s.AtSeconds, s.Requests, s.Errors, s.P50, s.P99, s.RSSKiB/1024, s.FDs, s.Goroutines)
	}
	fmt.Fprintf(&b, "\n%d requests, %d errors; RSS growth from the end of warm-up (first fifth) to the end: %+.1f%%\n",
		r.Requests, r.Errors, 100*r.RSSGrowth)
	return b.String()
}
