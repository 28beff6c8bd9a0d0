package metrics

import (
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

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
