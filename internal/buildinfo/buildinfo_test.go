package buildinfo

import (
	"runtime"
	"testing"
)

// TestStampedOverBuildInfo: what make release stamps wins; without it the
// version is "dev" (a test binary has no module version) and the Go
// version is the runtime's.
func TestStampedOverBuildInfo(t *testing.T) {
	if i := Get(); i.Version != "dev" || i.GoVersion != runtime.Version() || i.BuildDate != "" {
		t.Errorf("unstamped: %+v", i)
	}
	version, commit, buildDate = "v1.2.3", "abc123", "2026-01-02T03:04:05Z"
	defer func() { version, commit, buildDate = "", "", "" }()
	i := Get()
	if i.Version != "v1.2.3" || i.Commit != "abc123" || i.BuildDate != "2026-01-02T03:04:05Z" {
		t.Errorf("stamped: %+v", i)
	}
	a := i.Attrs()
	if len(a) != 8 || a[0] != "version" || a[1] != "v1.2.3" || a[6] != "build_date" {
		t.Errorf("log attributes %v", a)
	}
}
