package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/outgate/outgate/internal/keys"
)

// TestHealthCommand: `outgate health` (the image's HEALTHCHECK) finds the
// admin listener from the config a running gateway serves and exits 0; it
// exits 1 with a reason when nothing answers or the config has no admin
// listener. (--ready during a drain: TestContainerImage.)
func TestHealthCommand(t *testing.T) {
	bin := binary(t)
	_, hash := keys.New()
	adminPort := freePortNum(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "gw.yaml")
	os.WriteFile(path, []byte(fmt.Sprintf(`listen: 127.0.0.1:%s
admin_listen: 0.0.0.0:%s
clients: [{name: a, key_sha256: %s, hosts: [api.example]}]
`, freePortNum(t), adminPort, hash)), 0o600)
	exitEnv := func(env []string, args ...string) (int, string) {
		cmd := exec.Command(bin, append([]string{"health"}, args...)...)
		cmd.Env = append(os.Environ(), env...)
		out, _ := cmd.CombinedOutput()
		return cmd.ProcessState.ExitCode(), string(out)
	}
	exit := func(args ...string) (int, string) { return exitEnv([]string{"OUTGATE_CONFIG_FILE="}, args...) }

	if code, out := exit("--config", path); code != 1 || !strings.Contains(out, "127.0.0.1:"+adminPort+"/healthz") {
		t.Errorf("nothing running: exit %d, %q; want 1 naming the address asked", code, out)
	}

	cmd, logs := serve(t, path)
	waitListening(t, "127.0.0.1:"+adminPort)
	if code, out := exit("--config", path); code != 0 {
		t.Errorf("running gateway: exit %d, %q; want 0\n%s", code, out, logs.String())
	}
	if code, out := exit("--ready"); code != 2 || !strings.Contains(out, "--config") {
		t.Errorf("no config given: exit %d, %q; want 2 asking for --config", code, out)
	}
	if code, out := exitEnv([]string{"OUTGATE_CONFIG_FILE=" + path}, "--ready"); code != 0 {
		t.Errorf("--ready with OUTGATE_CONFIG_FILE: exit %d, %q; want 0", code, out)
	}

	noAdmin := filepath.Join(dir, "noadmin.yaml")
	os.WriteFile(noAdmin, []byte("listen: 127.0.0.1:8080\n"), 0o600)
	if code, out := exit("--config", noAdmin); code != 1 || !strings.Contains(out, "admin_listen is off") {
		t.Errorf("no admin_listen: exit %d, %q", code, out)
	}

	cmd.Process.Signal(syscall.SIGTERM)
	waitExit0(t, cmd, 30*time.Second, logs)
	if code, _ := exit("--addr", "127.0.0.1:"+adminPort); code != 1 {
		t.Errorf("after exit: exit %d, want 1", code)
	}
}
