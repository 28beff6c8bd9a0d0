package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/outgate/outgate/internal/testutil"
)

// The sample config's demo key, published in the README.
const demoKey = "og_demo_key_DO_NOT_USE_outside_the_local_demo"

// TestContainerImage builds the image with `make image` and runs it the way
// the README says: read-only, no capabilities, as its non-root user, with
// examples/outgate.yaml mounted. It drives the README's tour through it
// (relay, proxy, 401, 403, metrics), runs the image's HEALTHCHECK, and stops
// it with `podman stop` (the image's STOPSIGNAL, SIGTERM) while a request is
// in flight: /readyz 503, /healthz 200, the request completes, exit 0.
//
// Networking: the container joins a network namespace the test makes (podman
// --network ns:PATH), and the partner and the clients live in the same one.
// The sample config listens on 127.0.0.1 and its partner is 127.0.0.1:9000,
// so inside that namespace it works unchanged, with its fixed ports free
// whatever else runs on the machine; nothing depends on podman's own network
// stack (netavark, iptables, slirp4netns or pasta), and nothing is reachable
// from outside. --network host would need the fixed ports free on the host;
// a bridge or slirp address would need a config other than the sample.
// Building inside the same namespace (only loopback, GOPROXY=off) shows the
// build needs no registry and no module download.
func TestContainerImage(t *testing.T) {
	testutil.Root(t) // rootful podman and network namespaces
	podman := testutil.Tool(t, "podman")
	testutil.Tool(t, "runc")
	ipTool := testutil.Tool(t, "ip")
	makeTool := testutil.Tool(t, "make")

	suffix := fmt.Sprint(os.Getpid())
	ns := "ogimg" + suffix
	run(t, ipTool, "netns", "add", ns)
	t.Cleanup(func() { exec.Command(ipTool, "netns", "del", ns).Run() })
	run(t, ipTool, "-n", ns, "link", "set", "lo", "up")

	// Build, offline.
	tag := "localhost/outgate:e2e-" + suffix
	imageDir := t.TempDir() // the build context: the binary the image holds
	build := exec.Command(ipTool, "netns", "exec", ns, makeTool, "-C", "..", "image",
		"IMAGE="+tag, "IMAGE_DIR="+imageDir, "CONTAINER="+podman)
	build.Env = append(os.Environ(), "GOPROXY=off", "GOFLAGS=-mod=readonly")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("make image: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command(podman, "rmi", "-f", tag).Run() })

	// The demo partner of the tour, on 127.0.0.1:9000 in the namespace; /slow
	// answers only when the test says so.
	entered, release := make(chan struct{}), make(chan struct{})
	var ln net.Listener
	if err := inNetns(ns, func() (err error) {
		ln, err = net.Listen("tcp", "127.0.0.1:9000")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	partner := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(entered)
			<-release
			io.WriteString(w, "done")
			return
		}
		io.WriteString(w, "partner index of "+r.URL.Path)
	})}
	go partner.Serve(ln)
	t.Cleanup(func() { partner.Close() })
	released := false
	t.Cleanup(func() {
		if !released {
			close(release)
		}
	})

	// Run it. The sandbox refuses raising resource limits and podman asks
	// for more than the hard limits by default, so pass limits within them.
	name := "outgate-e2e-" + suffix
	sample, err := filepath.Abs("../examples/outgate.yaml")
	if err != nil {
		t.Fatal(err)
	}
	logs := &testutil.SafeBuffer{}
	ctr := exec.Command(podman, "--runtime", "runc", "run", "--rm", "--name", name,
		"--network", "ns:/run/netns/"+ns,
		"--ulimit", "nofile="+limit(t, unix.RLIMIT_NOFILE, 20000), "--ulimit", "nproc="+limit(t, unix.RLIMIT_NPROC, 4096),
		"--read-only", "--read-only-tmpfs=false", "--cap-drop=all", "--security-opt=no-new-privileges",
		"--health-interval=disable", // no systemd timers here; the test runs the check itself
		"-v", sample+":/etc/outgate/outgate.yaml:ro",
		tag)
	ctr.Stdout, ctr.Stderr = logs, logs
	if err := ctr.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- ctr.Wait() }()
	t.Cleanup(func() {
		exec.Command(podman, "rm", "-f", "-t", "0", name).Run()
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			ctr.Process.Kill()
		}
	})
	pm := func(args ...string) (int, string) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, podman, args...)
		out, _ := cmd.CombinedOutput()
		return cmd.ProcessState.ExitCode(), strings.TrimSpace(string(out))
	}

	direct := clientHTTP(ns, nil)
	waitUp(t, direct, "http://127.0.0.1:9090/readyz")

	// The README's tour.
	resp, body := get(t, direct, "http://127.0.0.1:8080/demo/", demoKey)
	if resp.StatusCode != 200 || body != "partner index of /" {
		t.Errorf("relay: %d %q", resp.StatusCode, body)
	}
	viaProxy := clientHTTP(ns, &url.URL{Scheme: "http", User: url.UserPassword("demo", demoKey), Host: "127.0.0.1:3128"})
	resp, body = get(t, viaProxy, "http://127.0.0.1:9000/", "")
	if resp.StatusCode != 200 || body != "partner index of /" {
		t.Errorf("proxy: %d %q", resp.StatusCode, body)
	}
	resp, body = get(t, direct, "http://127.0.0.1:8080/demo/", "")
	if resp.StatusCode != 401 || resp.Header.Get("Outgate-Error") != "unauthorized" {
		t.Errorf("relay without a key: %d %q %q, want 401 unauthorized", resp.StatusCode, resp.Header.Get("Outgate-Error"), body)
	}
	resp, body = get(t, viaProxy, "http://127.0.0.1:9001/", "")
	if resp.StatusCode != 403 || resp.Header.Get("Outgate-Error") != "forbidden" {
		t.Errorf("proxy to a host not in hosts: %d %q %q, want 403 forbidden", resp.StatusCode, resp.Header.Get("Outgate-Error"), body)
	}
	if _, body = get(t, direct, "http://127.0.0.1:9090/metrics", ""); !strings.Contains(body, `outgate_requests_total{`) {
		t.Errorf("no outgate_requests_total in /metrics:\n%.2000s", body)
	}
	for deadline := time.Now().Add(10 * time.Second); strings.Count(logs.String(), `"msg":"request"`) < 4; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) { // audit lines are flushed every 100ms
			t.Fatalf("want 4 audit lines from the container:\n%s", logs.String())
		}
	}
	if strings.Contains(logs.String(), demoKey) {
		t.Errorf("the key is in the container's log")
	}

	// Who it runs as, and with what: the process as the host sees it.
	pidOut, err := exec.Command(podman, "inspect", "--format", "{{.State.Pid}}", name).Output() // stdout only: podman logs to stderr
	if err != nil {
		t.Fatalf("podman inspect: %v", err)
	}
	pid := strings.TrimSpace(string(pidOut))
	status, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		t.Fatalf("the container's process (pid %q): %v", pid, err)
	}
	for _, want := range []string{"Uid:\t65532\t65532\t65532\t65532\n", "Gid:\t65532\t65532\t65532\t65532\n", "CapEff:\t0000000000000000\n", "NoNewPrivs:\t1\n"} {
		if !strings.Contains(string(status), want) {
			t.Errorf("container process: no %q in\n%s", want, status)
		}
	}
	if code, out := pm("exec", name, "/bin/sh", "-c", "true"); code == 0 {
		t.Errorf("the image has a shell: %q", out)
	}
	if code, out := pm("healthcheck", "run", name); code != 0 {
		t.Errorf("HEALTHCHECK: exit %d %q", code, out)
	}

	// SIGTERM from the runtime with a request in flight.
	slow := clientHTTP(ns, nil)
	slow.Timeout = 2 * time.Minute
	type result struct {
		status int
		body   string
		err    error
	}
	inflight := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest("GET", "http://127.0.0.1:8080/demo/slow", nil)
		req.Header.Set("Outgate-Key", demoKey)
		resp, err := slow.Do(req)
		if err != nil {
			inflight <- result{err: err}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		inflight <- result{resp.StatusCode, string(b), nil}
	}()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatalf("the request did not reach the partner; log:\n%s", logs.String())
	}
	// The runtime's own stop: STOPSIGNAL (SIGTERM), then SIGKILL after -t.
	stopped := make(chan string, 1)
	go func() {
		code, out := pm("stop", "-t", "60", name)
		stopped <- fmt.Sprintf("exit %d %q", code, out)
	}()
	for i := 0; ; i++ {
		resp, err := direct.Get("http://127.0.0.1:9090/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusServiceUnavailable {
				break
			}
		}
		if i > 500 {
			t.Fatalf("/readyz never turned 503 after SIGTERM; log:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if resp, _ := get(t, direct, "http://127.0.0.1:9090/healthz", ""); resp.StatusCode != 200 {
		t.Errorf("/healthz while draining: %d, want 200", resp.StatusCode)
	}
	// The image's own binary (podman refuses exec into a container it is
	// stopping, so it runs beside the container, in its namespace).
	healthCmd := func(args ...string) (int, string) {
		cmd := exec.Command(ipTool, append([]string{"netns", "exec", ns, filepath.Join(imageDir, "outgate"), "health", "--config", sample}, args...)...)
		out, _ := cmd.CombinedOutput()
		return cmd.ProcessState.ExitCode(), string(out)
	}
	if code, out := healthCmd(); code != 0 {
		t.Errorf("outgate health while draining: exit %d %q, want 0 (alive)", code, out)
	}
	if code, out := healthCmd("--ready"); code != 1 || !strings.Contains(out, "503") {
		t.Errorf("outgate health --ready while draining: exit %d %q, want 1 with 503", code, out)
	}
	released = true
	close(release)
	if r := <-inflight; r.err != nil || r.status != 200 || r.body != "done" {
		t.Errorf("request in flight across SIGTERM: %d %q %v", r.status, r.body, r.err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("container exit after SIGTERM: %v, want 0\n%s", err, logs.String())
		}
	case <-time.After(90 * time.Second):
		t.Fatalf("the container did not exit after SIGTERM\n%s", logs.String())
	}
	if s := <-stopped; !strings.HasPrefix(s, "exit 0 ") {
		t.Errorf("podman stop: %s", s)
	}
	if !strings.Contains(logs.String(), `"msg":"stopped"`) {
		t.Errorf("no stop line in the container's log:\n%s", logs.String())
	}
}

// limit is the resource limit to ask for in the container: want, or the
// hard limit here if that is lower (raising it is refused).
func limit(t *testing.T, resource int, want uint64) string {
	var l unix.Rlimit
	if err := unix.Getrlimit(resource, &l); err != nil {
		t.Fatal(err)
	}
	v := min(want, l.Max)
	return fmt.Sprintf("%d:%d", v, v)
}
