package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/outgate/outgate/internal/keys"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds cmd/outgate once per test run.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "outgate-e2e")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "outgate")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/outgate/outgate/cmd/outgate").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func TestKeysNew(t *testing.T) {
	out, err := exec.Command(binary(t), "keys", "new", "-o", "json").Output()
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		Key       string `json:"key"`
		KeySHA256 string `json:"key_sha256"`
	}
	if err := json.Unmarshal(out, &k); err != nil {
		t.Fatalf("keys new -o json printed %q", out)
	}
	if !strings.HasPrefix(k.Key, "og_") || keys.Hash(k.Key) != k.KeySHA256 {
		t.Errorf("key %q with hash %q", k.Key, k.KeySHA256)
	}
	out, _ = exec.Command(binary(t), "keys", "new").Output()
	if !strings.Contains(string(out), "key_sha256: ") {
		t.Errorf("keys new printed %q", out)
	}
	cmd := exec.Command(binary(t), "keys", "new", "-o", "xml")
	if out, err := cmd.CombinedOutput(); cmd.ProcessState.ExitCode() != 2 || !strings.Contains(string(out), "-o must be text or json") {
		t.Errorf("bad -o: exit %d, %q, %v", cmd.ProcessState.ExitCode(), out, err)
	}
}

func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("clients: [{name: a, key_sha256: "+keys.Hash("og_x")+", hosts: [api.example]}]\n"), 0o600)
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("clients:\n  - name: a\n    key_sha256: nothex\n"), 0o600)

	out, err := exec.Command(binary(t), "config", "check", "--config", good).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "good.yaml: ok (1 client, 0 upstreams)") {
		t.Errorf("good config: %q, %v", out, err)
	}
	cmd := exec.Command(binary(t), "config", "check", "--config", bad)
	out, _ = cmd.CombinedOutput()
	for _, want := range []string{bad + ":2:5: clients[0]: client \"a\" has no rights", bad + ":3:17: clients[0].key_sha256: must be 64 hex digits", "2 problems"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("bad config output lacks %q:\n%s", want, out)
		}
	}
	if cmd.ProcessState.ExitCode() != 1 {
		t.Errorf("bad config: exit %d, want 1", cmd.ProcessState.ExitCode())
	}
	// OUTGATE_CONFIG_FILE stands in for --config.
	cmd = exec.Command(binary(t), "config", "check")
	cmd.Env = append(os.Environ(), "OUTGATE_CONFIG_FILE="+good)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("OUTGATE_CONFIG_FILE: %q, %v", out, err)
	}
	cmd = exec.Command(binary(t), "serve")
	cmd.Env = append(os.Environ(), "OUTGATE_CONFIG_FILE=")
	if out, _ := cmd.CombinedOutput(); cmd.ProcessState.ExitCode() != 2 || !strings.Contains(string(out), "--config") {
		t.Errorf("serve without a config: exit %d, %q", cmd.ProcessState.ExitCode(), out)
	}
}

// TestServeSignals: SIGHUP reloads (a bad file is refused), SIGTERM exits 0.
func TestServeSignals(t *testing.T) {
	dir := t.TempDir()
	key, hash := keys.New()
	key2, hash2 := keys.New()
	addr := "127.0.0.1:" + freePortNum(t)
	cfg := func(extra string) string {
		return fmt.Sprintf("listen: %s\nclients:\n  - {name: a, key_sha256: %s, hosts: [api.example]}\n%s", addr, hash, extra)
	}
	path := filepath.Join(dir, "outgate.yaml")
	os.WriteFile(path, []byte(cfg("")), 0o600)
	cmd, logs := serve(t, path)
	whoamiStatus := func(k string) int {
		req, _ := http.NewRequest("GET", "http://"+addr+"/_outgate/whoami", nil)
		req.Header.Set("Outgate-Key", k)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	until := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 10s; log:\n%s", what, logs.String())
			}
		}
	}
	until("started", func() bool { return whoamiStatus(key2) == 401 })

	os.WriteFile(path, []byte(cfg("  - {name: b, key_sha256: "+hash2+", hosts: [api.example]}\n")), 0o600)
	cmd.Process.Signal(syscall.SIGHUP)
	// Known key: the whoami check itself fails here (no network), but not with 401.
	until("reloaded", func() bool { s := whoamiStatus(key2); return s != 401 && s != 0 })

	os.WriteFile(path, []byte("listen: [broken\n"), 0o600)
	cmd.Process.Signal(syscall.SIGHUP)
	until("bad reload refused", func() bool { return strings.Contains(logs.String(), "config reload refused") })
	if s := whoamiStatus(key); s == 401 || s == 0 {
		t.Fatalf("after a refused reload the old config should still serve; got %d", s)
	}

	cmd.Process.Signal(syscall.SIGTERM)
	waitExit0(t, cmd, 30*time.Second, logs)
	if !strings.Contains(logs.String(), `"msg":"stopped"`) {
		t.Errorf("no stop line in the log:\n%s", logs.String())
	}
}

func freePortNum(t *testing.T) string {
	t.Helper()
	l, err := netListen()
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := strings.Cut(l.Addr().String(), ":")
	return port
}

// TestRelayColdStartWithBadConfig: the Lambda bootstrap says which build
// starts (one JSON line on stdout, as outgate version does), and with a bad
// config exits 1 with one JSON line on stderr that names the problem, not a
// stack trace.
func TestRelayColdStartWithBadConfig(t *testing.T) {
	bin := stampedBuild(t, "github.com/outgate/outgate/cmd/outgate-relay", "-tags", "lambda.norpc")
	cmd := exec.Command(bin)
	cmd.Env = []string{"OUTGATE_CONFIG=clients:\n  - name: a\n    key_sha256: nothex\n    hosts: [x.example]\n", "PATH=/usr/bin:/bin"}
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Run()
	if cmd.ProcessState.ExitCode() != 1 {
		t.Fatalf("exit %d, want 1; output:\n%s%s", cmd.ProcessState.ExitCode(), &stdout, &stderr)
	}
	checkStartLine(t, "outgate-relay", stdout.String())
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	var m map[string]string
	if len(lines) != 1 || json.Unmarshal([]byte(lines[0]), &m) != nil {
		t.Fatalf("want one JSON line, got:\n%s", &stderr)
	}
	if !strings.Contains(m["error"], "$OUTGATE_CONFIG:3:17: clients[0].key_sha256: must be 64 hex digits") || m["level"] != "ERROR" {
		t.Errorf("line %v", m)
	}
}

// TestGuardianStartLine: the guardian's bootstrap says which build starts,
// before anything else (here its configuration is missing).
func TestGuardianStartLine(t *testing.T) {
	bin := stampedBuild(t, "github.com/outgate/outgate/cmd/outgate-guardian", "-tags", "lambda.norpc")
	cmd := exec.Command(bin)
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Run()
	if cmd.ProcessState.ExitCode() != 1 || !strings.Contains(stderr.String(), "outgate-guardian cannot start") {
		t.Fatalf("exit %d, want 1 and a start error; output:\n%s%s", cmd.ProcessState.ExitCode(), &stdout, &stderr)
	}
	checkStartLine(t, "outgate-guardian", stdout.String())
}

// TestVersionStamped: the version, commit and build date make release
// stamps are what outgate version and --version print.
func TestVersionStamped(t *testing.T) {
	bin := stampedBuild(t, "github.com/outgate/outgate/cmd/outgate")
	out, err := exec.Command(bin, "version", "-o", "json").Output()
	var v map[string]any
	if err != nil || json.Unmarshal(out, &v) != nil {
		t.Fatalf("version -o json: %v, %s", err, out)
	}
	for k, want := range map[string]string{"version": stampVersion, "commit": stampCommit, "build_date": stampDate, "go_version": runtime.Version()} {
		if v[k] != want {
			t.Errorf("version -o json: %s is %v, want %s", k, v[k], want)
		}
	}
	text, _ := exec.Command(bin, "version").Output()
	flag, _ := exec.Command(bin, "--version").Output()
	if string(text) != string(flag) || !strings.HasPrefix(string(text), "outgate "+stampVersion+"\n") || !strings.Contains(string(text), stampDate) {
		t.Errorf("version %q, --version %q", text, flag)
	}
}

const (
	stampVersion = "v0.0.0-e2e"
	stampCommit  = "0123456789abcdef0123456789abcdef01234567"
	stampDate    = "2026-01-02T03:04:05Z"
)

// stampedBuild builds pkg with the linker flags make release uses.
func stampedBuild(t *testing.T, pkg string, flags ...string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "bin")
	const bi = "github.com/outgate/outgate/internal/buildinfo"
	ldflags := "-X " + bi + ".version=" + stampVersion + " -X " + bi + ".commit=" + stampCommit + " -X " + bi + ".buildDate=" + stampDate
	args := append(append([]string{"build"}, flags...), "-ldflags", ldflags, "-o", bin, pkg)
	if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// checkStartLine finds the JSON start line of a Lambda bootstrap.
func checkStartLine(t *testing.T, name, stdout string) {
	t.Helper()
	var m map[string]any
	if json.Unmarshal([]byte(strings.TrimSpace(stdout)), &m) != nil {
		t.Fatalf("stdout is not one JSON line: %q", stdout)
	}
	if m["msg"] != name+" starting" || m["version"] != stampVersion || m["commit"] != stampCommit || m["go_version"] != runtime.Version() {
		t.Errorf("start line %v", m)
	}
}

func TestPlanAndTemplateCommands(t *testing.T) {
	out, err := exec.Command(binary(t), "plan", "--region", "ap-northeast-2", "--arch", "x86_64", "--memory-mb", "128", "--azs", "1", "-o", "json").Output()
	if err != nil {
		t.Fatal(err)
	}
	var plan struct {
		PricesRecorded string `json:"prices_recorded"`
		Modes          []struct {
			Mode  string
			Lines []struct {
				Item string
				USD  float64
			}
			Total float64 `json:"total_usd"`
		}
	}
	if err := json.Unmarshal(out, &plan); err != nil || len(plan.Modes) != 3 || plan.PricesRecorded == "" {
		t.Fatalf("plan -o json: %s %v", out, err)
	}
	got := map[string]float64{}
	for _, l := range plan.Modes[0].Lines {
		got[l.Item] = l.USD
	}
	if got["Lambda compute (relay)"] != 1.04 || got["Lambda requests (relay)"] != 0.20 || got["Public IPv4 x1"] != 3.65 {
		t.Errorf("1M x 500 ms x 128 MB x86_64: %v", got)
	}
	// Instance mode beside them: one t4g.nano in ap-northeast-2, which has
	// no recorded figure of its own: us-east-1's ($0.0042/hour x 730 h),
	// and the line says so.
	inst := map[string]float64{}
	for _, l := range plan.Modes[2].Lines {
		inst[l.Item] = l.USD
	}
	if plan.Modes[2].Mode != "instance" || inst["EC2 t4g.nano x1"] != 3.07 || inst["Public IPv4 x1"] != 3.65 {
		t.Errorf("instance mode: %s %v", plan.Modes[2].Mode, inst)
	}
	text, _ := exec.Command(binary(t), "plan").Output()
	for _, want := range []string{"== eni", "== nat", "== instance", "TOTAL", "recorded", "guardian (every minute)"} {
		if !strings.Contains(string(text), want) {
			t.Errorf("plan text lacks %q:\n%s", want, text)
		}
	}
	for _, bad := range [][]string{{"plan", "--azs", "5"}, {"plan", "--region", "mars-1"}, {"template", "--mode", "vpn"}, {"template", "-o", "xml"}} {
		cmd := exec.Command(binary(t), bad...)
		out, _ := cmd.CombinedOutput()
		if cmd.ProcessState.ExitCode() != 2 || !strings.HasPrefix(string(out), "outgate: ") {
			t.Errorf("%v: exit %d, %q", bad, cmd.ProcessState.ExitCode(), out)
		}
	}
	tpl, err := exec.Command(binary(t), "template", "--mode", "nat", "--azs", "2").Output()
	if err != nil || !strings.Contains(string(tpl), `"AWS::EC2::NatGateway"`) {
		t.Errorf("template --mode nat: %v", err)
	}
}
