package claim

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
)

// EC2 is every EC2 call an instance makes about its IP, and nothing else:
// no DisassociateAddress, so an instance can take an IP only by the claim
// rule's reassociation, never leave one bare; no ReleaseAddress, so it can
// never give one up. The IAM action each needs is beside it.
type EC2 interface {
	// ec2:DescribeAddresses, Resource "*" (it supports no narrower scope).
	DescribeAddresses(ctx context.Context, in *ec2.DescribeAddressesInput, opts ...func(*ec2.Options)) (*ec2.DescribeAddressesOutput, error)
	// ec2:DescribeInstances, Resource "*" (it supports no narrower scope):
	// the state and deployment tag of an instance holding the pool IP.
	DescribeInstances(ctx context.Context, in *ec2.DescribeInstancesInput, opts ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
	// ec2:AssociateAddress on elastic-ip/* with
	// aws:ResourceTag/outgate:deployment = the deployment, and on
	// instance/* and network-interface/* with the same condition (the ASG
	// propagates the tag to its instances; their ENIs carry none, so
	// network-interface/* is scoped by ec2:Subnet to the deployment's
	// subnets instead).
	AssociateAddress(ctx context.Context, in *ec2.AssociateAddressInput, opts ...func(*ec2.Options)) (*ec2.AssociateAddressOutput, error)
}

// AutoScaling is the one Auto Scaling call: an instance that cannot serve
// from the right address asks to be replaced.
type AutoScaling interface {
	// autoscaling:SetInstanceHealth on autoScalingGroup:*:autoScalingGroupName/*
	// with aws:ResourceTag/outgate:deployment = the deployment.
	SetInstanceHealth(ctx context.Context, in *autoscaling.SetInstanceHealthInput, opts ...func(*autoscaling.Options)) (*autoscaling.SetInstanceHealthOutput, error)
}

// The SDK's clients are what production passes.
var (
	_ EC2         = (*ec2.Client)(nil)
	_ AutoScaling = (*autoscaling.Client)(nil)
)
