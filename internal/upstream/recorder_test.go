package upstream

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestRecorderIsBounded: a partner's answer cannot make the recorder grow
// past its bound; what fits is kept, and the first status wins as in
// net/http.
func TestRecorderIsBounded(t *testing.T) {
	r := &Recorder{Max: 8}
	r.Header().Set("X", "1")
	if n, err := r.Write([]byte("12345")); n != 5 || err != nil || r.Cut() {
		t.Fatalf("write: %d %v cut %v", n, err, r.Cut())
	}
	r.WriteHeader(http.StatusTeapot) // after the body began: ignored
	if _, err := r.Write([]byte("6789")); !errors.Is(err, io.ErrShortBuffer) {
		t.Errorf("a write past the bound: %v", err)
	}
	if !r.Cut() {
		t.Error("a refused write is not reported by Cut: the body would be read as the whole answer")
	}
	if r.Status != http.StatusOK || r.Body() != "12345" || r.Header().Get("X") != "1" {
		t.Errorf("status %d body %q", r.Status, r.Body())
	}
	d := &Recorder{}
	if _, err := d.Write([]byte(strings.Repeat("x", 4<<10+1))); err == nil {
		t.Error("the default bound (4 KiB) did not hold")
	}
}
