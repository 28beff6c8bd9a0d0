package instance

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/outgate/outgate/internal/config"
	"github.com/outgate/outgate/internal/keys"
	"github.com/outgate/outgate/internal/testutil"
)

// TestConfigCannotMoveTheListeners: the config parameter is the relay's,
// edited by people and tools that never think about an instance. One that
// names other listeners (the admin listener on every interface, the relay
// on another port) or certificate files (the process's environment, a
// key file) is read with the settings' listeners and no certificate files,
// so none of those files is opened and nothing listens where the config
// says.
func TestConfigCannotMoveTheListeners(t *testing.T) {
	dir := t.TempDir()
	// A file that must not be read: if it were, a parse error could quote it.
	secret := filepath.Join(dir, "ca.key")
	if err := os.WriteFile(secret, []byte("-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n"), 0o000); err != nil {
		t.Fatal(err)
	}
	cert, _ := testutil.SelfSigned(t, "x")
	_, hash := keys.New()
	data := fmt.Sprintf(`listen: 0.0.0.0:8443
proxy_listen: 0.0.0.0:3128
admin_listen: 0.0.0.0:9090
tls: {cert_file: /proc/self/environ, key_file: %s}
proxy_tls: {cert_file: %s, key_file: %s}
clients: [{name: c, key_sha256: %s, hosts: [api.example]}]
`, secret, cert, secret, hash)
	a := &agent{s: Settings{Listen: ":443", AdminListen: "127.0.0.1:9901"}, path: filepath.Join(dir, "outgate.yaml")}
	if err := a.check([]byte(data)); err != nil {
		t.Fatalf("the agent refused a config it should read with its own listeners: %v", err)
	}
	cfg, err := config.ParseWith([]byte(data), a.path, a.override)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != ":443" || cfg.ProxyListen != ":443" || cfg.AdminListen != "127.0.0.1:9901" {
		t.Errorf("listeners %q %q %q, want the settings'", cfg.Listen, cfg.ProxyListen, cfg.AdminListen)
	}
	if cfg.TLS.Enabled() || cfg.ProxyTLS.Enabled() {
		t.Errorf("certificate files kept from the config: tls %+v proxy_tls %+v", cfg.TLS, cfg.ProxyTLS)
	}
}
