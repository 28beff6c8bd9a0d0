package stack

import (
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	cftypes "github.com/aws/aws-sdk-go-v2/service/cloudformation/types"

	"github.com/outgate/outgate/internal/guardian"
)

// TagPublicSubnets records, on a nat deployment with one shared NAT gateway
// in an existing VPC, the public subnets it was given (space-separated):
// no resource names the ones without a NAT gateway, and a re-run of `up`
// must keep them (internal/deploy/shape.go).
const TagPublicSubnets = "outgate:public-subnets"

// Tags are the stack's own tags, given to CreateChangeSet. CloudFormation
// copies them onto every resource that takes tags, IAM roles and Lambda
// functions included, so each value must be one those services accept (TestNamesAndTagsFitAWSRules): the deployment name,
// and subnet ids separated by spaces (letters, digits, '-' and ' ' are in
// IAM's and Lambda's set; at most 10 ids of 24 characters fit in 256).
func Tags(name string, t TemplateOptions) []cftypes.Tag {
	tags := []cftypes.Tag{{Key: aws.String(guardian.TagDeployment), Value: aws.String(name)}}
	if t.Mode == "nat" && t.SharedNAT && t.VPCID != "" && len(t.SubnetIDs) > 0 {
		tags = append(tags, cftypes.Tag{Key: aws.String(TagPublicSubnets), Value: aws.String(strings.Join(t.SubnetIDs, " "))})
	}
	return tags
}
