package bootstrap

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/outgate/outgate/internal/instance"
	"github.com/outgate/outgate/internal/testutil"
)

func settings() instance.Settings {
	return instance.Settings{Deployment: "pay", Region: "us-east-1", ConfigParameter: "/outgate/pay/config",
		StateDir: "/var/lib/outgate", Listen: ":443", AdminListen: "127.0.0.1:9901", LogGroup: "/outgate/pay/instance",
		CACertParameter: "/outgate/pay/ca/cert", CAKeyParameter: "/outgate/pay/ca/key"}
}

// machine is a fake instance root: the script's paths under a temp dir,
// and stub `aws` and `systemctl` commands first on PATH that record their
// arguments. The stub aws "downloads" the bytes the test staged.
type machine struct {
	t                     *testing.T
	dir, log, staged, bin string
	layout                Layout
}

func newMachine(t *testing.T, binary []byte) *machine {
	t.Helper()
	testutil.Tool(t, "bash")
	testutil.Tool(t, "python3")
	dir := t.TempDir()
	m := &machine{t: t, dir: dir, log: filepath.Join(dir, "calls.log"), staged: filepath.Join(dir, "staged-binary")}
	if err := os.WriteFile(m.staged, binary, 0o644); err != nil {
		t.Fatal(err)
	}
	stubs := filepath.Join(dir, "stubs")
	os.MkdirAll(stubs, 0o755)
	// aws s3 cp ... s3://B/K DEST: copy the staged bytes to DEST (the last argument).
	write(t, filepath.Join(stubs, "aws"), "#!/bin/bash\necho \"aws $*\" >> "+m.log+"\n[ \"$1 $2\" = \"cloudformation signal-resource\" ] && exit 0\n[ \"$1 $2\" = \"s3 cp\" ] || exit 3\nfor a; do dest=$a; done\ncp "+m.staged+" \"$dest\"\n")
	write(t, filepath.Join(stubs, "systemctl"), "#!/bin/bash\necho \"systemctl $*\" >> "+m.log+"\n")
	m.bin = stubs
	root := filepath.Join(dir, "root")
	m.layout = Layout{Binary: root + "/usr/local/bin/outgate", SettingsFile: root + "/etc/outgate/instance.json",
		UnitFile: root + "/etc/systemd/system/outgate.service", UnitName: "outgate.service"}
	os.MkdirAll(filepath.Dir(m.layout.Binary), 0o755)
	return m
}

func write(t *testing.T, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o755); err != nil {
		t.Fatal(err)
	}
}

// run renders the script, applies edits (what CloudFormation's Fn::Sub
// would substitute) and runs it under bash; it returns the output and
// whether it succeeded.
func (m *machine) run(in Input, edit func(string) string) (string, bool) {
	m.t.Helper()
	s, err := UserData(in, m.layout)
	if err != nil {
		m.t.Fatal(err)
	}
	if edit != nil {
		s = edit(s)
	}
	p := filepath.Join(m.dir, "user-data")
	write(m.t, p, s)
	cmd := exec.Command("bash", p)
	cmd.Env = append(os.Environ(), "PATH="+m.bin+":"+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	return string(out), err == nil
}

func (m *machine) calls() string {
	b, _ := os.ReadFile(m.log)
	return string(b)
}

func sum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func input(binary []byte) Input {
	return Input{Region: "us-east-1", Bucket: "outgate-123456789012-us-east-1", Key: "pay/outgate-linux-arm64-0123abcd", SHA256: sum(binary), Settings: settings()}
}

func TestUserDataInstallsAndStarts(t *testing.T) {
	bin := []byte("#!/bin/sh\necho outgate\n")
	m := newMachine(t, bin)
	out, ok := m.run(input(bin), nil)
	if !ok {
		t.Fatalf("script failed:\n%s", out)
	}
	got, err := os.ReadFile(m.layout.Binary)
	if err != nil || string(got) != string(bin) {
		t.Fatalf("binary not installed: %v %q", err, got)
	}
	// The settings file is what instance.LoadSettings reads back, unchanged.
	s, err := instance.LoadSettings(m.layout.SettingsFile)
	if err != nil || s != settings() {
		t.Fatalf("settings: %v\n%+v", err, s)
	}
	unit, _ := os.ReadFile(m.layout.UnitFile)
	if string(unit) != Unit(m.layout) {
		t.Fatalf("unit file:\n%s", unit)
	}
	calls := m.calls()
	if !strings.Contains(calls, "aws s3 cp --only-show-errors --region us-east-1 s3://outgate-123456789012-us-east-1/pay/outgate-linux-arm64-0123abcd") {
		t.Errorf("download: %s", calls)
	}
	if !strings.Contains(calls, "systemctl daemon-reload\nsystemctl enable --now outgate.service\n") {
		t.Errorf("service not started: %s", calls)
	}
}

// A binary whose SHA-256 is not the staged one (tampered, truncated, the
// wrong build) is never installed and the service never starts.
func TestUserDataRefusesWrongChecksum(t *testing.T) {
	bin := []byte("#!/bin/sh\necho outgate\n")
	m := newMachine(t, []byte("#!/bin/sh\necho something else\n"))
	out, ok := m.run(input(bin), nil)
	if ok {
		t.Fatalf("script succeeded with a wrong binary:\n%s", out)
	}
	if !strings.Contains(out, "expected "+sum(bin)+": refusing to run it") {
		t.Errorf("output does not say why:\n%s", out)
	}
	m.neverStarted()
}

func (m *machine) neverStarted() {
	m.t.Helper()
	if c := m.calls(); strings.Contains(c, "systemctl") {
		m.t.Errorf("systemctl was called:\n%s", c)
	}
	for _, p := range []string{m.layout.Binary, m.layout.UnitFile, m.layout.SettingsFile} {
		if _, err := os.Stat(p); err == nil {
			m.t.Errorf("%s was installed", p)
		}
	}
}

// A required setting substituted empty (a stack parameter left empty),
// or settings that are not JSON, stop the script before anything is
// installed.
func TestUserDataRefusesMissingSettings(t *testing.T) {
	bin := []byte("#!/bin/sh\n")
	for name, edit := range map[string]func(string) string{
		"empty config parameter": func(s string) string {
			return strings.Replace(s, `"config_parameter": "/outgate/pay/config"`, `"config_parameter": ""`, 1)
		},
		"no log group": func(s string) string {
			return strings.Replace(s, `"log_group": `, `"log_group_renamed": `, 1)
		},
		"empty CA key parameter": func(s string) string {
			return strings.Replace(s, `"ca_key_parameter": "/outgate/pay/ca/key"`, `"ca_key_parameter": ""`, 1)
		},
		"not JSON": func(s string) string {
			return strings.Replace(s, `"deployment": "pay",`, `"deployment": pay,`, 1)
		},
	} {
		t.Run(name, func(t *testing.T) {
			m := newMachine(t, bin)
			out, ok := m.run(input(bin), func(s string) string {
				e := edit(s)
				if e == s {
					t.Fatalf("edit did not apply")
				}
				return e
			})
			if ok {
				t.Fatalf("script succeeded:\n%s", out)
			}
			if !strings.Contains(out, "outgate bootstrap: settings without") && !strings.Contains(out, "not JSON") {
				t.Errorf("output does not say why:\n%s", out)
			}
			m.neverStarted()
		})
	}
}

// The download failing for good (no such key, no permission) is bounded
// and never starts the service.
func TestUserDataDownloadFails(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the script's bounded retries")
	}
	m := newMachine(t, nil)
	write(t, filepath.Join(m.bin, "aws"), "#!/bin/bash\necho \"aws $*\" >> "+m.log+"\nexit 1\n")
	write(t, filepath.Join(m.bin, "sleep"), "#!/bin/bash\n") // the script's own pause between tries
	out, ok := m.run(input([]byte("x")), nil)
	if ok || !strings.Contains(out, "could not download") {
		t.Fatalf("ok=%v\n%s", ok, out)
	}
	if n := strings.Count(m.calls(), "aws s3 cp"); n != 30 {
		t.Errorf("%d download attempts, want 30", n)
	}
	m.neverStarted()
}

func TestUserDataRefusesBadInput(t *testing.T) {
	in := input([]byte("x"))
	for name, f := range map[string]func(*Input){
		"quote in key":    func(i *Input) { i.Key = "pay/x'; reboot; '" },
		"short checksum":  func(i *Input) { i.SHA256 = "abc" },
		"bucket":          func(i *Input) { i.Bucket = "Bad_Bucket" },
		"invalid setting": func(i *Input) { i.Settings.Listen = "" },
	} {
		c := in
		f(&c)
		if _, err := UserData(c, DefaultLayout()); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// In a template the values are Fn::Sub placeholders, and the script must
// hold no other "${": Fn::Sub would fail on it, or replace it.
func TestUserDataPlaceholdersOnly(t *testing.T) {
	s := settings()
	s.Deployment, s.Region = "${AWS::StackName}", "${AWS::Region}"
	s.ConfigParameter = "${ConfigParameterName}"
	in := Input{Region: "${AWS::Region}", Bucket: "${CodeBucket}", Key: "${BinaryKey}", SHA256: "${BinarySha256}", Settings: s}
	out, err := UserData(in, DefaultLayout())
	if err != nil {
		t.Fatal(err)
	}
	refs := map[string]bool{}
	for _, part := range strings.Split(out, "${")[1:] {
		refs[part[:strings.IndexByte(part, '}')]] = true
	}
	want := map[string]bool{"AWS::StackName": true, "AWS::Region": true, "ConfigParameterName": true, "CodeBucket": true, "BinaryKey": true, "BinarySha256": true}
	if len(refs) != len(want) {
		t.Errorf("references %v, want %v", refs, want)
	}
	for r := range refs {
		if !want[r] {
			t.Errorf("unexpected reference ${%s}", r)
		}
	}
	// A script with its own ${var} is refused.
	if err := Check(out+"echo ${HOME}\n", in); err == nil {
		t.Error("Check accepted a shell ${var}")
	}
}

// requiredKeys follows instance.Settings.Validate: each key it lists,
// removed, makes LoadSettings fail; every other key may be removed.
func TestRequiredKeysFollowValidate(t *testing.T) {
	for _, s := range []instance.Settings{settings(), func() instance.Settings {
		s := settings()
		s.Domain, s.CertBucket, s.CACertParameter, s.CAKeyParameter = "gw.example.com", "outgate-123456789012-us-east-1", "", ""
		return s
	}()} {
		req := map[string]bool{}
		for _, k := range requiredKeys(s) {
			req[k] = true
		}
		if !req["deployment"] || !req["config_parameter"] || !req["log_group"] {
			t.Fatalf("required keys %v miss the obvious ones", req)
		}
		var full map[string]any
		b, _ := json.Marshal(s)
		json.Unmarshal(b, &full)
		for k := range full {
			c := map[string]any{}
			for k2, v := range full {
				if k2 != k {
					c[k2] = v
				}
			}
			b, _ := json.Marshal(c)
			p := filepath.Join(t.TempDir(), "s.json")
			os.WriteFile(p, b, 0o644)
			_, err := instance.LoadSettings(p)
			if (err != nil) != req[k] {
				t.Errorf("without %s: LoadSettings error %v, but required=%v", k, err, req[k])
			}
		}
	}
}

// The unit holds the hardening the design asks for, and systemd itself
// accepts it.
func TestUnitHardening(t *testing.T) {
	u := Unit(DefaultLayout())
	for _, k := range []string{"User=outgate", "DynamicUser=yes", "NoNewPrivileges=yes", "AmbientCapabilities=CAP_NET_BIND_SERVICE",
		"CapabilityBoundingSet=CAP_NET_BIND_SERVICE", "ProtectSystem=strict", "StateDirectory=outgate", "Restart=always",
		"ExecStart=/usr/local/bin/outgate instance run --settings /etc/outgate/instance.json"} {
		if !strings.Contains(u, "\n"+k+"\n") {
			t.Errorf("unit lacks %s", k)
		}
	}
	analyze := testutil.Tool(t, "systemd-analyze")
	dir := t.TempDir()
	bin := filepath.Join(dir, "outgate")
	write(t, bin, "#!/bin/sh\n")
	l := DefaultLayout()
	l.Binary = bin
	unit := filepath.Join(dir, "outgate.service")
	if err := os.WriteFile(unit, []byte(Unit(l)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", unit).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	// Anything it warns about in our unit is a mistake in it.
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "outgate.service") {
			t.Errorf("systemd-analyze: %s", line)
		}
	}
}
