package instance

import (
	"strings"
	"testing"
)

// TestSettingsKeepTheAdminListenerOnLoopback: the admin listener answers
// without a key (metrics, /readyz, POST /idempotency/clear), so settings
// that would put it on the instance's public address, every interface or
// a name are refused before anything starts, with the field named.
func TestSettingsKeepTheAdminListenerOnLoopback(t *testing.T) {
	base := Settings{Deployment: "pay", Region: "us-east-1", ConfigParameter: "/outgate/pay/config", StateDir: "/var/lib/outgate",
		Listen: ":443", LogGroup: "/outgate/pay/instance", CACertParameter: "/outgate/pay/ca/cert", CAKeyParameter: "/outgate/pay/ca/key"}
	for _, ok := range []string{"127.0.0.1:9901", "[::1]:9901", "127.0.0.53:9901"} {
		s := base
		s.AdminListen = ok
		if err := s.Validate(); err != nil {
			t.Errorf("admin_listen %q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{":9901", "0.0.0.0:9901", "[::]:9901", "203.0.113.10:9901", "localhost:9901", "[::ffff:203.0.113.10]:9901", "127.0.0.1"} {
		s := base
		s.AdminListen = bad
		err := s.Validate()
		if err == nil || !strings.Contains(err.Error(), "admin_listen") {
			t.Errorf("admin_listen %q: %v, want refused", bad, err)
		}
	}
}
