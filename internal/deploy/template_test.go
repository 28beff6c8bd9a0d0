package deploy

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/outgate/outgate/internal/testutil"
)

func variants() map[string]TemplateOptions {
	return map[string]TemplateOptions{
		"eni-1az":           {},
		"eni-3az-apigw":     {AZs: 3, Front: "apigw"},
		"eni-2az-x86":       {AZs: 2, Arch: "x86_64"},
		"eni-existing-vpc":  {VPCID: "vpc-0123456789abcdef0", SubnetIDs: []string{"subnet-0123456789abcdef0", "subnet-0123456789abcdef1"}},
		"nat-1az":           {Mode: "nat"},
		"nat-3az-endpoints": {Mode: "nat", AZs: 3, Endpoints: []string{"s3", "dynamodb", "sqs", "secretsmanager"}},
		"nat-2az-shared":    {Mode: "nat", AZs: 2, SharedNAT: true, Front: "apigw"},
		"nat-existing-vpc": {Mode: "nat", VPCID: "vpc-0123456789abcdef0", SubnetIDs: []string{"subnet-0123456789abcdef0", "subnet-0123456789abcdef1"},
			Endpoints: []string{"s3", "sqs"}},
	}
}

func render(t *testing.T, o TemplateOptions, format string) []byte {
	t.Helper()
	tpl, err := Template(o)
	if err != nil {
		t.Fatal(err)
	}
	out, err := Render(tpl, format)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestTemplatesPassCfnLint runs cfn-lint on every variant, JSON and YAML.
func TestTemplatesPassCfnLint(t *testing.T) {
	lint := testutil.Tool(t, "cfn-lint")
	dir := t.TempDir()
	var files []string
	for name, o := range variants() {
		for _, f := range []string{"json", "yaml"} {
			p := filepath.Join(dir, name+"."+f)
			os.WriteFile(p, render(t, o, f), 0o600)
			files = append(files, p)
		}
	}
	out, err := exec.Command(lint, append([]string{"--format", "parseable", "--"}, files...)...).CombinedOutput()
	if err != nil {
		// Warnings (W) and informational (I) findings are listed but do not fail the test.
		var errs []string
		for _, l := range strings.Split(string(out), "\n") {
			if strings.Contains(l, ":E") {
				errs = append(errs, l)
			}
		}
		if len(errs) > 0 {
			t.Fatalf("cfn-lint errors:\n%s", strings.Join(errs, "\n"))
		}
		t.Logf("cfn-lint findings (not errors):\n%s", out)
	}
}

func TestTemplateShape(t *testing.T) {
	var doc struct {
		Conditions map[string]any
		Resources  map[string]map[string]any
		Parameters map[string]any
		Outputs    map[string]any
	}
	json.Unmarshal(render(t, TemplateOptions{AZs: 2}, "json"), &doc)
	// Conditions stay conditions (goformation would have evaluated them).
	if c := fmt.Sprint(doc.Conditions["CreateEips"]); !strings.Contains(c, "Fn::Equals") || !strings.Contains(c, "EipAllocationIds") {
		t.Errorf("CreateEips = %v", doc.Conditions["CreateEips"])
	}
	if c := fmt.Sprint(doc.Conditions["AllowAllocation"]); !strings.Contains(c, "AllowAllocate") {
		t.Errorf("AllowAllocation = %v", doc.Conditions["AllowAllocation"])
	}
	for i := 0; i < 2; i++ {
		eip := doc.Resources[fmt.Sprintf("Eip%d", i)]
		if eip["DeletionPolicy"] != "Retain" || eip["UpdateReplacePolicy"] != "Retain" || eip["Condition"] != "CreateEips" {
			t.Errorf("Eip%d must be retained and conditional: %v", i, eip)
		}
	}
	for _, r := range []string{"Guardian", "GuardianSchedule", "Relay", "RelayUrl", "RelayUrlPermission", "RelayUrlInvokePermission", "EnisWithoutIpAlarm", "EgressIpAlarm"} {
		if doc.Resources[r] == nil {
			t.Errorf("eni template lacks %s", r)
		}
	}
	if _, nat := doc.Resources["NatGateway0"]; nat {
		t.Error("eni mode has a NAT gateway")
	}
	perm := doc.Resources["RelayUrlInvokePermission"]["Properties"].(map[string]any)
	if perm["InvokedViaFunctionUrl"] != true || perm["Action"] != "lambda:InvokeFunction" {
		t.Errorf("the function URL invoke permission must be limited to URL calls: %v", perm)
	}
	sched := doc.Resources["GuardianSchedule"]["Properties"].(map[string]any)
	if sched["ScheduleExpression"] != "rate(1 minute)" {
		t.Errorf("guardian schedule %v", sched)
	}

	doc.Resources = nil
	json.Unmarshal(render(t, TemplateOptions{Mode: "nat", AZs: 3, SharedNAT: true, Endpoints: []string{"s3", "sqs"}}, "json"), &doc)
	natAlloc := fmt.Sprint(doc.Resources["NatGateway0"]["Properties"].(map[string]any)["AllocationId"])
	if !strings.Contains(natAlloc, "EipAllocationIds") || !strings.Contains(natAlloc, "CreateEips") {
		t.Errorf("the NAT gateway must take the deployment's own IP: %s", natAlloc)
	}
	if doc.Resources["NatGateway0"] == nil || doc.Resources["NatGateway1"] != nil || doc.Resources["Guardian"] != nil || doc.Resources["Eip1"] != nil {
		t.Error("shared NAT: one NAT gateway, one IP, no guardian")
	}
	sg := doc.Resources["EndpointSecurityGroup"]["Properties"].(map[string]any)
	if !strings.Contains(fmt.Sprint(sg["SecurityGroupIngress"]), vpcCIDR) {
		t.Errorf("the interface endpoints' security group must admit the whole VPC: %v", sg)
	}
	if p := doc.Resources["EndpointSqs"]["Properties"].(map[string]any); p["PrivateDnsEnabled"] != true {
		t.Errorf("sqs endpoint %v", p)
	}
	if p := doc.Resources["EndpointS3"]["Properties"].(map[string]any); p["VpcEndpointType"] != "Gateway" {
		t.Errorf("s3 endpoint %v", p)
	}
}

func TestTemplateOptionErrors(t *testing.T) {
	for _, o := range []TemplateOptions{
		{Mode: "vpn"}, {AZs: 4}, {Front: "alb"}, {Arch: "mips"}, {VPCID: "vpc-1"},
		{VPCID: "vpc-1", SubnetIDs: []string{"a"}, AZs: 2},
		{Endpoints: []string{"s3"}}, {Mode: "nat", Endpoints: []string{"S3!"}},
	} {
		if _, err := Template(o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}
