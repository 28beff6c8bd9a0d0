package stack

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestGuardianMayDisassociateFromTheRelaysENIs holds the guardian's policy
// to the EC2 authorization model rather than to moto, which checks no IAM.
// DisassociateAddress names only an association id, but EC2 authorizes it
// against the resources it touches: the Service Authorization Reference for
// Amazon EC2 (docs.aws.amazon.com/service-authorization/latest/reference/
// list_amazonec2.html, action DisassociateAddress) gives elastic-ip, and may
// give network-interface and instance as resource types as well. A
// statement on the Elastic IP alone would then be refused when the guardian
// takes an IP back from a retiring ENI, so the ENI side is granted too,
// limited to the relay's subnets like AssociateAddress.
func TestGuardianMayDisassociateFromTheRelaysENIs(t *testing.T) {
	for _, o := range []TemplateOptions{{}, {AZs: 2}, {VPCID: "vpc-0123456789abcdef0", SubnetIDs: []string{"subnet-0123456789abcdef0"}}} {
		var doc struct {
			Resources map[string]struct {
				Properties struct {
					Policies []struct {
						PolicyDocument struct {
							Statement []map[string]any
						}
					}
				}
			}
		}
		if err := json.Unmarshal(render(t, o, "json"), &doc); err != nil {
			t.Fatal(err)
		}
		grants := map[string]map[string]any{} // "action on resource" -> condition
		for _, p := range doc.Resources["GuardianRole"].Properties.Policies {
			for _, st := range p.PolicyDocument.Statement {
				res, _ := json.Marshal(st["Resource"])
				acts, ok := st["Action"].([]any)
				if !ok {
					acts = []any{st["Action"]}
				}
				for _, a := range acts {
					cond, _ := st["Condition"].(map[string]any)
					for _, kind := range []string{"elastic-ip/*", "network-interface/*"} {
						if strings.Contains(string(res), kind) {
							grants[a.(string)+" on "+kind] = cond
						}
					}
				}
			}
		}
		for _, want := range []string{"ec2:DisassociateAddress on elastic-ip/*", "ec2:DisassociateAddress on network-interface/*", "ec2:AssociateAddress on network-interface/*"} {
			cond, ok := grants[want]
			if !ok {
				t.Errorf("%+v: the guardian's role lacks %s (has %v)", o, want, grants)
				continue
			}
			// Never unconditioned: the IP by its deployment tag, the ENI by the relay's subnets.
			c, _ := json.Marshal(cond)
			if !strings.Contains(string(c), "aws:ResourceTag/outgate:deployment") && !strings.Contains(string(c), "ec2:Subnet") {
				t.Errorf("%+v: %s is not scoped: %s", o, want, c)
			}
		}
	}
}

// TestGuardianReadsOnlyAttachedFunctions: the drift check's grants.
// GetFunctionConfiguration returns a function's environment variables, so
// the guardian may read a function other than the relay only when it
// carries outgate:attached=<this stack> (aws:ResourceTag on Lambda's
// function resource type: Service Authorization Reference, "Resource types
// defined by AWS Lambda"; the Lambda Developer Guide's "Resources and
// conditions for Lambda actions" lists GetFunctionConfiguration on a
// Function with aws:ResourceTag/${TagKey}; moto checks no IAM, so the policy
// is held here). The resource pattern function:* covers the unqualified
// ARNs GetResources returns (same guide, "Function resource names").
// tag:GetResources supports no resource-level scope, so it is on "*".
func TestGuardianReadsOnlyAttachedFunctions(t *testing.T) {
	var doc struct {
		Resources map[string]struct {
			Properties struct {
				Policies []struct {
					PolicyDocument struct {
						Statement []map[string]any
					}
				}
			}
		}
	}
	if err := json.Unmarshal(render(t, TemplateOptions{}, "json"), &doc); err != nil {
		t.Fatal(err)
	}
	tagging, attachedRead := false, false
	for _, p := range doc.Resources["GuardianRole"].Properties.Policies {
		for _, st := range p.PolicyDocument.Statement {
			acts, _ := json.Marshal(st["Action"])
			res, _ := json.Marshal(st["Resource"])
			cond, _ := json.Marshal(st["Condition"])
			if strings.Contains(string(acts), "tag:GetResources") {
				tagging = string(res) == `"*"` && string(acts) == `"tag:GetResources"`
			}
			if strings.Contains(string(acts), "lambda:GetFunctionConfiguration") && strings.Contains(string(res), "function:*") {
				attachedRead = string(cond) == `{"StringEquals":{"aws:ResourceTag/outgate:attached":{"Ref":"AWS::StackName"}}}` &&
					string(acts) == `"lambda:GetFunctionConfiguration"`
				if !attachedRead {
					t.Errorf("functions other than the relay are readable beyond the attached ones: %s on %s if %s", acts, res, cond)
				}
			}
		}
	}
	if !tagging || !attachedRead {
		t.Errorf("the guardian's role cannot list (%v) or read (%v) the attached functions", tagging, attachedRead)
	}
}
