// Package metrics defines outgate's Prometheus metrics. Label values are
// bounded: clients and routes come from the config, codes from apierr.
package metrics

import (
	"net/http"
	"time"

	"github.com/outgate/outgate/internal/audit"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics is one registry with outgate's collectors on it.
type Metrics struct {
	Registry *prometheus.Registry
	Requests *prometheus.CounterVec   // mode, client, decision, code
	Duration *prometheus.HistogramVec // mode
	Bytes    *prometheus.CounterVec   // direction
	Reloads  *prometheus.CounterVec   // result
}

// New registers outgate's metrics and the Go/process collectors; tunnels
// reports the CONNECT tunnels open now.
func New(tunnels func() int) *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{
		Registry: r,
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "outgate_requests_total",
			Help: "Requests and tunnels handled, by mode, client, decision and outgate error code (empty when the request was allowed).",
		}, []string{"mode", "client", "decision", "code"}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "outgate_request_duration_seconds",
			Help:    "Time from request to the end of the response (or tunnel), by mode.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}, []string{"mode"}),
		Bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "outgate_bytes_total",
			Help: "Body and tunnel bytes carried, by direction (in: client to upstream, out: upstream to client).",
		}, []string{"direction"}),
		Reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "outgate_config_reloads_total",
			Help: "Config reloads on SIGHUP, by result (ok, error).",
		}, []string{"result"}),
	}
	active := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "outgate_tunnels_active",
		Help: "CONNECT tunnels open now.",
	}, func() float64 { return float64(tunnels()) })
	r.MustRegister(m.Requests, m.Duration, m.Bytes, active, m.Reloads,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
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
	m.Bytes.WithLabelValues("in").Add(float64(r.BytesIn))
	m.Bytes.WithLabelValues("out").Add(float64(r.BytesOut))
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{})
}
