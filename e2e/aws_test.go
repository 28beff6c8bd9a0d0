package e2e

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/outgate/outgate/internal/keys"
	"github.com/outgate/outgate/internal/testutil"
)

// TestUpStatusDownAgainstMoto drives the real CLI against moto_server.
// moto runs the CloudFormation stack, but leaves these resource types as
// placeholders with no physical id: AWS::Scheduler::Schedule,
// AWS::Lambda::Url, AWS::CloudWatch::Alarm, AWS::IAM::Policy; it returns no
// stack Outputs (status reads the resources instead) and cannot make Lambda
// ENIs, so no IP gets attached here. The rest (VPC, subnets, security group,
// roles, both functions with their environment, the S3 staging bucket, the
// SSM config, the Elastic IPs) is checked for real.
func TestUpStatusDownAgainstMoto(t *testing.T) {
	testutil.Moto(t)
	bin := binary(t)
	// An existing VPC with two public subnets: moto cannot delete a stack
	// that creates its own VPC (DependencyViolation on the VPC, although
	// the stack holds nothing else in it), so down is tested this way.
	vpc, subnets := existingVPC(t)
	_, hash := keys.New()
	cfg := filepath.Join(t.TempDir(), "gw.yaml")
	os.WriteFile(cfg, []byte("upstreams: {partner: {url: \"https://api.partner.example\"}}\nclients: [{name: billing, key_sha256: "+hash+", upstreams: [partner]}]\n"), 0o600)
	run := func(args ...string) (string, string, int) {
		t.Helper()
		// A bound, not a wait: up builds the function code, which from an
		// empty build cache on a loaded 2-core CI machine took over 2 minutes.
		ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, args...)
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		cmd.Run()
		return out.String(), errb.String(), cmd.ProcessState.ExitCode()
	}

	// x86_64 like the real up below, so the code is built once.
	out, errs, code := run("up", "--name", "pay", "--config", cfg, "--dry-run", "--arch", "x86_64", "--poll", "100ms", "--wait", "0")
	if code != 0 || !strings.Contains(errs, "dry run: nothing was changed") || !strings.Contains(errs, "Add      Relay") {
		t.Fatalf("dry run: exit %d\n%s\n%s", code, out, errs)
	}
	// Flags that cannot go together are refused before anything is made.
	out, errs, code = run("up", "--name", "pay", "--config", cfg, "--vpc-id", vpc, "--subnet-ids", subnets, "--private-cidrs", "10.9.200.0/24,10.9.201.0/24")
	if code != 2 || !strings.Contains(errs, "--private-cidrs apply to --mode nat") {
		t.Fatalf("--private-cidrs in eni mode: exit %d\n%s\n%s", code, out, errs)
	}
	// --arch x86_64: moto's CloudFormation makes every function x86_64
	// whatever the template says, and up reads the architecture back from
	// the function, so a re-run would otherwise rebuild the code for it.
	out, errs, code = run("up", "--name", "pay", "--config", cfg, "--vpc-id", vpc, "--subnet-ids", subnets, "--arch", "x86_64", "--poll", "100ms", "--wait", "0", "-o", "json")
	if code != 0 {
		t.Fatalf("up: exit %d\n%s\n%s", code, out, errs)
	}
	var up struct {
		Status string
		IPs    []deployIP `json:"ips"`
	}
	if err := json.Unmarshal([]byte(out), &up); err != nil || up.Status != "CREATE_COMPLETE" || len(up.IPs) != 2 {
		t.Fatalf("up result %s: %v\n%s", out, err, errs)
	}
	for _, want := range []string{"allocated Elastic IP", "staged the function code in s3://outgate-123456789012-us-east-1/pay/", "CREATE_COMPLETE", "IPs not attached yet"} {
		if !strings.Contains(errs, want) {
			t.Errorf("up progress lacks %q:\n%s", want, errs)
		}
	}

	out, errs, code = run("status", "--name", "pay", "-o", "json")
	var st struct {
		StackStatus string     `json:"stack_status"`
		Relay       string     `json:"relay_function"`
		IPs         []deployIP `json:"ips"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || st.StackStatus != "CREATE_COMPLETE" || st.Relay != "pay-relay" || len(st.IPs) != 2 {
		t.Fatalf("status: exit %d %s\n%s", code, out, errs)
	}

	// Running up again reuses the same IPs and updates in place.
	out, errs, code = run("up", "--name", "pay", "--config", cfg, "--vpc-id", vpc, "--subnet-ids", subnets, "--poll", "100ms", "--wait", "0", "-o", "json")
	var again struct {
		IPs []deployIP `json:"ips"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &again) != nil || len(again.IPs) != 2 || again.IPs[0].PublicIP != up.IPs[0].PublicIP || up.IPs[0].PublicIP == "" {
		t.Fatalf("second up: exit %d %s\n%s", code, out, errs)
	}

	// A plain re-run, without the VPC flags, keeps the deployment as it is.
	out, errs, code = run("up", "--name", "pay", "--config", cfg, "--poll", "100ms", "--wait", "0", "-o", "json")
	var plain struct {
		Changes []any `json:"changes"`
		IPs     []deployIP
	}
	if code != 0 || json.Unmarshal([]byte(out), &plain) != nil || len(plain.Changes) != 0 || len(plain.IPs) != 2 || !strings.Contains(errs, "mode eni, 2 AZ") {
		t.Fatalf("plain re-run: exit %d %s\n%s", code, out, errs)
	}
	// A change of the relay URL, with no terminal and no --yes: refused, exit 2.
	if _, errs, code := run("up", "--name", "pay", "--config", cfg, "--front", "apigw", "--poll", "100ms", "--wait", "0"); code != 2 || !strings.Contains(errs, "front door: url -> apigw") || !strings.Contains(errs, "--yes") {
		t.Fatalf("--front apigw without --yes: exit %d\n%s", code, errs)
	}
	// An IP the stack uses is not released (moto attaches none to an ENI).
	if _, errs, code := run("ips", "release", "--name", "pay", "--yes", up.IPs[0].PublicIP); code == 0 || !strings.Contains(errs, "still used by the stack") {
		t.Fatalf("releasing an IP in use: exit %d\n%s", code, errs)
	}

	// keys add/revoke change the deployed config and the file deployed from.
	out, errs, code = run("keys", "add", "--name", "pay", "--client", "billing", "--config", cfg, "-o", "json")
	var added struct{ Key, Key_SHA256 string }
	if code != 0 || json.Unmarshal([]byte(out), &added) != nil || !strings.HasPrefix(added.Key, "og_") {
		t.Fatalf("keys add: exit %d %s\n%s", code, out, errs)
	}
	if b, _ := os.ReadFile(cfg); !strings.Contains(string(b), added.Key_SHA256) || !strings.Contains(string(b), hash) {
		t.Errorf("the config file does not hold both keys:\n%s", b)
	}
	out, _, _ = run("keys", "list", "--name", "pay", "-o", "json")
	var listed map[string][]string
	if json.Unmarshal([]byte(out), &listed) != nil || len(listed["billing"]) != 2 {
		t.Errorf("keys list after add: %s", out)
	}
	if out, errs, code := run("keys", "revoke", "--name", "pay", "--client", "billing", "--key-sha256", added.Key_SHA256, "--config", cfg); code != 0 {
		t.Fatalf("keys revoke: %s %s", out, errs)
	}
	out, _, _ = run("keys", "list", "--name", "pay", "-o", "json")
	if json.Unmarshal([]byte(out), &listed) != nil || len(listed["billing"]) != 1 || listed["billing"][0] != hash {
		t.Errorf("keys list after revoke: %s", out)
	}
	if _, errs, code := run("keys", "revoke", "--name", "pay", "--client", "billing", "--key-sha256", hash); code == 0 || !strings.Contains(errs, "only this key") {
		t.Errorf("revoking the last key: %s", errs)
	}

	// A key revoked without --config stays in the file; up refuses to bring it back.
	original, _ := os.ReadFile(cfg)
	out, _, _ = run("keys", "add", "--name", "pay", "--client", "billing", "--config", cfg, "-o", "json")
	if json.Unmarshal([]byte(out), &added) != nil {
		t.Fatalf("keys add: %s", out)
	}
	if _, errs, code := run("keys", "revoke", "--name", "pay", "--client", "billing", "--key-sha256", added.Key_SHA256); code != 0 {
		t.Fatalf("keys revoke without --config: %s", errs)
	}
	if _, errs, code := run("up", "--name", "pay", "--config", cfg, "--poll", "100ms", "--wait", "0"); code == 0 || !strings.Contains(errs, "revoked") {
		t.Fatalf("up with a revoked key in the file: exit %d\n%s", code, errs)
	}
	os.WriteFile(cfg, original, 0o600)

	// attach puts an existing function on the relay's subnets and security
	// group (so it shares the relay's ENIs); detach puts it back.
	fn := userFunction(t)
	out, errs, code = run("attach", "--name", "pay", "--function", fn, "--poll", "100ms")
	if code != 0 || !strings.Contains(out, "now leaves through deployment pay") {
		t.Fatalf("attach: exit %d\n%s\n%s", code, out, errs)
	}
	relayVPC, userVPC := functionVPC(t, st.Relay), functionVPC(t, fn)
	if relayVPC != userVPC || userVPC == "|" {
		t.Fatalf("after attach the function's VPC config is %q, the relay's %q", userVPC, relayVPC)
	}
	if _, errs, code := run("attach", "--name", "other", "--function", fn); code == 0 {
		t.Errorf("attaching to a second deployment succeeded: %s", errs)
	}
	// It says the function's own deploy will undo it, and --print prints the
	// snippet that keeps it in the user's IaC, with the relay's ids.
	if !strings.Contains(errs, "outgate attach --name pay --print FORMAT") {
		t.Errorf("attach does not point at --print:\n%s", errs)
	}
	out, errs, code = run("attach", "--name", "pay", "--print", "terraform", "--function", "sender")
	if subnets, sg, _ := strings.Cut(relayVPC, "|"); code != 0 || !strings.Contains(out, `resource "aws_lambda_function" "sender"`) ||
		!strings.Contains(out, `"outgate:attached" = "pay"`) || !strings.Contains(out, strings.Split(subnets, ",")[0]) || !strings.Contains(out, sg) {
		t.Errorf("attach --print terraform: exit %d\n%s\n%s", code, out, errs)
	}
	if _, errs, code := run("attach", "--name", "pay", "--print", "pulumi"); code != 2 || !strings.Contains(errs, "--print must be one of") {
		t.Errorf("attach --print pulumi: exit %d\n%s", code, errs)
	}
	// status lists it, OK.
	if out, errs, code := run("status", "--name", "pay"); code != 0 || !strings.Contains(out, "attached functions:\n  OK       "+fn) {
		t.Errorf("status with an attached function: exit %d\n%s\n%s", code, out, errs)
	}
	// The attached function stops a mode switch and down, which name it and the fix.
	if _, errs, code := run("up", "--name", "pay", "--config", cfg, "--mode", "nat", "--yes", "--poll", "100ms", "--wait", "0"); code != 1 || !strings.Contains(errs, "outgate detach --function "+fn) {
		t.Fatalf("switch with an attached function: exit %d\n%s", code, errs)
	}
	if _, errs, code := run("down", "--name", "pay", "--poll", "100ms", "--yes"); code != 1 || !strings.Contains(errs, "outgate detach --function "+fn) {
		t.Fatalf("down with an attached function: exit %d\n%s", code, errs)
	}
	// detach and down, run without a terminal, need --yes and change nothing without it.
	if _, errs, code := run("detach", "--function", fn, "--poll", "100ms"); code != 2 || !strings.Contains(errs, "--yes") || functionVPC(t, fn) != relayVPC {
		t.Fatalf("detach without --yes: exit %d, VPC config now %q\n%s", code, functionVPC(t, fn), errs)
	}
	out, errs, code = run("detach", "--function", fn, "--poll", "100ms", "--yes")
	if code != 0 || functionVPC(t, fn) != "|" {
		t.Fatalf("detach: exit %d, VPC config now %q\n%s", code, functionVPC(t, fn), errs)
	}

	interruptSwitch(t, bin, cfg)

	if _, errs, code := run("down", "--name", "pay", "--poll", "100ms"); code != 2 || !strings.Contains(errs, "not a terminal") {
		t.Fatalf("down without --yes: exit %d\n%s", code, errs)
	}
	if _, errs, code := run("status", "--name", "pay"); code != 0 {
		t.Fatalf("down without --yes deleted the stack: %s", errs)
	}
	out, errs, code = run("down", "--name", "pay", "--poll", "100ms", "--yes")
	if code != 0 || !strings.Contains(out, up.IPs[0].PublicIP) || !strings.Contains(out, "kept") {
		t.Fatalf("down: exit %d\n%s\n%s", code, out, errs)
	}
	out, _, _ = run("ips", "list", "--name", "pay", "-o", "json")
	var left []deployIP
	if json.Unmarshal([]byte(out), &left) != nil || len(left) != 2 {
		t.Fatalf("after down the IPs must still exist: %s", out)
	}
	if _, _, code := run("status", "--name", "pay"); code == 0 {
		t.Error("status of a deleted stack succeeded")
	}

	// Releasing off a terminal needs --yes: the IPs piped in are not a
	// confirmation, and nothing is released (typing them back on a terminal
	// is tested in internal/cli).
	cmd := exec.Command(bin, "ips", "release", "--name", "pay", up.IPs[0].PublicIP)
	cmd.Stdin = strings.NewReader(up.IPs[0].PublicIP + "\n")
	if b, _ := cmd.CombinedOutput(); cmd.ProcessState.ExitCode() != 2 || !strings.Contains(string(b), "nothing was released") {
		t.Errorf("release off a terminal without --yes: exit %d, %s", cmd.ProcessState.ExitCode(), b)
	}
	if _, errs, code := run("ips", "release", "--name", "pay", "--yes", "203.0.113.99"); code == 0 || !strings.Contains(errs, "not an IP of deployment") {
		t.Errorf("releasing a foreign IP: %s", errs)
	}
	if out, errs, code := run("ips", "release", "--name", "pay", "--yes", up.IPs[0].PublicIP); code != 0 {
		t.Fatalf("release: %s %s", out, errs)
	}
	out, _, _ = run("ips", "list", "--name", "pay", "-o", "json")
	if json.Unmarshal([]byte(out), &left) != nil || len(left) != 1 {
		t.Fatalf("after releasing one IP: %s", out)
	}
}

// userFunction creates a function outside any VPC, as a user's would be.
func userFunction(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	ac, _ := awsconfig.LoadDefaultConfig(ctx)
	role, err := iam.NewFromConfig(ac).CreateRole(ctx, &iam.CreateRoleInput{RoleName: aws.String("user-fn"),
		AssumeRolePolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}`)})
	if err != nil {
		t.Fatal(err)
	}
	f, err := lambda.NewFromConfig(ac).CreateFunction(ctx, &lambda.CreateFunctionInput{FunctionName: aws.String("sms-sender"),
		Role: role.Role.Arn, Runtime: lambdatypes.RuntimeProvidedal2023, Handler: aws.String("bootstrap"),
		Code: &lambdatypes.FunctionCode{ZipFile: zipOf(t, "bootstrap", "#!/bin/sh\n")}})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(f.FunctionName)
}

// functionVPC is "subnets|security groups" of a function.
func functionVPC(t *testing.T, name string) string {
	t.Helper()
	ctx := context.Background()
	ac, _ := awsconfig.LoadDefaultConfig(ctx)
	c, err := lambda.NewFromConfig(ac).GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	if c.VpcConfig == nil {
		return "|"
	}
	return strings.Join(c.VpcConfig.SubnetIds, ",") + "|" + strings.Join(c.VpcConfig.SecurityGroupIds, ",")
}

func zipOf(t *testing.T, name, content string) []byte {
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	w, _ := zw.Create(name)
	w.Write([]byte(content))
	zw.Close()
	return b.Bytes()
}

type deployIP struct {
	AllocationID string `json:"allocation_id"`
	PublicIP     string `json:"public_ip"`
}

func existingVPC(t *testing.T) (string, string) {
	t.Helper()
	ac, err := awsconfig.LoadDefaultConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	vpc, subnets := testutil.PublicSubnets(t, ec2.NewFromConfig(ac), "10.9.0.0/16", 2)
	return vpc, strings.Join(subnets, ",")
}

// interruptSwitch starts an eni -> nat switch, interrupts it (SIGINT, as
// Ctrl-C does) while it waits for a guardian run to end, and checks that the
// guardian it stopped runs again.
func interruptSwitch(t *testing.T, bin, cfg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "up", "--name", "pay", "--config", cfg, "--mode", "nat", "--yes", "--poll", "100ms", "--wait", "0")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var said strings.Builder
	lines := bufio.NewScanner(stderr)
	for lines.Scan() {
		said.WriteString(lines.Text() + "\n")
		if strings.Contains(lines.Text(), "waiting") && strings.Contains(lines.Text(), "guardian run") {
			cmd.Process.Signal(os.Interrupt)
			break
		}
	}
	for lines.Scan() {
		said.WriteString(lines.Text() + "\n")
	}
	cmd.Wait()
	if !strings.Contains(said.String(), "the guardian runs again") {
		t.Errorf("an interrupted switch did not restart the guardian:\n%s", said.String())
	}
	ac, _ := awsconfig.LoadDefaultConfig(context.Background())
	lc := lambda.NewFromConfig(ac)
	fns, err := lc.ListFunctions(context.Background(), &lambda.ListFunctionsInput{})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fns.Functions {
		if name := aws.ToString(f.FunctionName); name == "pay-guardian" {
			// The switch throttles the guardian to 0; interrupted, it must
			// get the stack's reserved concurrency of 1 back, not stay at 0.
			c, err := lc.GetFunctionConcurrency(context.Background(), &lambda.GetFunctionConcurrencyInput{FunctionName: aws.String(name)})
			if err != nil || aws.ToInt32(c.ReservedConcurrentExecutions) != 1 {
				t.Errorf("after an interrupted switch the guardian's reserved concurrency is %v (%v), not 1", c.ReservedConcurrentExecutions, err)
			}
			return
		}
	}
	t.Error("no guardian function found")
}
