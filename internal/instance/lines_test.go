package instance

import (
	"strings"
	"testing"

	"github.com/outgate/outgate/internal/testutil"
)

// TestLinesNeverInterleave: a writer that flushes mid-line (the gateway's
// 64 KiB buffer) and another writing whole lines between its halves still
// produce whole lines, so CloudWatch parses every one of them.
func TestLinesNeverInterleave(t *testing.T) {
	out := &testutil.SafeBuffer{}
	l := &lines{out: out}
	gw, agent := l.writer(), l.writer()
	gw.Write([]byte(`{"msg":"request","a":1}` + "\n" + `{"msg":"req`))
	agent.Write([]byte(`{"msg":"egress"}` + "\n"))
	gw.Write([]byte(`uest","a":2}` + "\n"))
	got := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	want := []string{`{"msg":"request","a":1}`, `{"msg":"egress"}`, `{"msg":"request","a":2}`}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("lines %q, want %q", got, want)
	}
	// A line longer than the bound goes out rather than growing memory.
	big := strings.Repeat("x", maxPartial)
	gw.Write([]byte(big))
	if !strings.Contains(out.String(), big) {
		t.Fatal("a partial line past the bound was held back")
	}
}
