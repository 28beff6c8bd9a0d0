package main

import (
	"encoding/base64"
	"fmt"
	"strings"
	"syscall"
)

func base64Std(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// raiseNoFile lifts the open-file limit before any peer starts (they
// inherit it): 10,000 tunnels take 20,000 descriptors in a proxy. As root
// the hard limit itself is raised; otherwise the soft one goes to the hard.
func raiseNoFile() {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) != nil {
		return
	}
	want := syscall.Rlimit{Cur: 1 << 18, Max: 1 << 18}
	if l.Max >= want.Max || syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want) != nil {
		l.Cur = l.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}

func run(e *environment, s settings) *Results {
	r := &Results{BulkMBps: map[string]float64{}, TunnelsPerSec: map[string]float64{}, IdleKiBPerTunnel: map[string]float64{}, MaxTunnels: map[string]int{}, Notes: e.notes}
	fail := func(format string, a ...any) { r.Errors = append(r.Errors, fmt.Sprintf(format, a...)) }

	// pid is the process whose CPU time a request costs: the proxy, or
	// for direct the origin.
	type path struct {
		path, peer string
		t          target
		pid        int
	}
	origin := e.procs[0].Process.Pid
	paths := []path{
		{"direct", "", target{client: clientFor(e, nil, s), req: get("http://" + e.originHTTP + "/ping")}, origin},
		{"relay", "outgate", target{client: clientFor(e, nil, s), req: get("http://"+e.relayAddr+"/origin/ping", "Outgate-Key", e.relayKey)}, e.outgate.cmd.Process.Pid},
		// What a payment call looks like: a JSON POST, to a partner on HTTPS.
		{"relay-post", "outgate", target{client: clientFor(e, nil, s), req: send("POST", "http://"+e.relayAddr+"/origin/ping", paymentBody, "Outgate-Key", e.relayKey, "Content-Type", "application/json")}, e.outgate.cmd.Process.Pid},
		{"relay-https", "outgate", target{client: clientFor(e, nil, s), req: send("POST", "http://"+e.relayAddr+"/origin-tls/ping", paymentBody, "Outgate-Key", e.relayKey, "Content-Type", "application/json")}, e.outgate.cmd.Process.Pid},
	}
	for _, p := range e.peers {
		paths = append(paths, path{"proxy-http", p.name, target{client: clientFor(e, p, s), req: get("http://" + e.originHTTP + "/ping")}, p.cmd.Process.Pid})
	}
	paths = append(paths, path{"direct-tls", "", target{client: clientFor(e, nil, s), req: get("https://" + e.originTLS + "/ping")}, origin})
	if e.outgateTLS != nil {
		// The path of a function calling outgate on a VM across the
		// Internet: TLS to outgate, TLS to the partner. "-new" opens a new
		// connection (a TLS handshake) per request, as a function that
		// keeps nothing between invocations does; direct-tls-new is the
		// same without outgate.
		pid := e.outgateTLS.Process.Pid
		pay := send("POST", "https://"+e.relayTLSAddr+"/origin-tls/ping", paymentBody, "Outgate-Key", e.relayKey, "Content-Type", "application/json")
		paths = append(paths,
			path{"relay-tls", "outgate", target{client: clientFor(e, nil, s), req: pay}, pid},
			path{"relay-tls-new", "outgate", target{client: newConnClient(e, s), req: pay}, pid},
			path{"direct-tls-new", "", target{client: newConnClient(e, s), req: send("POST", "https://"+e.originTLS+"/ping", paymentBody, "Content-Type", "application/json")}, origin})
	}
	for _, p := range e.peers {
		paths = append(paths, path{"connect", p.name, target{client: clientFor(e, p, s), req: get("https://" + e.originTLS + "/ping")}, p.cmd.Process.Pid})
	}
	kept := paths[:0]
	for _, p := range paths {
		if s.wants(p.path) {
			kept = append(kept, p)
		}
	}
	paths = kept
	outgateRate := map[string]float64{}
	var rows []Row
	for _, p := range paths {
		if err := once(p.t); err != nil {
			fail("%s via %s: %v", p.path, p.peer, err)
			continue
		}
		cpu0 := cpuSeconds(p.pid)
		rps, errs := saturate(p.t, s.conns, s.dur)
		cpu := cpuSeconds(p.pid) - cpu0
		if p.peer == "outgate" {
			outgateRate[p.path] = rps
		}
		row := Row{Path: p.path, Peer: p.peer, RPS: rps, Errors: errs}
		if n := rps * s.dur.Seconds(); n > 0 {
			row.CPUus = cpu / n * 1e6
		}
		rows = append(rows, row)
	}
	// Latency at half of outgate's saturation rate for the same kind of path,
	// for every peer and for direct, so added latency compares like with like.
	rateFor := map[string]float64{"direct": outgateRate["relay"] / 2, "relay": outgateRate["relay"] / 2, "proxy-http": outgateRate["proxy-http"] / 2,
		"relay-post": outgateRate["relay-post"] / 2, "relay-https": outgateRate["relay-https"] / 2,
		"relay-tls": outgateRate["relay-tls"] / 2, "relay-tls-new": outgateRate["relay-tls-new"] / 2, "direct-tls-new": outgateRate["relay-tls-new"] / 2,
		"direct-tls": outgateRate["connect"] / 2, "connect": outgateRate["connect"] / 2}
	for i := range rows {
		row := &rows[i]
		for _, p := range paths {
			if p.path == row.Path && p.peer == row.Peer {
				row.Rate = rateFor[row.Path]
				if s.rate > 0 {
					row.Rate = s.rate
				}
				if row.Rate == 0 { // -only left out the outgate path that sets it
					continue
				}
				var errs int64
				row.P50, row.P99, row.P999, errs = latencyAt(p.t, row.Rate, s.dur)
				row.Errors += errs
			}
		}
	}
	r.Rows = rows

	if !s.wants("tunnels") {
		return r
	}
	bulkURL := fmt.Sprintf("https://%s/bulk?n=%d", e.originTLS, s.bulkBytes)
	if v, err := bulk(target{client: clientFor(e, nil, s), req: get(bulkURL)}); err == nil {
		r.BulkMBps["direct"] = v
	} else {
		fail("bulk direct: %v", err)
	}
	for _, p := range e.peers {
		if v, err := bulk(target{client: clientFor(e, p, s), req: get(bulkURL)}); err == nil {
			r.BulkMBps[p.name] = v
		} else {
			fail("bulk via %s: %v", p.name, err)
		}
		rate, errs := tunnelRate(p, e.echo, s.dur)
		r.TunnelsPerSec[p.name] = rate
		if errs > 0 {
			fail("%d failed tunnels via %s", errs, p.name)
		}
		if _, kib, err := hold(p, e.echoes, s.idle); err == nil {
			r.IdleKiBPerTunnel[p.name] = kib
		} else {
			fail("idle tunnels via %s: %v", p.name, err)
		}
		held, _, err := hold(p, e.echoes, s.maxTun)
		r.MaxTunnels[p.name] = held
		if err != nil {
			r.Notes = append(r.Notes, fmt.Sprintf("%s held %d concurrent tunnels before: %v", p.name, held, err))
		}
	}
	return r
}

func clientFor(e *environment, p *peer, s settings) *httpClient {
	return newHTTPClient(transport(s.conns, p, e))
}

// newConnClient opens a new connection for every request.
func newConnClient(e *environment, s settings) *httpClient {
	t := transport(s.conns, nil, e)
	t.DisableKeepAlives = true
	return newHTTPClient(t)
}

func (r *Results) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# outgate benchmark\n\n%s; %s; `%s`\n\n", r.Time, r.Machine, r.Command)
	fmt.Fprintln(&b, "| path | via | req/s (keep-alive, saturated) | CPU us/req | rate for latency | p50 ms | p99 ms | p99.9 ms | errors |")
	fmt.Fprintln(&b, "|---|---|---|---|---|---|---|---|---|")
	for _, row := range r.Rows {
		via := row.Peer
		if via == "" {
			via = "-"
		}
		fmt.Fprintf(&b, "| %s | %s | %.0f | %.1f | %.0f | %.3f | %.3f | %.3f | %d |\n", row.Path, via, row.RPS, row.CPUus, row.Rate, row.P50, row.P99, row.P999, row.Errors)
	}
	fmt.Fprintln(&b, "\n| via | CONNECT bulk MB/s | new tunnels/s | KiB RSS per idle tunnel | concurrent tunnels held |")
	fmt.Fprintln(&b, "|---|---|---|---|---|")
	fmt.Fprintf(&b, "| direct (TLS) | %.0f | - | - | - |\n", r.BulkMBps["direct"])
	for _, name := range []string{"outgate", "squid", "tinyproxy"} {
		if _, ok := r.TunnelsPerSec[name]; !ok {
			continue
		}
		fmt.Fprintf(&b, "| %s | %.0f | %.0f | %.1f | %d |\n", name, r.BulkMBps[name], r.TunnelsPerSec[name], r.IdleKiBPerTunnel[name], r.MaxTunnels[name])
	}
	fmt.Fprintln(&b, "\nratios (the headline; absolute numbers move from machine to machine):")
	row := func(path, peer string) Row { // the zero Row when the path did not run
		for _, x := range r.Rows {
			if x.Path == path && x.Peer == peer {
				return x
			}
		}
		return Row{}
	}
	find := func(path, peer string) float64 { return row(path, peer).RPS }
	cpu := func(path, peer string) float64 { return row(path, peer).CPUus }
	ratio := func(a, b float64) string {
		if b == 0 {
			return "n/a"
		}
		return fmt.Sprintf("%.2fx", a/b)
	}
	fmt.Fprintf(&b, "- relay vs direct: %s; forward proxy vs direct: %s; CONNECT vs direct TLS: %s\n",
		ratio(find("relay", "outgate"), find("direct", "")), ratio(find("proxy-http", "outgate"), find("direct", "")), ratio(find("connect", "outgate"), find("direct-tls", "")))
	fmt.Fprintf(&b, "- forward proxy vs squid: %s, vs tinyproxy: %s; CONNECT vs squid: %s, vs tinyproxy: %s\n",
		ratio(find("proxy-http", "outgate"), find("proxy-http", "squid")), ratio(find("proxy-http", "outgate"), find("proxy-http", "tinyproxy")),
		ratio(find("connect", "outgate"), find("connect", "squid")), ratio(find("connect", "outgate"), find("connect", "tinyproxy")))
	fmt.Fprintf(&b, "- CONNECT bulk vs direct: %s\n", ratio(r.BulkMBps["outgate"], r.BulkMBps["direct"]))
	fmt.Fprintf(&b, "- CPU per forward-proxy request, squid vs outgate: %s; tinyproxy vs outgate: %s (above 1x: outgate spends less)\n",
		ratio(cpu("proxy-http", "squid"), cpu("proxy-http", "outgate")), ratio(cpu("proxy-http", "tinyproxy"), cpu("proxy-http", "outgate")))
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "- note: %s\n", n)
	}
	return b.String()
}
