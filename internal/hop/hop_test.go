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
	StripRequest(h, nil)
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

// TestStripRequestClientHeaders: what a client writes about itself or the
// hops before outgate does not reach the partner, unless the upstream keeps
// it; outgate's own headers go whatever keep says.
func TestStripRequestClientHeaders(t *testing.T) {
	client := []string{"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Forwarded-Port",
		"X-Forwarded-Prefix", "X-Forwarded-Client-Cert", "Forwarded", "Via", "X-Real-Ip", "True-Client-Ip",
		"X-Client-Ip", "Cf-Connecting-Ip", "X-Api-Key"}
	fill := func() http.Header {
		h := http.Header{}
		for _, k := range client {
			h.Set(k, "203.0.113.9")
		}
		h["x-forwarded-for"] = []string{"lower-case, as a hand-built map may hold it"}
		h["outgate-error"] = []string{"forged"}
		h.Set("Outgate-Upstream", "x")
		h.Set("Authorization", "Bearer partner-token")
		return h
	}
	h := fill()
	StripRequest(h, nil)
	for k := range h {
		if k != "Authorization" {
			t.Errorf("%s survived", k)
		}
	}
	h = fill()
	StripRequest(h, []string{"X-Forwarded-For", "X-Api-Key", "Outgate-Upstream"})
	for _, k := range []string{"X-Forwarded-For", "x-forwarded-for", "X-Api-Key", "Authorization"} {
		if len(h[k]) == 0 {
			t.Errorf("%s was removed though kept", k)
		}
	}
	for _, k := range []string{"X-Forwarded-Host", "Forwarded", "Via", "Outgate-Upstream", "outgate-error"} {
		if len(h[k]) != 0 {
			t.Errorf("%s survived", k)
		}
	}
}

// TestStripResponse: a partner cannot send headers that pass for outgate's.
func TestStripResponse(t *testing.T) {
	h := http.Header{}
	h.Set("Outgate-Error", "unauthorized")
	h.Set("Outgate-Request-Id", "someone-elses")
	h["outgate-error"] = []string{"lower"}
	h["Outgate_error"] = []string{"underscored"}
	h.Set("Connection", "X-Hop")
	h.Set("X-Hop", "1")
	h.Set("Content-Type", "application/json")
	h.Set("X-Forwarded-For", "kept: the client may read what the partner says")
	StripResponse(h)
	for _, k := range []string{"Outgate-Error", "Outgate-Request-Id", "outgate-error", "Outgate_error", "Connection", "X-Hop"} {
		if len(h[k]) != 0 {
			t.Errorf("%s survived", k)
		}
	}
	for _, k := range []string{"Content-Type", "X-Forwarded-For"} {
		if h.Get(k) == "" {
			t.Errorf("%s was removed", k)
		}
	}
}

func TestClientHeader(t *testing.T) {
	for _, k := range []string{"x-forwarded-for", "X-FORWARDED-HOST", "x-forwarded-anything", "forwarded", "VIA", "x-real-ip", "true-client-ip", "x-api-key",
		// Path overrides that IIS, Symfony and Zend read instead of the path.
		"X-Original-URL", "x-rewrite-url",
		// CGI-style partners read '_' and '-' as one.
		"X_Forwarded_For", "x-forwarded_host", "X_REAL_IP", "true_client_ip", "X_Api-Key"} {
		if !ClientHeader(k) {
			t.Errorf("ClientHeader(%q) = false", k)
		}
	}
	for _, k := range []string{"X-Forwarded-", "X-Forwarded", "X_Forwarded_", "Authorization", "Outgate-Key", "Connection", "X-Request-Id", "X_Request_Id"} {
		if ClientHeader(k) {
			t.Errorf("ClientHeader(%q) = true", k)
		}
	}
}
