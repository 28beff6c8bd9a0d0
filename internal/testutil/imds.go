package testutil

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// MetadataMAC is the primary MAC address amazon-ec2-metadata-mock serves;
// its per-MAC paths (network/interfaces/macs/MAC/...) are fixed to it.
const MetadataMAC = "0e:49:61:0f:c3:11"

// MetadataMock is AWS's amazon-ec2-metadata-mock running for a test on a
// loopback port in IMDSv2-only mode (a request without a token gets 401).
type MetadataMock struct {
	// Endpoint is the base URL (http://127.0.0.1:PORT), the value of
	// AWS_EC2_METADATA_SERVICE_ENDPOINT for the SDK.
	Endpoint string
	t        testing.TB
	port     string
	config   string
	cmd      *exec.Cmd
}

var aemm struct {
	once sync.Once
	path string
	err  error
}

// aemmBinary builds the mock once per test process from the version go.mod
// pins as a tool (`tool github.com/aws/amazon-ec2-metadata-mock/...`), so
// the test needs only the Go toolchain and the module cache.
func aemmBinary(t testing.TB) string {
	t.Helper()
	aemm.once.Do(func() {
		dir, err := os.MkdirTemp("", "outgate-aemm-")
		if err != nil {
			aemm.err = err
			return
		}
		aemm.path = filepath.Join(dir, "ec2-metadata-mock")
		out, err := exec.Command("go", "build", "-o", aemm.path, "github.com/aws/amazon-ec2-metadata-mock/cmd/ec2-metadata-mock").CombinedOutput()
		if err != nil {
			aemm.err = fmt.Errorf("building amazon-ec2-metadata-mock: %v\n%s", err, out)
		}
	})
	if aemm.err != nil {
		t.Fatal(aemm.err)
	}
	return aemm.path
}

// StartMetadataMock runs the mock with the given metadata values (keys as in
// the mock's aemm-metadata-default-values.json: "instance-id",
// "placement-availability-zone", "placement-region", "mac-subnet-id"...) and
// stops it when the test ends.
func StartMetadataMock(t testing.TB, values map[string]string) *MetadataMock {
	t.Helper()
	Tool(t, "go")
	bin := aemmBinary(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "aemm-config.json")
	data, _ := json.Marshal(map[string]any{"metadata": map[string]any{"values": values}})
	if err := os.WriteFile(cfg, data, 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(l.Addr().String())
	l.Close()
	m := &MetadataMock{Endpoint: "http://127.0.0.1:" + port, t: t, port: port, config: cfg}
	m.start(bin, dir)
	t.Cleanup(m.Stop)
	return m
}

func (m *MetadataMock) start(bin, home string) {
	m.t.Helper()
	cmd := exec.Command(bin, "-n", "127.0.0.1", "-p", m.port, "--imdsv2", "-c", m.config)
	cmd.Env = append(os.Environ(), "HOME="+home)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		m.t.Fatal(err)
	}
	m.cmd = cmd
	// Ready once it answers anything (401 to a token-less GET).
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(m.Endpoint + "/latest/meta-data/")
		if err == nil {
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("amazon-ec2-metadata-mock did not start: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop ends the mock (idempotent).
func (m *MetadataMock) Stop() {
	if m.cmd == nil {
		return
	}
	syscall.Kill(-m.cmd.Process.Pid, syscall.SIGKILL)
	m.cmd.Wait()
	m.cmd = nil
}

// Restart stops the mock and starts a new one on the same port with the
// same values: every token it had issued is forgotten, as a token is once
// it expires (the next request with it gets 401).
func (m *MetadataMock) Restart() {
	m.t.Helper()
	m.Stop()
	m.start(aemmBinary(m.t), filepath.Dir(m.config))
}
