// Package audit writes one JSON line per request or tunnel, allowed or
// denied. It records who, where, what and how it ended; never keys, query
// strings or bodies.
package audit

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"log/slog"
	"math/rand/v2"
	"time"
)

// Record is filled in while a request is handled and logged once at the end.
type Record struct {
	Start     time.Time
	RequestID string
	Mode      string // relay, proxy, connect, endpoint
	Client    string // empty until authenticated
	Route     string // relay upstream name
	Target    string // host:port for proxy and connect
	Method    string
	Path      string // without the query string
	Status    int
	BytesIn   int64         // from the client to the upstream
	BytesOut  int64         // from the upstream to the client
	Upstream  time.Duration // time spent waiting on the upstream (headers and body)
	Decision  string
	Reason    string // the error code, or why a tunnel ended
	Detail    string // internal detail for operators (never shown to clients)
}

// Decisions.
const (
	Allow = "allow"
	Deny  = "deny"
	Error = "error"
)

// NewRequestID returns a random 16-byte id in hex. It uses the runtime's
// ChaCha8 generator rather than crypto/rand: ids must be unique and not
// guessable from one another, not secret, and a getrandom call per request
// showed in profiles.
func NewRequestID() string {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], rand.Uint64())
	binary.LittleEndian.PutUint64(b[8:], rand.Uint64())
	return hex.EncodeToString(b[:])
}

// Millis is d in milliseconds with microsecond precision.
func Millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// Logger writes records through slog.
type Logger struct{ L *slog.Logger }

// Log writes r as one line with the message "request".
func (l Logger) Log(r *Record) {
	if l.L == nil {
		return
	}
	attrs := []slog.Attr{
		slog.String("request_id", r.RequestID),
		slog.String("mode", r.Mode),
		slog.String("client", r.Client),
	}
	if r.Route != "" {
		attrs = append(attrs, slog.String("route", r.Route))
	}
	if r.Target != "" {
		attrs = append(attrs, slog.String("target", r.Target))
	}
	attrs = append(attrs,
		slog.String("method", r.Method),
		slog.String("path", r.Path),
		slog.Int("status", r.Status),
		slog.Int64("bytes_in", r.BytesIn),
		slog.Int64("bytes_out", r.BytesOut),
		slog.Float64("duration_ms", Millis(time.Since(r.Start))),
		slog.Float64("upstream_ms", Millis(r.Upstream)),
		slog.String("decision", r.Decision),
	)
	if r.Reason != "" {
		attrs = append(attrs, slog.String("reason", r.Reason))
	}
	if r.Detail != "" {
		attrs = append(attrs, slog.String("detail", r.Detail))
	}
	l.L.LogAttrs(context.Background(), slog.LevelInfo, "request", attrs...)
}
