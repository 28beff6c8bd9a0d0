// Package metrics defines outgate's Prometheus metrics. Label values are
// bounded: clients and routes come from the config, codes from apierr.
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics is one registry with outgate's collectors on it.
type Metrics struct {
	Registry      *prometheus.Registry
	Requests      *prometheus.CounterVec   // mode, client, decision, code
	Duration      *prometheus.HistogramVec // mode
	Bytes         *prometheus.CounterVec   // direction
	TunnelsActive prometheus.Gauge
	Reloads       *prometheus.CounterVec // result
}

// New registers outgate's metrics and the Go/process collectors.
func New() *Metrics {
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
		TunnelsActive: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "outgate_tunnels_active",
			Help: "CONNECT tunnels open now.",
		}),
		Reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "outgate_config_reloads_total",
			Help: "Config reloads on SIGHUP, by result (ok, error).",
		}, []string{"result"}),
	}
	r.MustRegister(m.Requests, m.Duration, m.Bytes, m.TunnelsActive, m.Reloads,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{})
}
