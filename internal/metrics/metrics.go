// Package metrics defines outgate's Prometheus metrics. Label values are
// bounded: clients and routes come from the config, codes from apierr.
package metrics

import (
	"net/http"
	"time"

	"github.com/outgate/outgate/internal/audit"
	"github.com/outgate/outgate/internal/buildinfo"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics is one registry with outgate's collectors on it.
type Metrics struct {
	Registry *prometheus.Registry
	Requests *prometheus.CounterVec   // mode, client, decision, error_code
	Duration *prometheus.HistogramVec // mode
	// UpstreamDuration is the time spent on the upstream per route (the
	// relay's upstream name; empty for proxy requests to a host).
	UpstreamDuration *prometheus.HistogramVec // mode, route
	// LastReload is when the config in force was loaded (start or SIGHUP).
	LastReload prometheus.Gauge
	Bytes      *prometheus.CounterVec // direction
	Reloads    *prometheus.CounterVec // result
	// SecretRefreshes counts refreshes of partner secrets, by result.
	SecretRefreshes *prometheus.CounterVec
	// Idempotency counts what idempotency keys did: replays, conflicts,
	// unknown outcomes (a fixed set of words: idempotency.Outcome*).
	Idempotency *prometheus.CounterVec // outcome

	// The two byte counters, resolved once: Observe runs per request.
	bytesIn, bytesOut prometheus.Counter
}

// Sources are the gauges read at scrape time.
type Sources struct {
	Tunnels   func() int   // CONNECT tunnels open now
	ConnsOpen func() int   // client connections open now (relay + proxy)
	ConnsMax  func() int   // limits.max_connections in force
	ConnWaits func() int64 // Accepts that waited for a free connection slot
	// ConnsRefused counts client connections closed by a connection rule,
	// by reason (a fixed set: per_source_limit, auth_timeout, write_idle_timeout).
	ConnsRefused func() map[string]int64
	Dials        func() int64 // upstream connections opened
}

// New registers outgate's metrics and the Go/process collectors.
func New(src Sources) *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{
		Registry: r,
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "outgate_requests_total",
			Help: "Requests and tunnels handled, by mode, client, decision and outgate error code (empty when the request was allowed; error_code, since code means the HTTP status elsewhere).",
		}, []string{"mode", "client", "decision", "error_code"}),
		UpstreamDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "outgate_upstream_duration_seconds",
			Help:    "Time spent on the upstream (response headers and body) for requests that reached one, by mode and route (the relay's upstream name; empty for proxy requests).",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"mode", "route"}),
		LastReload: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "outgate_config_last_reload_success_timestamp_seconds",
			Help: "Unix time the config in force was loaded: at start, then at each successful SIGHUP reload.",
		}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "outgate_request_duration_seconds",
			Help:    "Time from request to the end of the response (or tunnel), by mode.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}, []string{"mode"}),
		Bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "outgate_bytes_total",
			Help: "Body and tunnel bytes carried, by direction (in: client to upstream, out: to the client, the gateway's own error bodies included).",
		}, []string{"direction"}),
		Reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "outgate_config_reloads_total",
			Help: "Config reloads on SIGHUP, by result (ok, error).",
		}, []string{"result"}),
		Idempotency: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "outgate_idempotency_total",
			Help: "Requests with an idempotency key, by outcome: sent, sent_not_stored, released, marked_unknown (sent, no complete answer), replay, in_flight, key_reused, outcome_unknown, answer_not_stored, refused.",
		}, []string{"outcome"}),
	}
	m.SecretRefreshes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "outgate_secret_refreshes_total",
		Help: "Refreshes of partner secrets every secrets.ttl, by result (ok, error). Errors keep the previous values in use: a rotated secret is not picked up.",
	}, []string{"result"})
	gauge := func(name, help string, f func() int) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return float64(f()) })
	}
	bi := buildinfo.Get()
	r.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "outgate_build_info",
			Help:        "Always 1; its labels say which build runs (as outgate version does).",
			ConstLabels: prometheus.Labels{"version": bi.Version, "commit": bi.Commit, "go_version": bi.GoVersion},
		}, func() float64 { return 1 }),
		gauge("outgate_tunnels_active", "CONNECT tunnels open now.", src.Tunnels),
		gauge("outgate_connections_open", "Client connections open now on the relay and proxy listeners.", src.ConnsOpen),
		gauge("outgate_connections_max", "limits.max_connections in force.", src.ConnsMax),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "outgate_connection_waits_total",
			Help: "Times a new connection waited in the listen backlog because max_connections were open.",
		}, func() float64 { return float64(src.ConnWaits()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "outgate_upstream_connections_opened_total",
			Help: "Connections opened to upstreams (relay, proxy, tunnels). Far below requests means keep-alive works; close to it, each request pays a new connection (and TLS handshake).",
		}, func() float64 { return float64(src.Dials()) }),
	)
	if src.ConnsRefused != nil {
		for reason := range src.ConnsRefused() {
			r.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name:        "outgate_connections_refused_total",
				Help:        "Client connections closed for breaking a connection rule: per_source_limit (over limits.max_connections_per_ip, closed at accept), auth_timeout (no authenticated request within limits.auth_timeout), write_idle_timeout (the client read nothing for limits.write_idle_timeout).",
				ConstLabels: prometheus.Labels{"reason": reason},
			}, func() float64 { return float64(src.ConnsRefused()[reason]) }))
		}
	}
	r.MustRegister(m.Requests, m.Duration, m.UpstreamDuration, m.LastReload, m.Bytes, m.Reloads, m.SecretRefreshes, m.Idempotency,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.bytesIn, m.bytesOut = m.Bytes.WithLabelValues("in"), m.Bytes.WithLabelValues("out")
	return m
}

// Observe counts one finished request or tunnel.
func (m *Metrics) Observe(r *audit.Record) {
	code := ""
	if r.Decision != audit.Allow {
		code = r.Reason
	}
	m.Requests.WithLabelValues(r.Mode, r.Client, r.Decision, code).Inc()
	m.Duration.WithLabelValues(r.Mode).Observe(time.Since(r.Start).Seconds())
	if r.Upstream > 0 {
		// Route is a configured upstream name once a request reaches one
		// (the relay sets it before checking it exists, but such a request
		// never reaches an upstream), so the label stays bounded.
		m.UpstreamDuration.WithLabelValues(r.Mode, r.Route).Observe(r.Upstream.Seconds())
	}
	m.bytesIn.Add(float64(r.BytesIn))
	m.bytesOut.Add(float64(r.BytesOut))
	if r.Idempotency != "" {
		m.Idempotency.WithLabelValues(r.Idempotency).Inc()
	}
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{})
}
