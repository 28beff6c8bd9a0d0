package iacsnippet

import (
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/outgate/outgate/internal/testutil"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func target() Target {
	return Target{Deployment: "pay", TagKey: "outgate:attached", VPC: "vpc-0a1b2c3d4e5f60718",
		Subnets: []string{"subnet-0aaaaaaaaaaaaaaa1", "subnet-0bbbbbbbbbbbbbbb2"}, SecurityGroup: "sg-0ccccccccccccccc3",
		Partition: "aws", PublicSubnets: true}
}

// cases are every format, in its default form and for a named function.
func cases() map[string]Target {
	out := map[string]Target{}
	for _, f := range Formats {
		out[f] = target()
		named := target()
		named.Function = "Sender"
		out[f+"-function"] = named
	}
	return out
}

func render(t *testing.T, name string, tg Target) string {
	t.Helper()
	format, _, _ := strings.Cut(name, "-")
	s, err := Render(format, tg)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return s
}

// TestSnippetsMatchGolden holds each snippet to the reviewed text in
// testdata/ (go test ./internal/iacsnippet -update rewrites them).
//
// What the goldens were reviewed against:
//   - Serverless Framework: function vpc.securityGroupIds/subnetIds fall back
//     to provider.vpc, and provider.tags merge under function tags into the
//     function's Tags (serverless/serverless,
//     lib/plugins/aws/package/compile/functions.js); the Framework's own role
//     gets AWSLambdaVPCAccessExecutionRole when any vpc is set
//     (lib/plugins/aws/package/lib/merge-iam-templates.js).
//   - SAM: Globals.Function accepts VpcConfig and Tags (the SAM translator's
//     list of supported Globals properties, as cfn-lint's E0001 prints it;
//     TestSAMAndCloudFormationSnippetsPassCfnLint runs it); Tags on
//     AWS::Serverless::Function is a map; the role SAM makes gets
//     AWSLambdaVPCAccessExecutionRole when VpcConfig is set
//     (samtranslator/model/sam_resources.py).
//   - CDK v2: FunctionOptions.role says a role of your own needs
//     service-role/AWSLambdaVPCAccessExecutionRole added; vpcSubnets refuses
//     public subnets unless allowPublicSubnet (aws-cdk-lib/aws-lambda/lib/function.ts).
//   - The managed policy's ARN is arn:aws:iam::aws:policy/service-role/
//     AWSLambdaVPCAccessExecutionRole ("AWS Managed Policy Reference",
//     AWSLambdaVPCAccessExecutionRole); other partitions swap "aws".
//   - Terraform aws_lambda_function vpc_config {subnet_ids,
//     security_group_ids} and tags; CloudFormation AWS::Lambda::Function
//     VpcConfig {SecurityGroupIds, SubnetIds} and Tags as Key/Value pairs:
//     checked by terraform fmt and cfn-lint in the tests below, not against
//     a provider schema.
func TestSnippetsMatchGolden(t *testing.T) {
	for name, tg := range cases() {
		got := render(t, name, tg)
		path := filepath.Join("testdata", name+".golden")
		if *update {
			if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%s: %v (run with -update to create it)", name, err)
		}
		if got != string(want) {
			t.Errorf("%s differs from %s:\n%s", name, path, got)
		}
	}
}

// TestEverySnippetSaysWhatMatters: the ids, the tag naming the deployment,
// the managed policy and the behaviour note are in every format.
func TestEverySnippetSaysWhatMatters(t *testing.T) {
	tg := target()
	for name, c := range cases() {
		s := render(t, name, c)
		for _, want := range append([]string{tg.SecurityGroup, "outgate:attached", "pay", PolicyName, BehaviourNote}, tg.Subnets...) {
			if !strings.Contains(s, want) {
				t.Errorf("%s lacks %q:\n%s", name, want, s)
			}
		}
	}
}

// TestCDKRoleLineFollowsItsIntroduction: the IAM line that ends "needs it
// added:" is followed by the addManagedPolicy line it introduces, not by the
// behaviour note (which put the code under the wrong sentence).
func TestCDKRoleLineFollowsItsIntroduction(t *testing.T) {
	for name, c := range cases() {
		if f, _, _ := strings.Cut(name, "-"); f != "cdk" {
			continue
		}
		lines := strings.Split(render(t, name, c), "\n")
		for i, l := range lines[:len(lines)-1] {
			if strings.HasSuffix(l, "needs it added:") && !strings.Contains(lines[i+1], "role.addManagedPolicy(") {
				t.Errorf("%s: %q is followed by %q", name, l, lines[i+1])
			}
		}
	}
}

func lookup(t *testing.T, doc any, path ...string) any {
	t.Helper()
	for _, p := range path {
		m, ok := doc.(map[string]any)
		if !ok {
			t.Fatalf("at %q: not a mapping: %v", p, doc)
		}
		doc = m[p]
	}
	return doc
}

func strs(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

// TestYAMLSnippetsParseBack reads the YAML snippets back and finds the
// deployment's ids and the tag exactly where each tool reads them.
func TestYAMLSnippetsParseBack(t *testing.T) {
	tg := target()
	paths := map[string]struct{ vpc, sg, subnets, tags []string }{
		"serverless":              {[]string{"provider", "vpc"}, []string{"securityGroupIds"}, []string{"subnetIds"}, []string{"provider", "tags"}},
		"serverless-function":     {[]string{"functions", "Sender", "vpc"}, []string{"securityGroupIds"}, []string{"subnetIds"}, []string{"functions", "Sender", "tags"}},
		"sam":                     {[]string{"Globals", "Function", "VpcConfig"}, []string{"SecurityGroupIds"}, []string{"SubnetIds"}, []string{"Globals", "Function", "Tags"}},
		"sam-function":            {[]string{"Resources", "Sender", "Properties", "VpcConfig"}, []string{"SecurityGroupIds"}, []string{"SubnetIds"}, []string{"Resources", "Sender", "Properties", "Tags"}},
		"cloudformation":          {[]string{"Resources", "MyFunction", "Properties", "VpcConfig"}, []string{"SecurityGroupIds"}, []string{"SubnetIds"}, nil},
		"cloudformation-function": {[]string{"Resources", "Sender", "Properties", "VpcConfig"}, []string{"SecurityGroupIds"}, []string{"SubnetIds"}, nil},
	}
	for name, p := range paths {
		var doc any
		if err := yaml.Unmarshal([]byte(render(t, name, cases()[name])), &doc); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		vpc := lookup(t, doc, p.vpc...)
		if got := strs(lookup(t, vpc, p.sg...)); !reflect.DeepEqual(got, []string{tg.SecurityGroup}) {
			t.Errorf("%s: security groups %v", name, got)
		}
		if got := strs(lookup(t, vpc, p.subnets...)); !reflect.DeepEqual(got, tg.Subnets) {
			t.Errorf("%s: subnets %v", name, got)
		}
		if p.tags != nil {
			if got := lookup(t, doc, p.tags...).(map[string]any)["outgate:attached"]; got != "pay" {
				t.Errorf("%s: tag %v", name, got)
			}
			continue
		}
		fn := strings.TrimPrefix(p.vpc[1], "")
		props := lookup(t, doc, "Resources", fn, "Properties").(map[string]any)
		tag := props["Tags"].([]any)[0].(map[string]any)
		if tag["Key"] != "outgate:attached" || tag["Value"] != "pay" {
			t.Errorf("%s: tags %v", name, props["Tags"])
		}
		arns := strs(lookup(t, doc, "Resources", fn+"Role", "Properties", "ManagedPolicyArns"))
		if !reflect.DeepEqual(arns, []string{"arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"}) {
			t.Errorf("%s: role policies %v", name, arns)
		}
	}
}

// merge puts a snippet's top-level sections into a minimal template of the
// user's, the way the snippet says to: the properties of the snippet's
// resources are added to those already there.
func merge(t *testing.T, base, snippet string) []byte {
	t.Helper()
	var b, s map[string]any
	if err := yaml.Unmarshal([]byte(base), &b); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal([]byte(snippet), &s); err != nil {
		t.Fatal(err)
	}
	var into func(dst, src map[string]any)
	into = func(dst, src map[string]any) {
		for k, v := range src {
			if sm, ok := v.(map[string]any); ok {
				if dm, ok := dst[k].(map[string]any); ok {
					into(dm, sm)
					continue
				}
			}
			dst[k] = v
		}
	}
	into(b, s)
	out, err := yaml.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

const cfnBase = `
AWSTemplateFormatVersion: "2010-09-09"
Resources:
  %[1]sRole:
    Type: AWS::IAM::Role
    Properties:
      AssumeRolePolicyDocument:
        Version: "2012-10-17"
        Statement:
          - Effect: Allow
            Principal: {Service: lambda.amazonaws.com}
            Action: sts:AssumeRole
  %[1]s:
    Type: AWS::Lambda::Function
    Properties:
      Runtime: provided.al2023
      Handler: bootstrap
      Code: {S3Bucket: bucket, S3Key: key.zip}
      Role: !GetAtt %[1]sRole.Arn
`

const samBase = `
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Resources:
  Sender:
    Type: AWS::Serverless::Function
    Properties:
      Runtime: provided.al2023
      Handler: bootstrap
      CodeUri: s3://bucket/key.zip
`

// TestSAMAndCloudFormationSnippetsPassCfnLint merges each snippet into a
// minimal template of the user's and runs cfn-lint on it (SAM through its
// transform), so a property name or shape the tool would refuse fails here.
func TestSAMAndCloudFormationSnippetsPassCfnLint(t *testing.T) {
	lint := testutil.Tool(t, "cfn-lint")
	dir := t.TempDir()
	for name, base := range map[string]string{
		"cloudformation":          strings.ReplaceAll(cfnBase, "%[1]s", "MyFunction"),
		"cloudformation-function": strings.ReplaceAll(cfnBase, "%[1]s", "Sender"),
		"sam":                     samBase,
		"sam-function":            samBase,
	} {
		// GetAtt's short form does not survive a round trip through a map.
		base = strings.ReplaceAll(base, "!GetAtt MyFunctionRole.Arn", "{\"Fn::GetAtt\": [MyFunctionRole, Arn]}")
		base = strings.ReplaceAll(base, "!GetAtt SenderRole.Arn", "{\"Fn::GetAtt\": [SenderRole, Arn]}")
		path := filepath.Join(dir, name+".yaml")
		if err := os.WriteFile(path, merge(t, base, render(t, name, cases()[name])), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(lint, "--regions", "us-east-1", "--", path).CombinedOutput()
		if err != nil {
			tpl, _ := os.ReadFile(path)
			t.Errorf("%s: cfn-lint: %v\n%s\n%s", name, err, out, tpl)
		}
	}
}

// TestTerraformSnippetIsCanonicalHCL: terraform fmt parses the snippet and
// leaves it as it is (a syntax error, or a layout fmt would change, fails).
func TestTerraformSnippetIsCanonicalHCL(t *testing.T) {
	tf := testutil.Tool(t, "terraform")
	for _, name := range []string{"terraform", "terraform-function"} {
		s := render(t, name, cases()[name])
		cmd := exec.Command(tf, "fmt", "-")
		cmd.Stdin = strings.NewReader(s)
		cmd.Env = append(os.Environ(), "TF_CLI_CONFIG_FILE=/dev/null", "CHECKPOINT_DISABLE=1")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: terraform fmt: %v", name, err)
		}
		if string(out) != s {
			t.Errorf("%s: terraform fmt changes it to:\n%s", name, out)
		}
	}
}

// TestBadInputIsRefused: an unknown format, a name that cannot be an id in
// the tool's language, and ids that are not AWS ids get a clear error.
func TestBadInputIsRefused(t *testing.T) {
	for _, c := range []struct {
		format string
		edit   func(*Target)
		want   string
	}{
		{"pulumi", func(*Target) {}, "--print must be one of serverless, sam, cdk, terraform, cloudformation"},
		{"cloudformation", func(t *Target) { t.Function = "my-fn" }, "letters and digits only"},
		{"terraform", func(t *Target) { t.Function = "9fn" }, "Terraform resource name"},
		{"cdk", func(t *Target) { t.Function = "a'b" }, "name in your code"},
		{"sam", func(t *Target) { t.SecurityGroup = "sg-1; rm" }, "malformed"},
		{"sam", func(t *Target) { t.Subnets = []string{"subnet-0a", "x"} }, `subnet id "x"`},
		{"cdk", func(t *Target) { t.VPC = "" }, "VPC id is unknown"},
	} {
		tg := target()
		c.edit(&tg)
		if _, err := Render(c.format, tg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %+v: %v, want %q", c.format, tg, err, c.want)
		}
	}
}

// TestCDKAllowsPublicSubnetsOnlyInENIMode: in nat mode the subnets are
// private and the snippet must not switch CDK's guard off.
func TestCDKAllowsPublicSubnetsOnlyInENIMode(t *testing.T) {
	tg := target()
	tg.PublicSubnets = false
	s, err := Render("cdk", tg)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(s, "allowPublicSubnet") {
		t.Errorf("nat mode snippet sets allowPublicSubnet:\n%s", s)
	}
}
