package deploy

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/outgate/outgate/internal/stack"
)

// cliDefaults is what `up` passes when no shape flag is given.
var cliDefaults = stack.TemplateOptions{Mode: "eni", Front: "url", Arch: "arm64", MemoryMB: 256}

// TestRerunKeepsTheDeployedShape: a plain re-run of up on a nat, 3-AZ, API
// Gateway, x86_64, 1 GB deployment in an existing VPC keeps every one of
// those; only a flag the user set changes one, and a new deployment gets
// two AZs.
func TestRerunKeepsTheDeployedShape(t *testing.T) {
	deployed := stack.TemplateOptions{Mode: "nat", AZs: 3, VPCID: "vpc-1", SubnetIDs: []string{"subnet-a", "subnet-b", "subnet-c"},
		Endpoints: []string{"s3", "sqs"}, Front: "apigw", Arch: "x86_64", MemoryMB: 1024}
	got := keepShape(cliDefaults, map[string]bool{}, &deployed)
	if !reflect.DeepEqual(got, deployed) {
		t.Errorf("a plain re-run gives %+v, want what is deployed %+v", got, deployed)
	}
	if ch := diffShape(deployed, got); len(ch) != 0 {
		t.Errorf("a plain re-run changes %v", ch)
	}

	want := cliDefaults
	want.Arch = "arm64"
	got = keepShape(want, map[string]bool{FlagArch: true}, &deployed)
	if got.Arch != "arm64" || got.Mode != "nat" || got.AZs != 3 || got.Front != "apigw" {
		t.Errorf("--arch arm64 gives %+v", got)
	}
	if ch := diffShape(deployed, got); len(ch) != 1 || ch[0].Disruptive {
		t.Errorf("--arch is one change that moves no IP: %v", ch)
	}

	// --mode eni: nat-only options do not follow, and the change is
	// disruptive.
	got = keepShape(cliDefaults, map[string]bool{FlagMode: true}, &deployed)
	if got.Mode != "eni" || got.Endpoints != nil || got.AZs != 3 || got.VPCID != "vpc-1" {
		t.Errorf("--mode eni gives %+v", got)
	}
	if ch := diffShape(deployed, got); len(ch) == 0 || !ch[0].Disruptive || !strings.Contains(ch[0].String(), "nat -> eni") {
		t.Errorf("a mode switch is not shown as disruptive: %v", ch)
	}
	// --front url changes the relay URL: disruptive.
	got = keepShape(cliDefaults, map[string]bool{FlagFront: true}, &deployed)
	if ch := diffShape(deployed, got); len(ch) != 1 || !ch[0].Disruptive || ch[0].What != "front door" {
		t.Errorf("--front url: %v", ch)
	}
	// --azs 2 keeps the VPC but needs subnets to match: Normalize says so.
	got = keepShape(stack.TemplateOptions{AZs: 2}, map[string]bool{FlagAZs: true}, &deployed)
	if err := got.Normalize(); err == nil || !strings.Contains(err.Error(), "--azs 2 but 3 subnet ids") {
		t.Errorf("--azs 2 with 3 deployed subnets: %v", err)
	}

	// A new deployment: two AZs unless --azs says otherwise.
	if got := keepShape(cliDefaults, map[string]bool{}, nil); got.AZs != NewDeploymentAZs || NewDeploymentAZs != 2 {
		t.Errorf("a new deployment gets %d AZs, want 2", got.AZs)
	}
	one := cliDefaults
	one.AZs = 1
	if got := keepShape(one, map[string]bool{FlagAZs: true}, nil); got.AZs != 1 {
		t.Errorf("--azs 1 on a new deployment gives %d", got.AZs)
	}
}

// TestAddingAnAZKeepsEachNATGatewaysIP: the i-th NAT gateway keeps the
// allocation it holds, whatever the sort order of a new one.
func TestAddingAnAZKeepsEachNATGatewaysIP(t *testing.T) {
	ips := []IP{{AllocationID: "eipalloc-0aaa"}, {AllocationID: "eipalloc-0bbb"}, {AllocationID: "eipalloc-0ccc"}}
	// NatGateway0 holds 0ccc, NatGateway1 holds 0aaa; 0bbb is new.
	got := keepNATMapping(ips, []string{"eipalloc-0ccc", "eipalloc-0aaa"})
	var order []string
	for _, ip := range got {
		order = append(order, ip.AllocationID)
	}
	if want := "eipalloc-0ccc,eipalloc-0aaa,eipalloc-0bbb"; strings.Join(order, ",") != want {
		t.Errorf("order %v, want %s", order, want)
	}
	// A NAT gateway whose IP is gone: the gap is filled, nothing lost.
	got = keepNATMapping(ips[:2], []string{"eipalloc-0zzz", "eipalloc-0aaa"})
	if len(got) != 2 || got[1].AllocationID != "eipalloc-0aaa" || got[0].AllocationID != "eipalloc-0bbb" {
		t.Errorf("with a lost IP: %+v", got)
	}
}

// TestEndpointSecurityGroupAdmitsEveryVPCBlock: in an existing VPC with two
// CIDR blocks, the interface endpoints' security group admits HTTPS from
// both (with private DNS on, a client in the secondary block resolves the
// service to the endpoint too), each from the VpcCidr list parameter.
func TestEndpointSecurityGroupAdmitsEveryVPCBlock(t *testing.T) {
	st, err := stack.Template(stack.TemplateOptions{Mode: "nat", AZs: 1, VPCID: "vpc-1", SubnetIDs: []string{"subnet-a"}, Endpoints: []string{"sqs"}, VPCBlocks: 2})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := stack.Render(st, "json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Parameters map[string]struct{ Type string }
		Resources  map[string]struct {
			Properties struct {
				SecurityGroupIngress []struct {
					CidrIp   any
					FromPort int
				}
			}
		}
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	in := doc.Resources["EndpointSecurityGroup"].Properties.SecurityGroupIngress
	if len(in) != 2 || doc.Parameters[stack.ParamVPCCIDR].Type != "CommaDelimitedList" {
		t.Fatalf("ingress %+v, parameter %+v", in, doc.Parameters[stack.ParamVPCCIDR])
	}
	for i, r := range in {
		b, _ := json.Marshal(r.CidrIp)
		if want := fmt.Sprintf(`{"Fn::Select":[%d,{"Ref":"VpcCidr"}]}`, i); string(b) != want || r.FromPort != 443 {
			t.Errorf("rule %d: %s port %d, want %s on 443", i, b, r.FromPort, want)
		}
	}
}
