package e2e

import (
	"net"
	"os/exec"
	"testing"
	"time"

	"github.com/outgate/outgate/internal/testutil"
)

func netListen() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }

// serve starts the built outgate on a config file and collects its log.
func serve(t *testing.T, path string) (*exec.Cmd, *testutil.SafeBuffer) {
	t.Helper()
	logs := &testutil.SafeBuffer{}
	cmd := exec.Command(binary(t), "serve", "--config", path)
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	return cmd, logs
}

// waitExit0 fails the test unless cmd exits with status 0 within d.
func waitExit0(t *testing.T, cmd *exec.Cmd, d time.Duration, logs *testutil.SafeBuffer) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, logs.String())
		}
	case <-time.After(d):
		t.Fatalf("no exit within %v of SIGTERM", d)
	}
}
