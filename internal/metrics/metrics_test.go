package metrics

import (
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/outgate/outgate/internal/audit"
	"github.com/outgate/outgate/internal/buildinfo"
)

// TestBuildInfo: /metrics says which build runs, with the same version,
// commit and Go version as `outgate version`.
func TestBuildInfo(t *testing.T) {
	zero := func() int { return 0 }
	m := New(Sources{Tunnels: zero, ConnsOpen: zero, ConnsMax: zero, ConnWaits: func() int64 { return 0 }, Dials: func() int64 { return 0 }})
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	bi := buildinfo.Get()
	want := fmt.Sprintf("outgate_build_info{commit=%q,go_version=%q,version=%q} 1\n", bi.Commit, bi.GoVersion, bi.Version)
	if !strings.Contains(string(body), want) {
		t.Errorf("/metrics lacks %q:\n%.3000s", want, body)
	}
}

// TestObserveKeepsLabelsBounded: an allowed request carries no error code,
// a refused one its code; a request that named a route but never reached an
// upstream (an unknown name a client made up) adds no series, so a client
// cannot grow /metrics; bytes add up in both directions.
func TestObserveKeepsLabelsBounded(t *testing.T) {
	zero := func() int { return 0 }
	m := New(Sources{Tunnels: zero, ConnsOpen: zero, ConnsMax: zero, ConnWaits: func() int64 { return 0 }, Dials: func() int64 { return 0 }})
	now := time.Now()
	m.Observe(&audit.Record{Start: now, Mode: "relay", Client: "billing", Route: "stripe", Decision: audit.Allow, Reason: "", Upstream: 20 * time.Millisecond, BytesIn: 10, BytesOut: 100})
	m.Observe(&audit.Record{Start: now, Mode: "relay", Client: "billing", Route: "made-up-by-client-1", Decision: audit.Deny, Reason: "unknown_upstream", BytesOut: 90})
	m.Observe(&audit.Record{Start: now, Mode: "relay", Client: "billing", Route: "made-up-by-client-2", Decision: audit.Deny, Reason: "unknown_upstream", BytesOut: 90})
	m.Observe(&audit.Record{Start: now, Mode: "relay", Client: "billing", Route: "stripe", Decision: audit.Allow, Reason: "ignored for allowed", Upstream: time.Millisecond, Idempotency: "replay"})

	// What a scrape shows, series by series.
	series := map[string]float64{}
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if !strings.HasPrefix(f.GetName(), "outgate_") {
			continue
		}
		for _, s := range f.GetMetric() {
			var labels []string
			for _, l := range s.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			v := s.GetCounter().GetValue()
			if h := s.GetHistogram(); h != nil {
				v = float64(h.GetSampleCount())
			}
			series[f.GetName()+"{"+strings.Join(labels, ",")+"}"] = v
		}
	}
	for name, want := range map[string]float64{
		"outgate_requests_total{client=billing,decision=allow,error_code=,mode=relay}":                2,
		"outgate_requests_total{client=billing,decision=deny,error_code=unknown_upstream,mode=relay}": 2,
		"outgate_upstream_duration_seconds{mode=relay,route=stripe}":                                  2,
		"outgate_bytes_total{direction=in}":                                                           10,
		"outgate_bytes_total{direction=out}":                                                          280,
		"outgate_idempotency_total{outcome=replay}":                                                   1,
	} {
		if got, ok := series[name]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", name, got, ok, want)
		}
	}
	for name := range series {
		if strings.Contains(name, "made-up") {
			t.Errorf("a client's made-up route became a series: %s", name)
		}
		if strings.HasPrefix(name, "outgate_requests_total") && !strings.Contains(name, "error_code=,") && !strings.Contains(name, "error_code=unknown_upstream") {
			t.Errorf("unexpected request series %s", name)
		}
	}
}
