package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestInstanceRunRefusesBadSettings: the unit's command fails at once, with
// every problem of its settings file named, before it calls AWS or IMDS.
func TestInstanceRunRefusesBadSettings(t *testing.T) {
	aws := newAWSSandbox(t)
	dir := t.TempDir()
	missing := filepath.Join(dir, "none.json")
	r := runCLI(t, false, "", "instance", "run", "--settings", missing)
	if r.code != 1 || !strings.Contains(r.err, "reading instance settings") {
		t.Errorf("missing file: exit %d, %q", r.code, r.err)
	}
	bad := filepath.Join(dir, "instance.json")
	os.WriteFile(bad, []byte(`{"deployment":"pay","listen":":443","surprise":1}`), 0o600)
	r = runCLI(t, false, "", "instance", "run", "--settings", bad)
	if r.code != 1 || !strings.Contains(r.err, `unknown field "surprise"`) {
		t.Errorf("unknown field: exit %d, %q", r.code, r.err)
	}
	os.WriteFile(bad, []byte(`{"deployment":"pay","listen":":443"}`), 0o600)
	r = runCLI(t, false, "", "instance", "run", "--settings", bad)
	for _, want := range []string{"region is required", "config_parameter is required", "state_dir is required"} {
		if r.code != 1 || !strings.Contains(r.err, want) {
			t.Errorf("incomplete settings: exit %d, %q; want %q", r.code, r.err, want)
		}
	}
	if calls := aws.called(); len(calls) > 0 {
		t.Errorf("bad settings reached AWS: %v", calls)
	}
	r = runCLI(t, false, "", "--help")
	if strings.Contains(r.out, "instance") {
		t.Errorf("the unit's command is in the main help:\n%s", r.out)
	}
}
