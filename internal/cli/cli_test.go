package cli

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/outgate/outgate/internal/buildinfo"
)

// result is one run of the command line, in process, exactly as main runs it.
type result struct {
	out, err string
	code     int
}

func runCLI(t *testing.T, interactive bool, stdin string, args ...string) result {
	t.Helper()
	var out, errb strings.Builder
	code := run(env{interactive: func() bool { return interactive }}, args, strings.NewReader(stdin), &out, &errb)
	return result{out.String(), errb.String(), code}
}

// awsSandbox points the AWS SDK at a loopback endpoint that records every
// call, with fake credentials and config files of the test's own, so no
// test reads the machine's AWS setup or reaches AWS.
type awsSandbox struct {
	mu    sync.Mutex
	calls []string
}

func newAWSSandbox(t *testing.T) *awsSandbox {
	t.Helper()
	s := &awsSandbox{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.calls = append(s.calls, r.Header.Get("X-Amz-Target")+string(body))
		s.mu.Unlock()
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `<ErrorResponse><Error><Type>Sender</Type><Code>ValidationError</Code><Message>sandbox</Message></Error></ErrorResponse>`)
	}))
	t.Cleanup(srv.Close)
	isolateAWS(t)
	t.Setenv("AWS_ENDPOINT_URL", srv.URL)
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_MAX_ATTEMPTS", "1")
	return s
}

func (s *awsSandbox) called() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// isolateAWS clears what the SDK would read from the machine.
func isolateAWS(t *testing.T) {
	t.Helper()
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o600)
	for _, k := range []string{"AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID",
		"AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_EC2_METADATA_DISABLED",
		"AWS_EC2_METADATA_SERVICE_ENDPOINT"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	t.Setenv("AWS_CONFIG_FILE", empty)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", empty)
}

// commands lists every command of the tree with its path.
func commands() []*cobra.Command {
	var all []*cobra.Command
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		all = append(all, c)
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(newRoot(env{interactive: func() bool { return false }}))
	return all
}

func pathArgs(c *cobra.Command) []string { return strings.Fields(c.CommandPath())[1:] }

// argsFor gives commands that need positional arguments one, so the test
// reaches the flag checks.
func argsFor(c *cobra.Command) []string {
	switch c.CommandPath() {
	case "outgate ips release":
		return []string{"192.0.2.1"}
	case "outgate idempotency clear":
		return []string{"k1"}
	}
	return nil
}

// TestOutputFlagEverywhere: -o with a format a command cannot print is a
// usage error on every command that prints data, and -o on a command that
// prints none is one too; nothing runs in either case.
func TestOutputFlagEverywhere(t *testing.T) {
	aws := newAWSSandbox(t)
	withOutput := 0
	for _, c := range commands() {
		args := append(append(pathArgs(c), argsFor(c)...), "--name", "pay", "-o", "xml")
		// --name only where it applies, so the -o check is what fails.
		if !has(c, annName) {
			args = slices.DeleteFunc(args, func(s string) bool { return s == "--name" || s == "pay" })
		}
		r := runCLI(t, false, "", args...)
		formats := outputFormats(c)
		want := "-o must be " + strings.Join(formats, " or ") + `, got "xml"`
		if formats == nil {
			want = "--output does not apply to " + c.CommandPath()
		} else {
			withOutput++
		}
		if r.code != 2 || !strings.Contains(r.err, want) {
			t.Errorf("%v: exit %d, %q; want exit 2 and %q", args, r.code, r.err, want)
		}
	}
	// up, status, ips list, ca, keys new/add/list, plan, template, version.
	if withOutput != 10 {
		t.Errorf("%d commands take -o, want 10", withOutput)
	}
	if calls := aws.called(); len(calls) > 0 {
		t.Errorf("a bad -o reached AWS: %v", calls)
	}
}

// TestGlobalFlagsOnlyWhereTheyApply: --profile, --region and --name given to
// a command that does not use them are refused, not silently ignored.
func TestGlobalFlagsOnlyWhereTheyApply(t *testing.T) {
	newAWSSandbox(t)
	for _, args := range [][]string{
		{"serve", "--region", "us-east-1"},
		{"config", "check", "--profile", "p"},
		{"template", "--region", "eu-west-1"},
		{"keys", "new", "--name", "pay"},
		{"detach", "--name", "pay", "--function", "f", "--yes"},
		{"plan", "--name", "pay"},
		{"health", "--profile", "p"},
	} {
		r := runCLI(t, false, "", args...)
		if r.code != 2 || !strings.Contains(r.err, "does not apply to outgate "+args[0]) {
			t.Errorf("%v: exit %d, %q", args, r.code, r.err)
		}
	}
}

// TestNameCheckedBeforeAWS: every command on a deployment checks --name
// the same way, before any AWS call.
func TestNameCheckedBeforeAWS(t *testing.T) {
	aws := newAWSSandbox(t)
	n := 0
	for _, c := range commands() {
		if !has(c, annName) {
			continue
		}
		n++
		base := append(pathArgs(c), argsFor(c)...)
		for name, want := range map[string]string{"": "--name is required", "Pay_1": `--name "Pay_1" must start with a lower-case letter`} {
			args := append(slices.Clone(base), "--yes", "--name", name)
			if c.Flags().Lookup("yes") == nil {
				args = slices.DeleteFunc(args, func(s string) bool { return s == "--yes" })
			}
			if r := runCLI(t, false, "", args...); r.code != 2 || !strings.Contains(r.err, want) {
				t.Errorf("%v: exit %d, %q; want exit 2 and %q", args, r.code, r.err, want)
			}
		}
	}
	if n != 11 {
		t.Errorf("%d commands take --name, want 11 (up status down verify attach, ips list/release, ca, keys add/revoke/list)", n)
	}
	if calls := aws.called(); len(calls) > 0 {
		t.Errorf("a bad name reached AWS: %v", calls)
	}
}

// TestDestructiveCommandsAsk: off a terminal without --yes, down, detach
// and ips release refuse (exit 2, saying why) before calling AWS; on a
// terminal they ask, and only "y" goes ahead.
func TestDestructiveCommandsAsk(t *testing.T) {
	for _, args := range [][]string{
		{"down", "--name", "pay"},
		{"detach", "--function", "sms-sender"},
		{"ips", "release", "--name", "pay", "192.0.2.1"},
	} {
		t.Run(args[0], func(t *testing.T) {
			aws := newAWSSandbox(t)
			r := runCLI(t, false, "y\n", args...)
			if r.code != 2 || !strings.Contains(r.err, "not a terminal") || !strings.Contains(r.err, "--yes") {
				t.Errorf("off a terminal without --yes: exit %d, %q", r.code, r.err)
			}
			answer := "n\n"
			if args[0] == "ips" {
				answer = "192.0.2.2\n" // the wrong IP typed back
			}
			r = runCLI(t, true, answer, args...)
			if r.code != 1 || !strings.Contains(r.err, "nothing was") {
				t.Errorf("answered no: exit %d, %q", r.code, r.err)
			}
			if calls := aws.called(); len(calls) > 0 {
				t.Fatalf("refused, yet AWS was called: %v", calls)
			}
			answer = "y\n"
			if args[0] == "ips" {
				answer = "192.0.2.1\n"
			}
			runCLI(t, true, answer, args...)
			if len(aws.called()) == 0 {
				t.Errorf("confirmed on a terminal, yet AWS was not called")
			}
			n := len(aws.called())
			runCLI(t, false, "", append(args, "--yes")...)
			if len(aws.called()) == n {
				t.Errorf("--yes off a terminal, yet AWS was not called")
			}
		})
	}
}

// TestUsageErrorsExit2: wrong commands, arguments and flags exit 2, and
// failures of the work itself exit 1.
func TestUsageErrorsExit2(t *testing.T) {
	for _, args := range [][]string{
		{"bogus"}, {"keys", "bogus"}, {"keys", "new", "extra"}, {"plan", "--bogus"}, {"ips", "release", "--name", "pay"},
		{"template", "--subnet-ids", "subnet-a,,subnet-b"}, {"plan", "--azs", "x"},
	} {
		if r := runCLI(t, false, "", args...); r.code != 2 {
			t.Errorf("%v: exit %d, %q; want 2", args, r.code, r.err)
		}
	}
	if r := runCLI(t, false, "", "config", "check", "--config", filepath.Join(t.TempDir(), "missing.yaml")); r.code != 1 {
		t.Errorf("a missing config file: exit %d, want 1", r.code)
	}
	r := runCLI(t, false, "")
	if r.code != 0 || !strings.Contains(r.out, "Exit status") {
		t.Errorf("outgate alone: exit %d, want the help with the exit status", r.code)
	}
}

// TestListFlagsParseAlike: every list flag is one type, comma-separated
// and repeatable, with spaces trimmed.
func TestListFlagsParseAlike(t *testing.T) {
	for _, c := range commands() {
		c.Flags().VisitAll(func(f *pflag.Flag) {
			if strings.Contains(f.Value.Type(), "Slice") || strings.Contains(f.Value.Type(), "Array") {
				t.Errorf("%s --%s is a %s, not a list flag", c.CommandPath(), f.Name, f.Value.Type())
			}
		})
	}
	r := runCLI(t, false, "", "template", "--mode", "nat", "--vpc-id", "vpc-1", "--subnet-ids", "subnet-a, subnet-b", "--subnet-ids", "subnet-c",
		"--endpoints", "s3", "--endpoints", "sqs,dynamodb")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.err)
	}
	for _, want := range []string{`"subnet-a"`, `"subnet-b"`, `"subnet-c"`, "com.amazonaws.", ".s3", ".sqs", ".dynamodb"} {
		if !strings.Contains(r.out, want) {
			t.Errorf("template lacks %s", want)
		}
	}
	if strings.Contains(r.out, `" subnet-b"`) {
		t.Error("the space before subnet-b was kept")
	}
}

// TestPlanRegionLikeEveryCommand: plan takes its region from --region,
// AWS_REGION or the profile, in that order, like the AWS commands.
func TestPlanRegionLikeEveryCommand(t *testing.T) {
	isolateAWS(t)
	cfg := filepath.Join(t.TempDir(), "config")
	os.WriteFile(cfg, []byte("[profile tokyo]\nregion = ap-northeast-1\n"), 0o600)
	t.Setenv("AWS_CONFIG_FILE", cfg)
	region := func(args ...string) (string, string) {
		t.Helper()
		r := runCLI(t, false, "", append([]string{"plan", "-o", "json"}, args...)...)
		var p struct{ Region string }
		if r.code != 0 || json.Unmarshal([]byte(r.out), &p) != nil {
			t.Fatalf("plan %v: exit %d %s", args, r.code, r.err)
		}
		return p.Region, r.err
	}
	if got, errs := region(); got != "us-east-1" || !strings.Contains(errs, "no region given") {
		t.Errorf("no region anywhere: %q, %q", got, errs)
	}
	if got, _ := region("--profile", "tokyo"); got != "ap-northeast-1" {
		t.Errorf("--profile tokyo: %q", got)
	}
	t.Setenv("AWS_PROFILE", "tokyo")
	if got, _ := region(); got != "ap-northeast-1" {
		t.Errorf("AWS_PROFILE=tokyo: %q", got)
	}
	t.Setenv("AWS_REGION", "ap-northeast-2")
	if got, _ := region(); got != "ap-northeast-2" {
		t.Errorf("AWS_REGION: %q", got)
	}
	if got, _ := region("--region", "eu-west-1"); got != "eu-west-1" {
		t.Errorf("--region: %q", got)
	}
	if r := runCLI(t, false, "", "plan", "--profile", "nosuch"); r.code == 0 || !strings.Contains(r.err, "nosuch") {
		t.Errorf("a missing profile: exit %d, %q", r.code, r.err)
	}
}

// TestCompletionOfFlagValues: the shell completion offers the values of
// --mode, --front, --arch, --region and -o (each command's own formats).
func TestCompletionOfFlagValues(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"up", "--mode", ""}, []string{"eni", "nat", "instance"}},
		{[]string{"plan", "--front", ""}, []string{"url", "apigw"}},
		{[]string{"template", "--arch", ""}, []string{"arm64", "x86_64"}},
		{[]string{"template", "-o", ""}, []string{"json", "yaml"}},
		{[]string{"status", "-o", ""}, []string{"text", "json"}},
	} {
		r := runCLI(t, false, "", append([]string{cobra.ShellCompRequestCmd}, tc.args...)...)
		lines := strings.Split(strings.TrimSpace(r.out), "\n")
		if len(lines) != len(tc.want)+1 || !slices.Equal(lines[:len(tc.want)], tc.want) || lines[len(lines)-1] != ":4" {
			t.Errorf("complete %v: %q, want %v then :4 (no file completion)", tc.args, r.out, tc.want)
		}
	}
	// Flag names: the global flags only where they apply.
	if r := runCLI(t, false, "", cobra.ShellCompRequestCmd, "serve", "--"); strings.Contains(r.out, "--region") || !strings.Contains(r.out, "--config") {
		t.Errorf("complete serve --: %q", r.out)
	}
	if r := runCLI(t, false, "", cobra.ShellCompRequestCmd, "status", "--"); !strings.Contains(r.out, "--region") || !strings.Contains(r.out, "--name") {
		t.Errorf("complete status --: %q", r.out)
	}
	r := runCLI(t, false, "", cobra.ShellCompRequestCmd, "status", "--region", "ap-")
	if !strings.Contains(r.out, "ap-northeast-2\n") || strings.Contains(r.out, "us-east-1") {
		t.Errorf("complete --region ap-: %q", r.out)
	}
}

// TestVersion: version, version -o json and --version report the same build.
func TestVersion(t *testing.T) {
	bi := buildinfo.Get()
	r := runCLI(t, false, "", "version", "-o", "json")
	var got buildinfo.Info
	if r.code != 0 || json.Unmarshal([]byte(r.out), &got) != nil || got != bi || got.GoVersion == "" {
		t.Errorf("version -o json: exit %d %q, want %+v", r.code, r.out, bi)
	}
	text := runCLI(t, false, "", "version")
	flag := runCLI(t, false, "", "--version")
	if text.out != flag.out || !strings.HasPrefix(text.out, "outgate "+bi.Version+"\n") || !strings.Contains(text.out, bi.GoVersion) {
		t.Errorf("version %q and --version %q differ or lack the version", text.out, flag.out)
	}
}

// TestHelpShowsOnlyTheFlagsACommandTakes: the global flags appear in the
// help of the commands that take them, with the command's own -o formats.
func TestHelpShowsOnlyTheFlagsACommandTakes(t *testing.T) {
	r := runCLI(t, false, "", "template", "--help")
	if !strings.Contains(r.out, "output format: json or yaml") || strings.Contains(r.out, "--region") || strings.Contains(r.out, "--name") {
		t.Errorf("template --help:\n%s", r.out)
	}
	r = runCLI(t, false, "", "status", "--help")
	for _, want := range []string{"--name", "--region", "--profile", "output format: text or json"} {
		if !strings.Contains(r.out, want) {
			t.Errorf("status --help lacks %s:\n%s", want, r.out)
		}
	}
	if r := runCLI(t, false, "", "status", "--help"); strings.Contains(r.out, "interface-type") {
		t.Error("status still has --interface-type")
	}
	if r := runCLI(t, false, "", "status", "--interface-type", "interface", "--name", "pay"); r.code != 2 {
		t.Errorf("status --interface-type: exit %d, want 2 (unknown flag)", r.code)
	}
}

// TestSDKWarningsNeverReachTheUser: with no credentials on a machine whose
// metadata service refuses IMDSv2 tokens (a loopback stand-in here), the
// SDK would print "SDK ... WARN falling back to IMDSv1" to the process's
// stderr. Only outgate's own one-line error may appear.
func TestSDKWarningsNeverReachTheUser(t *testing.T) {
	isolateAWS(t)
	imds := httptest.NewServer(http.NotFoundHandler())
	defer imds.Close()
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.URL)
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_MAX_ATTEMPTS", "1")
	aws := newRecorder(t)
	t.Setenv("AWS_ENDPOINT_URL", aws)

	// The SDK's default logger writes to os.Stderr itself, not to the
	// command's writer: catch the process's stderr for the run.
	rd, wr, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stderr
	os.Stderr = wr
	caught := make(chan string)
	go func() { b, _ := io.ReadAll(rd); caught <- string(b) }()
	r := runCLI(t, false, "", "status", "--name", "pay")
	os.Stderr = saved
	wr.Close()
	sdk := <-caught
	if sdk != "" {
		t.Errorf("the SDK wrote to stderr: %q", sdk)
	}
	if r.code != 1 || strings.Count(strings.TrimSpace(r.err), "\n") != 0 || !strings.Contains(r.err, "credentials") {
		t.Errorf("want one line about credentials, exit 1; got exit %d, %q", r.code, r.err)
	}
}

// newRecorder is an AWS endpoint that answers nothing useful; the test
// above never gets that far without credentials.
func newRecorder(t *testing.T) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("an AWS call without credentials: %s", r.URL)
		w.WriteHeader(http.StatusBadRequest)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}
