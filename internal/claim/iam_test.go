package claim

import (
	"reflect"
	"testing"
)

// requiredIAM is the instance role's statements for the claim's calls, as
// AWS documents them (moto checks no IAM, so only this test holds Grants
// to AWS's rules; docs/aws-behaviour.md marks which of these columns were
// read on the AWS page and which are UNVERIFIED):
//
//   - Service Authorization Reference, "Actions, resources, and condition
//     keys for Amazon EC2"
//     (docs.aws.amazon.com/service-authorization/latest/reference/list_amazonec2.html):
//     DescribeAddresses and DescribeInstances list no resource type, so
//     their Resource must be "*"; AssociateAddress lists elastic-ip
//     (required), instance and network-interface, each taking
//     aws:ResourceTag/${TagKey}, and network-interface also ec2:Subnet
//     (a subnet ARN).
//   - Service Authorization Reference, "Actions, resources, and condition
//     keys for Amazon EC2 Auto Scaling"
//     (.../reference/list_amazonec2autoscaling.html): SetInstanceHealth on
//     autoScalingGroup (ARN
//     arn:${Partition}:autoscaling:${Region}:${Account}:autoScalingGroup:${GroupId}:autoScalingGroupName/${GroupFriendlyName}),
//     scoped by aws:ResourceTag/${TagKey} (autoscaling:ResourceTag/${TagKey}
//     works too; the global key is used as everywhere else in the stack).
//   - AssociateAddress (EC2 API Reference, API_AssociateAddress): with
//     InstanceId "the instance must have exactly one attached network
//     interface", which is the launch template's single ENI, so the call
//     authorizes the instance and its primary ENI.
//
// The instance carries outgate:deployment because the group propagates it
// at launch (PropagateAtLaunch); its network interface because the launch
// template's TagSpecifications tag it at creation (CloudFormation
// AWS::EC2::LaunchTemplate TagSpecification: "the tags to apply to
// resources that are created during instance launch", network-interface
// among them). Both conditions on the interface (AND): the deployment's
// own interfaces, in its subnets, never another workload's.
var requiredIAM = []Grant{
	{"DescribeAddresses", "ec2:DescribeAddresses", "*", nil},
	{"DescribeInstances", "ec2:DescribeInstances", "*", nil},
	{"AssociateAddress", "ec2:AssociateAddress", "arn:${Partition}:ec2:${Region}:${Account}:elastic-ip/*",
		map[string]string{"aws:ResourceTag/outgate:deployment": "${Deployment}"}},
	{"AssociateAddress", "ec2:AssociateAddress", "arn:${Partition}:ec2:${Region}:${Account}:instance/*",
		map[string]string{"aws:ResourceTag/outgate:deployment": "${Deployment}"}},
	{"AssociateAddress", "ec2:AssociateAddress", "arn:${Partition}:ec2:${Region}:${Account}:network-interface/*",
		map[string]string{"aws:ResourceTag/outgate:deployment": "${Deployment}", "ec2:Subnet": "${SubnetArns}"}},
	{"SetInstanceHealth", "autoscaling:SetInstanceHealth",
		"arn:${Partition}:autoscaling:${Region}:${Account}:autoScalingGroup:*:autoScalingGroupName/*",
		map[string]string{"aws:ResourceTag/outgate:deployment": "${Deployment}"}},
}

// TestGrantsAreAWSsRules: the declared IAM is exactly the documented one.
func TestGrantsAreAWSsRules(t *testing.T) {
	if !reflect.DeepEqual(Grants, requiredIAM) {
		t.Errorf("claim.Grants differ from the documented statements:\n got  %+v\n want %+v", Grants, requiredIAM)
	}
}

// TestEveryCallHasAGrant: a method added to EC2 or AutoScaling without its
// IAM would be refused (AccessDenied) on the first real deploy; a grant
// for a method that is gone is a permission nobody uses.
func TestEveryCallHasAGrant(t *testing.T) {
	CheckGrants(t, Grants, reflect.TypeFor[EC2](), reflect.TypeFor[AutoScaling]())
}
