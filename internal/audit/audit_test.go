package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// viaSlog is how audit lines were written before the hand encoder; the
// lines must not change for anyone parsing them.
func viaSlog(now time.Time, r *Record) string {
	var buf bytes.Buffer
	h := slog.NewJSONHandler(&buf, nil)
	attrs := []slog.Attr{slog.String("request_id", r.RequestID)}
	if r.TraceID != "" {
		attrs = append(attrs, slog.String("trace_id", r.TraceID))
	}
	attrs = append(attrs, slog.String("mode", r.Mode), slog.String("client", r.Client))
	if r.Route != "" {
		attrs = append(attrs, slog.String("route", r.Route))
	}
	if r.Target != "" {
		attrs = append(attrs, slog.String("target", r.Target))
	}
	attrs = append(attrs, slog.String("method", r.Method), slog.String("path", r.Path), slog.Int("status", r.Status),
		slog.Int64("bytes_in", r.BytesIn), slog.Int64("bytes_out", r.BytesOut),
		slog.Float64("duration_ms", Millis(now.Sub(r.Start))), slog.Float64("upstream_ms", Millis(r.Upstream)),
		slog.String("decision", r.Decision))
	if r.Reason != "" {
		attrs = append(attrs, slog.String("reason", r.Reason))
	}
	if r.Detail != "" {
		attrs = append(attrs, slog.String("detail", r.Detail))
	}
	if r.Idempotency != "" {
		attrs = append(attrs, slog.String("idempotency", r.Idempotency))
	}
	rec := slog.NewRecord(now, slog.LevelInfo, "request", 0)
	rec.AddAttrs(attrs...)
	h.Handle(context.Background(), rec)
	return buf.String()
}

func TestLineMatchesSlog(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 123456789, time.UTC)
	for _, r := range []Record{
		{Start: now.Add(-1500 * time.Microsecond), RequestID: "abc", Mode: "relay", Client: "billing", Route: "pay", Method: "POST",
			Path: "/v1/charges", Status: 200, BytesIn: 12, BytesOut: 3456, Upstream: 1234 * time.Microsecond, Decision: Allow},
		{Start: now, RequestID: "ghi", TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", Mode: "relay", Decision: Allow},
		{Start: now.Add(-time.Millisecond), RequestID: "def", Mode: "relay", Client: "billing", Route: "pay", Method: "POST",
			Path: "/v1/charges", Status: 409, Decision: Deny, Reason: "outcome_unknown", Idempotency: "outcome_unknown"},
		{Start: now, Mode: "proxy", Target: "api.example:443", Method: "GET", Path: "/", Status: 403, Decision: Deny, Reason: "destination_blocked",
			Detail: "169.254.169.254 is link-local"},
		{Start: now.Add(-3 * time.Hour), Mode: "connect", Client: "x", Target: "h:1", Decision: Error, Reason: "idle_timeout"},
		// What a hostile client can put in a path or a host: quotes, backslashes,
		// newlines (a forged second line), control bytes, invalid UTF-8,
		// line separators, HTML, non-ASCII.
		{Start: now, Mode: "relay", Path: "/a\"b\\c\n{\"forged\":1}\r\t\x00\x1f\x7f", Target: "\xff\xfe<script>&</script>", Method: "GET",
			Detail: "caf\u00e9 \u2028 \u2029 \U0001F600 \xe2\x80"},
	} {
		got := string(AppendLine(nil, now, &r))
		want := viaSlog(now, &r)
		if got != want {
			t.Errorf("line differs from slog's\n got: %s\nwant: %s", got, want)
		}
		if strings.Count(got, "\n") != 1 {
			t.Errorf("not exactly one line: %q", got)
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(got), &m); err != nil {
			t.Errorf("not JSON: %v: %s", err, got)
		}
	}
}

func FuzzLineMatchesSlog(f *testing.F) {
	f.Add("/a\"b\n", "h:1", "detail \xff")
	f.Fuzz(func(t *testing.T, path, target, detail string) {
		now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
		r := Record{Start: now.Add(-time.Millisecond), Mode: "proxy", Path: path, Target: target, Detail: detail, Decision: Deny}
		if got, want := string(AppendLine(nil, now, &r)), viaSlog(now, &r); got != want {
			t.Fatalf("got  %s\nwant %s", got, want)
		}
	})
}

func BenchmarkLog(b *testing.B) {
	now := time.Now()
	r := Record{Start: now, RequestID: NewRequestID(), Mode: "relay", Client: "billing", Route: "pay", Method: "POST",
		Path: "/v1/charges", Status: 200, BytesIn: 12, BytesOut: 3456, Upstream: time.Millisecond, Decision: Allow}
	b.Run("hand", func(b *testing.B) {
		l := Logger{W: discard{}}
		b.ReportAllocs()
		for b.Loop() {
			l.Log(&r)
		}
	})
	b.Run("slog", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			viaSlog(now, &r)
		}
	})
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// TestTraceID: only a well-formed traceparent's trace id is taken (W3C
// Trace Context, section 3.2); anything else a client sends gives none.
func TestTraceID(t *testing.T) {
	for in, want := range map[string]string{
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01":      "4bf92f3577b34da6a3ce929d0e0e4736",
		"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what": "4bf92f3577b34da6a3ce929d0e0e4736", // a later version may add fields
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x":    "",                                 // version 00 has exactly four
		"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01":      "",
		"00-00000000000000000000000000000000-00f067aa0ba902b7-01":      "",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01":      "",
		"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01":      "",
		"00-4bf92f3577b34da6a3ce929d0e0e473\"-00f067aa0ba902b7-01":     "",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7":         "",
		"": "", "garbage": "",
	} {
		if got := TraceID(in); got != want {
			t.Errorf("TraceID(%q) = %q, want %q", in, got, want)
		}
	}
}
