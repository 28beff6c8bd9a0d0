package apierr

import (
	"encoding/json"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"
)

// TestWrite: the one shape clients parse: the code in a header and the
// body, the request id to quote to support, never cached, and Retry-After
// in whole seconds rounded up (a client told 0 would retry at once).
func TestWrite(t *testing.T) {
	for _, tt := range []struct {
		retry time.Duration
		want  string
	}{{0, ""}, {time.Second, "1"}, {1500 * time.Millisecond, "2"}, {time.Millisecond, "1"}, {61 * time.Second, "61"}} {
		w := httptest.NewRecorder()
		e := &E{Status: 429, Code: CodeRateLimited, Message: "slow down", RetryAfter: tt.retry}
		n := Write(w, "req-1", e)
		if w.Code != 429 || w.Header().Get("Outgate-Error") != CodeRateLimited || w.Header().Get("Cache-Control") != "no-store" ||
			w.Header().Get("Content-Type") != "application/json" {
			t.Errorf("status/headers: %d %v", w.Code, w.Header())
		}
		if got := w.Header().Get("Retry-After"); got != tt.want {
			t.Errorf("RetryAfter %v: Retry-After %q, want %q", tt.retry, got, tt.want)
		}
		if n != int64(w.Body.Len()) || w.Header().Get("Content-Length") != strconv.Itoa(w.Body.Len()) {
			t.Errorf("returned %d, Content-Length %s, body %d bytes", n, w.Header().Get("Content-Length"), w.Body.Len())
		}
		var b body
		if err := json.Unmarshal(w.Body.Bytes(), &b); err != nil || b.Error.Code != CodeRateLimited || b.Error.Message != "slow down" || b.Error.RequestID != "req-1" {
			t.Errorf("body %q: %+v %v", w.Body.String(), b, err)
		}
	}
	// Without a request id (errors before one exists) the field is left out.
	w := httptest.NewRecorder()
	Write(w, "", New(400, CodeBadRequest, "bad"))
	if w.Body.String() != `{"error":{"code":"bad_request","message":"bad"}}`+"\n" {
		t.Errorf("body %q", w.Body.String())
	}
	if err := New(400, CodeBadRequest, "bad"); err.Error() != "bad_request: bad" {
		t.Errorf("Error() = %q", err.Error())
	}
}
