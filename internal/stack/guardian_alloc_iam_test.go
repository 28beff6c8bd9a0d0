package stack

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestGuardianMayTagTheIPsItAllocates holds the guardian's allocate policy
// to EC2's tag-on-create rule, which moto does not check: a create call that
// carries TagSpecifications is authorized a second time as ec2:CreateTags
// on the new resource (Amazon EC2 User Guide, "Grant permission to tag
// Amazon EC2 resources during creation"; Service Authorization Reference,
// "Actions, resources, and condition keys for Amazon EC2", AllocateAddress:
// dependent action ec2:CreateTags). The new IP has no tags yet, so the
// role's CreateTags statement on IPs already tagged with the deployment does
// not cover it: without a statement keyed on ec2:CreateAction the guardian's
// AllocateAddress (always tagged) is refused with UnauthorizedOperation
// exactly when the pool is too small and --allow-allocate was asked for.
func TestGuardianMayTagTheIPsItAllocates(t *testing.T) {
	res := resources(t, TemplateOptions{})
	pol := res["GuardianAllocatePolicy"]
	if pol == nil || pol["Condition"] != "AllowAllocation" {
		t.Fatalf("no allocate policy under AllowAllocation: %v", pol)
	}
	var doc struct{ Statement []map[string]any }
	raw, _ := json.Marshal(pol["Properties"].(map[string]any)["PolicyDocument"])
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	var allocate, tagOnCreate bool
	for _, st := range doc.Statement {
		acts, _ := json.Marshal(st["Action"])
		res, _ := json.Marshal(st["Resource"])
		cond, _ := json.Marshal(st["Condition"])
		if !strings.Contains(string(res), ":elastic-ip/*") {
			continue
		}
		switch {
		case strings.Contains(string(acts), "ec2:AllocateAddress"):
			allocate = strings.Contains(string(cond), "aws:RequestTag/outgate:deployment")
		case strings.Contains(string(acts), "ec2:CreateTags"):
			// Only while allocating, and only with the deployment's tag:
			// never a licence to tag (or re-tag) any other IP.
			tagOnCreate = strings.Contains(string(cond), `"ec2:CreateAction":"AllocateAddress"`) &&
				strings.Contains(string(cond), "aws:RequestTag/outgate:deployment")
		}
	}
	if !allocate || !tagOnCreate {
		t.Errorf("allocate scoped by request tag: %v; CreateTags while allocating, scoped by ec2:CreateAction and the request tag: %v\n%s",
			allocate, tagOnCreate, raw)
	}
}
