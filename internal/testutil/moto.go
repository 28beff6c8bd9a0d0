package testutil

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"
)

// moto is the one moto_server of this test binary (one per package): it
// takes a few seconds to start, so tests share it and reset it instead.
var moto struct {
	sync.Mutex
	endpoint string
	err      error
}

// Moto returns the endpoint of this package's moto_server (the AWS
// emulator), started by the first call and emptied (moto's reset API) by
// every call, so each test begins with no resources. It also points the AWS
// SDK at it through the environment (AWS_ENDPOINT_URL, dummy credentials,
// us-east-1). Tests that call it cannot run in parallel (t.Setenv refuses),
// so a reset never empties another test's resources.
func Moto(t *testing.T) string {
	t.Helper()
	bin := Tool(t, "moto_server")
	moto.Lock()
	defer moto.Unlock()
	if moto.endpoint == "" && moto.err == nil {
		moto.endpoint, moto.err = startMoto(bin)
	}
	if moto.err != nil {
		t.Fatal(moto.err)
	}
	resp, err := http.Post(moto.endpoint+"/moto-api/reset", "application/json", nil)
	if err != nil {
		t.Fatalf("resetting moto_server: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("resetting moto_server: %s", resp.Status)
	}
	t.Setenv("AWS_ENDPOINT_URL", moto.endpoint)
	t.Setenv("AWS_ACCESS_KEY_ID", "testing")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "testing")
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_CONFIG_FILE", "/dev/null")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
	return moto.endpoint
}

// startMoto starts moto_server for the rest of the process. It dies with
// the test binary: the kernel sends it SIGKILL when the thread that started
// it ends (Pdeathsig), and that thread is kept locked and parked for the
// life of the process, so "the thread ends" means "the process ends".
func startMoto(bin string) (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread lives until the process exits
		cmd := exec.Command(bin, "-H", "127.0.0.1", "-p", fmt.Sprint(port))
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		// AWS managed policies (AWSLambdaVPCAccessExecutionRole...) exist only when asked for.
		cmd.Env = append(os.Environ(), "MOTO_IAM_LOAD_MANAGED_POLICIES=true")
		started <- cmd.Start()
		if cmd.Process != nil {
			cmd.Wait()
		}
		select {} // keep this thread, and so moto_server, alive
	}()
	if err := <-started; err != nil {
		return "", fmt.Errorf("starting moto_server: %w", err)
	}
	endpoint := fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(endpoint + "/moto-api/")
		if err == nil {
			resp.Body.Close()
			return endpoint, nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("moto_server did not start: %v", err)
		}
		time.Sleep(100 * time.Millisecond) // polling its port: moto has no readiness signal
	}
}
