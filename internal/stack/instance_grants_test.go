package stack

import (
	"fmt"
	"strings"
	"testing"

	"github.com/outgate/outgate/internal/claim"
	"github.com/outgate/outgate/internal/instance"
)

// TestInstanceRoleIsTheDeclaredIAM holds the template's instance role to
// the instance side's declared IAM (claim.Grants, instance.Grants, which
// their iam_test.go hold to AWS's Service Authorization Reference): every
// grant is a statement with its action, resource and conditions. moto
// checks no IAM, so on moto a role narrower than the grants passes and a
// real instance gets UnauthorizedOperation; one wider passes too, and a
// compromised instance could do more than it needs. The case this was
// written for: the stack scoped AssociateAddress on network-interface by
// subnet alone while claim.Grants also requires the deployment tag (an
// instance could move a deployment IP onto another workload's interface
// in a shared subnet, which would then call partners from the allowlisted
// address).
func TestInstanceRoleIsTheDeclaredIAM(t *testing.T) {
	sub := strings.NewReplacer("${Partition}", "${AWS::Partition}", "${Region}", "${AWS::Region}",
		"${Account}", "${AWS::AccountId}", "${ConfigParameterPath}", "${ConfigParameterName}")
	for vname, o := range instanceVariants() {
		role := props(t, resources(t, o), "InstanceRole")
		var stmts []string
		for _, p := range role["Policies"].([]any) {
			pd := p.(map[string]any)["PolicyDocument"].(map[string]any)
			for _, s := range pd["Statement"].([]any) {
				stmts = append(stmts, jsonOf(s))
			}
		}
		var refs []string
		for i := range o.AZs {
			refs = append(refs, fmt.Sprintf(`{"Ref":"PublicSubnet%d"}`, i))
		}
		if o.VPCID != "" {
			refs = nil
			for _, id := range o.SubnetIDs {
				refs = append(refs, jsonOf(id))
			}
		}
		var subnets []string
		for _, s := range refs {
			subnets = append(subnets, `{"Fn::Join":["",[{"Fn::Sub":"arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:subnet/"},`+s+`]]}`)
		}
		for _, g := range append(append([]claim.Grant{}, claim.Grants...), instance.Grants...) {
			want := map[string]any{"Effect": "Allow", "Action": g.Action, "Resource": "*"}
			if g.Resource != "*" {
				want["Resource"] = map[string]any{"Fn::Sub": sub.Replace(g.Resource)}
			}
			if len(g.Condition) > 0 {
				eq := map[string]any{}
				for k, v := range g.Condition {
					switch v {
					case "${Deployment}":
						eq[k] = map[string]any{"Ref": "AWS::StackName"}
					case "${SubnetArns}":
						eq[k] = "@SUBNETS@"
					default:
						t.Fatalf("grant %s: the test does not know %s", g.Action, v)
					}
				}
				want["Condition"] = map[string]any{"StringEquals": eq}
			}
			w := strings.ReplaceAll(jsonOf(want), `"@SUBNETS@"`, "["+strings.Join(subnets, ",")+"]")
			found := false
			for _, s := range stmts {
				found = found || s == w
			}
			if !found {
				t.Errorf("%s: the role has no statement %s\nstatements:\n%s", vname, w, strings.Join(stmts, "\n"))
			}
		}
	}
}

// The network interface a launch creates carries outgate:deployment, which
// the AssociateAddress grant on network-interface requires. Auto Scaling's
// PropagateAtLaunch tags instances and volumes only (AWS::AutoScaling::
// AutoScalingGroup TagProperty), so the interface's tag must come from the
// launch template's TagSpecifications, whose ResourceType may be
// network-interface (AWS::EC2::LaunchTemplate TagSpecification).
func TestInstanceInterfaceIsTagged(t *testing.T) {
	lt := props(t, resources(t, instanceVariants()["instance-1az"]), "InstanceLaunchTemplate")["LaunchTemplateData"].(map[string]any)
	if !strings.Contains(jsonOf(lt["TagSpecifications"]), `{"ResourceType":"network-interface","Tags":[{"Key":"outgate:deployment","Value":{"Ref":"AWS::StackName"}}]}`) {
		t.Errorf("the launch template does not tag the network interface: %s", jsonOf(lt["TagSpecifications"]))
	}
}

// TestInstanceRolePolicySize: IAM refuses a role whose inline policies
// together exceed 10,240 characters, white space not counted (IAM User
// Guide, "IAM and AWS STS quotas", reference_iam-quotas.html: "Role policy
// size cannot exceed 10,240 characters"); cfn-lint and moto do not check
// it, and CloudFormation would fail the stack at the role. The policies
// are rendered as CloudFormation would for the longest names: the longest
// deployment name, a 63-character bucket, the config parameter up names,
// every variant's subnets and secrets.
func TestInstanceRolePolicySize(t *testing.T) {
	name := longestName(t)
	vals := map[string]string{"AWS::StackName": name, "AWS::Partition": "aws-us-gov", "AWS::Region": "ap-southeast-77",
		"AWS::AccountId": "123456789012", ParamCodeBucket: strings.Repeat("b", 63),
		ParamBinaryKey: name + "/outgate-linux-arm64-" + strings.Repeat("f", 64), ParamConfig: "/outgate/" + name + "/config"}
	for i := 0; i < MaxAZs; i++ {
		vals[fmt.Sprintf("PublicSubnet%d", i)] = "subnet-0123456789abcdef0"
	}
	var eval func(v any) any
	eval = func(v any) any {
		switch x := v.(type) {
		case []any:
			out := make([]any, len(x))
			for i, e := range x {
				out[i] = eval(e)
			}
			return out
		case map[string]any:
			if r, ok := x["Ref"].(string); ok {
				if s, ok := vals[r]; ok {
					return s
				}
				t.Fatalf("Ref %s: the test does not know it", r)
			}
			if s, ok := x["Fn::Sub"].(string); ok {
				for k, v := range vals {
					s = strings.ReplaceAll(s, "${"+k+"}", v)
				}
				if strings.Contains(s, "${") {
					t.Fatalf("Fn::Sub %s: the test does not know a reference", s)
				}
				return s
			}
			if j, ok := x["Fn::Join"].([]any); ok {
				var parts []string
				for _, p := range eval(j[1]).([]any) {
					parts = append(parts, p.(string))
				}
				return strings.Join(parts, j[0].(string))
			}
			out := map[string]any{}
			for k, e := range x {
				out[k] = eval(e)
			}
			return out
		}
		return v
	}
	for vname, o := range instanceVariants() {
		total := 0
		for _, p := range props(t, resources(t, o), "InstanceRole")["Policies"].([]any) {
			total += len(strings.Join(strings.Fields(jsonOf(eval(p.(map[string]any)["PolicyDocument"]))), ""))
		}
		if total > 10240 {
			t.Errorf("%s: the instance role's inline policies are %d characters; IAM takes 10,240", vname, total)
		}
		t.Logf("%s: %d characters of 10,240", vname, total)
	}
}
