package claim

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
)

// EC2 is every EC2 call an instance makes about its IP, and nothing else:
// no DisassociateAddress, so an instance can take an IP only by the claim
// rule's reassociation, never leave one bare; no ReleaseAddress, so it can
// never give one up. The IAM each needs is in Grants.
type EC2 interface {
	DescribeAddresses(ctx context.Context, in *ec2.DescribeAddressesInput, opts ...func(*ec2.Options)) (*ec2.DescribeAddressesOutput, error)
	// The state and deployment tag of an instance holding the pool IP.
	DescribeInstances(ctx context.Context, in *ec2.DescribeInstancesInput, opts ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
	AssociateAddress(ctx context.Context, in *ec2.AssociateAddressInput, opts ...func(*ec2.Options)) (*ec2.AssociateAddressOutput, error)
}

// AutoScaling is the one Auto Scaling call: an instance that cannot serve
// from the right address asks to be replaced.
type AutoScaling interface {
	SetInstanceHealth(ctx context.Context, in *autoscaling.SetInstanceHealthInput, opts ...func(*autoscaling.Options)) (*autoscaling.SetInstanceHealthOutput, error)
}

// The SDK's clients are what production passes.
var (
	_ EC2         = (*ec2.Client)(nil)
	_ AutoScaling = (*autoscaling.Client)(nil)
)

// Grant is one IAM statement the instance role needs for a call of this
// package: the stack builds the role from Grants, and iam_test.go holds
// them to the AWS Service Authorization Reference (moto checks no IAM).
//
// Resource is an ARN pattern with the placeholders ${Partition},
// ${Region} and ${Account}, or "*" for an action that supports no
// resource-level scope. Condition maps a condition key (StringEquals) to
// its value: ${Deployment} is the deployment name, ${SubnetArns} the ARNs
// of the deployment's subnets.
type Grant struct {
	Call      string // the method of EC2 or AutoScaling
	Action    string
	Resource  string
	Condition map[string]string
}

// tagged scopes a grant to the deployment's own resources (a map per
// grant, so a caller editing one condition cannot change another).
func tagged() map[string]string {
	return map[string]string{"aws:ResourceTag/outgate:deployment": "${Deployment}"}
}

// Grants is every permission the calls above need, each as narrow as IAM
// allows.
var Grants = []Grant{
	// No resource types: Resource must be "*".
	{Call: "DescribeAddresses", Action: "ec2:DescribeAddresses", Resource: "*"},
	{Call: "DescribeInstances", Action: "ec2:DescribeInstances", Resource: "*"},
	// EC2 authorizes AssociateAddress on the Elastic IP and on the instance
	// or network interface it goes to: only the deployment's IPs, onto the
	// deployment's instances (the group propagates the tag at launch) and
	// their network interfaces, which the launch template tags at creation
	// (its TagSpecifications for network-interface) and which lie in the
	// deployment's subnets. Subnet alone would let a compromised instance
	// move a deployment IP onto any other workload's interface in those
	// subnets (a user-supplied VPC is shared), which would then call
	// partners from their allowlisted address.
	{Call: "AssociateAddress", Action: "ec2:AssociateAddress", Resource: "arn:${Partition}:ec2:${Region}:${Account}:elastic-ip/*", Condition: tagged()},
	{Call: "AssociateAddress", Action: "ec2:AssociateAddress", Resource: "arn:${Partition}:ec2:${Region}:${Account}:instance/*", Condition: tagged()},
	{Call: "AssociateAddress", Action: "ec2:AssociateAddress", Resource: "arn:${Partition}:ec2:${Region}:${Account}:network-interface/*",
		Condition: map[string]string{"aws:ResourceTag/outgate:deployment": "${Deployment}", "ec2:Subnet": "${SubnetArns}"}},
	// Only the deployment's own groups (they carry the tag themselves).
	{Call: "SetInstanceHealth", Action: "autoscaling:SetInstanceHealth",
		Resource: "arn:${Partition}:autoscaling:${Region}:${Account}:autoScalingGroup:*:autoScalingGroupName/*", Condition: tagged()},
}
