package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/outgate/outgate/internal/keys"
)

// TestConfigCheckWarnsAndRefuses: `config check` refuses allow_cidrs that
// add up to all of IPv4, and passes a metadata upstream with a warning on
// stderr that names its line.
func TestConfigCheckWarnsAndRefuses(t *testing.T) {
	dir := t.TempDir()
	client := "clients: [{name: a, key_sha256: " + keys.Hash("og_x") + ", upstreams: [meta]}]\n"
	halves := filepath.Join(dir, "halves.yaml")
	os.WriteFile(halves, []byte("upstreams: {meta: {url: \"https://api.partner.example\"}}\n"+client+"network: {allow_cidrs: [0.0.0.0/1, 128.0.0.0/1]}\n"), 0o600)
	cmd := exec.Command(binary(t), "config", "check", "--config", halves)
	out, _ := cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() != 1 || !strings.Contains(string(out), "halves.yaml:3:24: network.allow_cidrs: together these entries let through") {
		t.Errorf("split 0.0.0.0/0: exit %d, %q", cmd.ProcessState.ExitCode(), out)
	}

	meta := filepath.Join(dir, "meta.yaml")
	os.WriteFile(meta, []byte("upstreams: {meta: {url: \"http://169.254.169.254/latest\"}}\n"+client), 0o600)
	cmd = exec.Command(binary(t), "config", "check", "--config", meta)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("a metadata upstream is a warning, not an error: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "meta.yaml:1:25: warning: upstreams.meta.url: 169.254.169.254 is cloud metadata") ||
		!strings.Contains(stdout.String(), "meta.yaml: ok (1 client, 1 upstream)") {
		t.Errorf("stdout %q, stderr %q", stdout.String(), stderr.String())
	}
}
