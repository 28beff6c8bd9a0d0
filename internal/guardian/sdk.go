package guardian

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/resourcegroupstaggingapi"
)

// EC2 is every EC2 call the guardian makes, and nothing else: there is no
// ReleaseAddress here, so the guardian cannot release an IP. The IAM action
// each one needs is beside it (docs/lambda.md has the whole policy).
type EC2 interface {
	// ec2:DescribeNetworkInterfaces, Resource "*" (it supports no narrower scope).
	DescribeNetworkInterfaces(ctx context.Context, in *ec2.DescribeNetworkInterfacesInput, opts ...func(*ec2.Options)) (*ec2.DescribeNetworkInterfacesOutput, error)
	// ec2:DescribeAddresses, Resource "*".
	DescribeAddresses(ctx context.Context, in *ec2.DescribeAddressesInput, opts ...func(*ec2.Options)) (*ec2.DescribeAddressesOutput, error)
	// ec2:AssociateAddress on elastic-ip/* with aws:ResourceTag/outgate:deployment,
	// and on network-interface/* with ec2:Subnet in the deployment's subnets.
	AssociateAddress(ctx context.Context, in *ec2.AssociateAddressInput, opts ...func(*ec2.Options)) (*ec2.AssociateAddressOutput, error)
	// ec2:DisassociateAddress on elastic-ip/* with aws:ResourceTag/outgate:deployment,
	// and on network-interface/* with ec2:Subnet (EC2 may authorize it
	// against the ENI too; see docs/lambda.md).
	DisassociateAddress(ctx context.Context, in *ec2.DisassociateAddressInput, opts ...func(*ec2.Options)) (*ec2.DisassociateAddressOutput, error)
	// ec2:CreateTags on elastic-ip/* with aws:ResourceTag/outgate:deployment
	// (the outgate:subnet tag that makes the IP-to-subnet mapping stable).
	CreateTags(ctx context.Context, in *ec2.CreateTagsInput, opts ...func(*ec2.Options)) (*ec2.CreateTagsOutput, error)
	// ec2:AllocateAddress with aws:RequestTag/outgate:deployment, and
	// ec2:CreateTags with ec2:CreateAction=AllocateAddress (EC2 authorizes
	// the tags of the new IP as CreateTags); only used when the deployment
	// allows new IPs (OUTGATE_ALLOW_ALLOCATE=true).
	AllocateAddress(ctx context.Context, in *ec2.AllocateAddressInput, opts ...func(*ec2.Options)) (*ec2.AllocateAddressOutput, error)
}

// Lambda is every Lambda call the guardian makes (the keepalive, and the
// VPC config of the functions attached to the deployment).
type Lambda interface {
	// lambda:GetFunctionConfiguration on the relay function's ARN, and on
	// function:* with aws:ResourceTag/outgate:attached = the deployment
	// (the attached functions, see internal/attached).
	GetFunctionConfiguration(ctx context.Context, in *lambda.GetFunctionConfigurationInput, opts ...func(*lambda.Options)) (*lambda.GetFunctionConfigurationOutput, error)
	// lambda:InvokeFunction on the relay function's ARN.
	Invoke(ctx context.Context, in *lambda.InvokeInput, opts ...func(*lambda.Options)) (*lambda.InvokeOutput, error)
}

// Tagging is the guardian's one Resource Groups Tagging API call: the
// functions tagged outgate:attached=<deployment>. This API rather than
// lambda:ListFunctions because it returns only the tagged functions, so a
// run's cost is bounded by them, not by the account (internal/attached).
type Tagging interface {
	// tag:GetResources, Resource "*" (it supports no narrower scope).
	GetResources(ctx context.Context, in *resourcegroupstaggingapi.GetResourcesInput, opts ...func(*resourcegroupstaggingapi.Options)) (*resourcegroupstaggingapi.GetResourcesOutput, error)
}
