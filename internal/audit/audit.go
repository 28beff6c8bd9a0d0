// Package audit writes one JSON line per request or tunnel, allowed or
// denied. It records who, where, what and how it ended; never keys, query
// strings or bodies.
package audit

import (
	"encoding/binary"
	"encoding/hex"
	"io"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// Record is filled in while a request is handled and logged once at the end.
type Record struct {
	Start     time.Time
	RequestID string
	// TraceID is the trace id of the request's W3C traceparent header, if
	// it had a valid one (TraceID), so a line can be found from a trace.
	TraceID  string
	Mode     string // relay, proxy, connect, endpoint
	Client   string // empty until authenticated
	Route    string // relay upstream name
	Target   string // host:port for proxy and connect
	Method   string
	Path     string // without the query string
	Status   int
	BytesIn  int64         // from the client to the upstream
	BytesOut int64         // from the upstream to the client
	Upstream time.Duration // time spent waiting on the upstream (headers and body)
	Decision string
	Reason   string // the error code, or why a tunnel ended
	Detail   string // internal detail for operators (never shown to clients)
	// Idempotency is what an idempotency key did (idempotency.Outcome*):
	// a fixed word, never the key or the stored answer.
	Idempotency string
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

// Logger writes records as JSON lines, in the shape of log/slog's JSON
// handler (time, level, msg, then the fields), so audit and process log
// lines read alike. It encodes by hand: through slog the audit line was
// 6% of a relayed request's CPU (attribute boxing, reflection for floats).
type Logger struct {
	W io.Writer // nil: no audit lines
}

var lineBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// Log writes r as one line with the message "request", in a single Write.
func (l Logger) Log(r *Record) {
	if l.W == nil {
		return
	}
	bp := lineBufs.Get().(*[]byte)
	b := AppendLine((*bp)[:0], time.Now(), r)
	l.W.Write(b)
	if cap(b) <= 16<<10 {
		*bp = b
		lineBufs.Put(bp)
	}
}

// AppendLine appends r's JSON line, newline included, stamped now.
func AppendLine(b []byte, now time.Time, r *Record) []byte {
	b = append(b, `{"time":"`...)
	b = now.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","level":"INFO","msg":"request"`...)
	b = appendField(b, "request_id", r.RequestID)
	if r.TraceID != "" {
		b = appendField(b, "trace_id", r.TraceID)
	}
	b = appendField(b, "mode", r.Mode)
	b = appendField(b, "client", r.Client)
	if r.Route != "" {
		b = appendField(b, "route", r.Route)
	}
	if r.Target != "" {
		b = appendField(b, "target", r.Target)
	}
	b = appendField(b, "method", r.Method)
	b = appendField(b, "path", r.Path)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(r.Status), 10)
	b = append(b, `,"bytes_in":`...)
	b = strconv.AppendInt(b, r.BytesIn, 10)
	b = append(b, `,"bytes_out":`...)
	b = strconv.AppendInt(b, r.BytesOut, 10)
	b = append(b, `,"duration_ms":`...)
	b = strconv.AppendFloat(b, Millis(now.Sub(r.Start)), 'f', -1, 64)
	b = append(b, `,"upstream_ms":`...)
	b = strconv.AppendFloat(b, Millis(r.Upstream), 'f', -1, 64)
	b = appendField(b, "decision", r.Decision)
	if r.Reason != "" {
		b = appendField(b, "reason", r.Reason)
	}
	if r.Detail != "" {
		b = appendField(b, "detail", r.Detail)
	}
	if r.Idempotency != "" {
		b = appendField(b, "idempotency", r.Idempotency)
	}
	return append(b, "}\n"...)
}

func appendField(b []byte, key, val string) []byte {
	b = append(b, ',', '"')
	b = append(b, key...)
	b = append(b, '"', ':')
	return appendString(b, val)
}

const hexDigits = "0123456789abcdef"

// appendString quotes s as JSON the way slog does (encoding/json's rules
// without HTML escaping): invalid UTF-8 becomes U+FFFD, control characters
// and U+2028/U+2029 are escaped, so a line can never be split or forged by
// a client-chosen path or host.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// TraceID returns the trace id of a W3C Trace Context traceparent header
// ("00-<32 hex>-<16 hex>-<2 hex>"), or "" if the header is not a valid one:
// only 32 lower-case hex digits, not all zero, ever reach the audit line,
// whatever a client sends. Versions above 00 may append fields (the spec's
// forward compatibility); version ff is invalid.
func TraceID(traceparent string) string {
	h := traceparent
	if len(h) < 55 || h[2] != '-' || h[35] != '-' || h[52] != '-' || !lowerHex(h[:2]) || h[:2] == "ff" {
		return ""
	}
	if (h[:2] == "00" && len(h) != 55) || (len(h) > 55 && h[55] != '-') {
		return ""
	}
	id, parent, flags := h[3:35], h[36:52], h[53:55]
	if !lowerHex(id) || !lowerHex(parent) || !lowerHex(flags) || id == "00000000000000000000000000000000" || parent == "0000000000000000" {
		return ""
	}
	return id
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
