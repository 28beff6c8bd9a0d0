package stack

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// TestTemplateBodyFitsCreateChangeSet holds what up sends to CloudFormation's
// inline limit: CreateChangeSet takes a TemplateBody of at most 51,200 bytes
// (AWS CloudFormation API Reference, CreateChangeSet, "TemplateBody";
// "AWS CloudFormation quotas"), which neither moto nor cfn-lint enforces.
// The indented JSON up used to send passed it at about 35 interface
// endpoints, and by then up had already allocated the Elastic IPs.
func TestTemplateBodyFitsCreateChangeSet(t *testing.T) {
	many := func(n int) []string {
		var e []string
		for i := 0; i < n; i++ {
			e = append(e, fmt.Sprintf("svc%d", i))
		}
		return e
	}
	// Every shipped variant, and a large but reasonable nat deployment:
	// 3 AZs in an existing VPC with 5 blocks and 40 interface endpoints
	// (a VPC takes 50 by default: Amazon VPC User Guide, "Amazon VPC quotas").
	fits := allVariants()
	fits["nat-3az-40-endpoints"] = TemplateOptions{Mode: "nat", AZs: 3, VPCID: "vpc-0123456789abcdef0",
		SubnetIDs: []string{"subnet-0123456789abcdef0", "subnet-0123456789abcdef1", "subnet-0123456789abcdef2"},
		VPCBlocks: 5, Endpoints: append([]string{"s3", "dynamodb"}, many(40)...)}
	for name, o := range fits {
		body, err := TemplateBody(o)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if len(body) > MaxTemplateBody || !json.Valid(body) {
			t.Errorf("%s: %d bytes sent inline (valid JSON: %v)", name, len(body), json.Valid(body))
		}
	}
	// Past the limit: refused by TemplateBody, which up calls before it
	// allocates anything, with a message that says what to drop.
	_, err := TemplateBody(TemplateOptions{Mode: "nat", AZs: 3, Endpoints: many(120)})
	if err == nil || !strings.Contains(err.Error(), "51200") || !strings.Contains(err.Error(), "--endpoints") {
		t.Errorf("a template CloudFormation cannot take inline: %v", err)
	}
}
