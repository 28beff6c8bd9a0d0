package hop

import (
	"net/http"
	"net/textproto"
	"testing"
)

func TestStripRequest(t *testing.T) {
	h := http.Header{}
	for k, v := range map[string]string{
		"Connection":          "keep-alive, X-Secret-Hop, close",
		"X-Secret-Hop":        "1",
		"Keep-Alive":          "timeout=5",
		"Proxy-Authorization": "Basic abc",
		"Proxy-Connection":    "keep-alive",
		"Te":                  "trailers",
		"Trailer":             "X-T",
		"Transfer-Encoding":   "chunked",
		"Upgrade":             "websocket",
		"Outgate-Key":         "og_secret",
		"Outgate-Request-Id":  "spoofed",
		"Authorization":       "Bearer partner-token",
		"Idempotency-Key":     "abc-123",
		"Content-Type":        "application/json",
	} {
		h.Set(k, v)
	}
	StripRequest(h)
	for _, gone := range []string{"Connection", "X-Secret-Hop", "Keep-Alive", "Proxy-Authorization", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade", "Outgate-Key", "Outgate-Request-Id"} {
		if v := h.Get(gone); v != "" {
			t.Errorf("%s = %q survived", gone, v)
		}
	}
	for _, kept := range []string{"Authorization", "Idempotency-Key", "Content-Type"} {
		if h.Get(kept) == "" {
			t.Errorf("end-to-end header %s was removed", kept)
		}
	}
}

// TestNamesAreCanonical: Strip deletes these names from the map directly,
// which finds them only in net/http's canonical spelling.
func TestNamesAreCanonical(t *testing.T) {
	for _, name := range append(byHop, KeyHeader, RequestIDHeader) {
		if c := textproto.CanonicalMIMEHeaderKey(name); c != name {
			t.Errorf("%q is not canonical (%q)", name, c)
		}
	}
}
