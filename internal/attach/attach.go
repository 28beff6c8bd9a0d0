// Package attach is `outgate attach` and `outgate detach`: it moves a user's
// Lambda function into a deployment's subnets with the relay's security
// group (so it shares the relay's ENIs and static IPs), keeps its previous
// VPC config in a tag to restore it, and prints the same settings as a
// snippet of the user's own infrastructure code.
package attach

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/outgate/outgate/internal/attached"
	"github.com/outgate/outgate/internal/awserr"
	"github.com/outgate/outgate/internal/ctxutil"
	"github.com/outgate/outgate/internal/iacsnippet"
)

// FunctionEditor is what attach and detach call on the user's function.
type FunctionEditor interface {
	GetFunctionConfiguration(ctx context.Context, in *lambda.GetFunctionConfigurationInput, opts ...func(*lambda.Options)) (*lambda.GetFunctionConfigurationOutput, error)
	UpdateFunctionConfiguration(ctx context.Context, in *lambda.UpdateFunctionConfigurationInput, opts ...func(*lambda.Options)) (*lambda.UpdateFunctionConfigurationOutput, error)
	ListTags(ctx context.Context, in *lambda.ListTagsInput, opts ...func(*lambda.Options)) (*lambda.ListTagsOutput, error)
	TagResource(ctx context.Context, in *lambda.TagResourceInput, opts ...func(*lambda.Options)) (*lambda.TagResourceOutput, error)
	UntagResource(ctx context.Context, in *lambda.UntagResourceInput, opts ...func(*lambda.Options)) (*lambda.UntagResourceOutput, error)
}

// RolePolicyAttacher gives the function's role the VPC access it needs.
type RolePolicyAttacher interface {
	AttachRolePolicy(ctx context.Context, in *iam.AttachRolePolicyInput, opts ...func(*iam.Options)) (*iam.AttachRolePolicyOutput, error)
}

// Tags on an attached function.
const (
	TagAttached    = attached.Tag           // the deployment it is attached to (the guardian and status check these)
	TagPreviousVPC = "outgate:previous-vpc" // "subnet-a,subnet-b|sg-1,sg-2", or "none"
)

// Deployment is what attach needs of a running deployment.
type Deployment struct {
	Name  string // the deployment (stack) name
	Relay string // the relay function's name
	// ENIMode: the relay runs in public subnets (eni mode, with a guardian).
	ENIMode bool
}

// vpcAccessPolicy is the managed policy's ARN in the role's partition.
func vpcAccessPolicy(roleARN string) string {
	partition := "aws"
	if parts := strings.SplitN(roleARN, ":", 3); len(parts) == 3 && parts[1] != "" {
		partition = parts[1]
	}
	return "arn:" + partition + ":iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
}

// Attach puts a user's function into the deployment's subnets with exactly
// the deployment's security group. Lambda shares one ENI per (security
// groups x subnet), so the function then uses the relay's ENIs and their
// static IPs. Its previous VpcConfig is kept in a tag for Detach.
func Attach(ctx context.Context, fn FunctionEditor, roles RolePolicyAttacher, d Deployment, function string, poll time.Duration, out io.Writer) error {
	// The relay's own VpcConfig is the truth: the function must match its
	// security-group set and subnets exactly to share its ENIs.
	rc, err := relayVPC(ctx, fn, d)
	if err != nil {
		return err
	}
	subnets, sg := rc.VpcConfig.SubnetIds, rc.VpcConfig.SecurityGroupIds[0]
	fmt.Fprintf(out, "note: the next deploy of %s by its own tool (Serverless, SAM, CDK, Terraform, CloudFormation) puts it back outside unless its code carries this VPC config: `outgate attach --name %s --print FORMAT` prints it\n", function, d.Name)
	cfg, tags, err := readFunction(ctx, fn, function)
	if err != nil {
		return err
	}
	arn := aws.ToString(cfg.FunctionArn)
	if other := tags[TagAttached]; other != "" && other != d.Name {
		return fmt.Errorf("%s is attached to deployment %s; detach it there first", function, other)
	}
	if tags[TagAttached] == "" {
		prev := "none"
		if v := cfg.VpcConfig; v != nil && len(v.SubnetIds) > 0 {
			prev = strings.Join(v.SubnetIds, ",") + "|" + strings.Join(v.SecurityGroupIds, ",")
			fmt.Fprintf(out, "note: %s was in VPC %s; it leaves it (detach restores it)\n", function, aws.ToString(v.VpcId))
		}
		if len(prev) > 256 {
			return fmt.Errorf("the function's current VPC config is too long to keep in a tag; detach would lose it, so outgate stops")
		}
		if _, err := fn.TagResource(ctx, &lambda.TagResourceInput{Resource: aws.String(arn), Tags: map[string]string{TagAttached: d.Name, TagPreviousVPC: prev}}); err != nil {
			return awserr.Explain("tagging the function (lambda:TagResource)", err)
		}
	}
	role := aws.ToString(cfg.Role)
	if i := strings.LastIndex(role, "/"); i >= 0 {
		if _, err := roles.AttachRolePolicy(ctx, &iam.AttachRolePolicyInput{RoleName: aws.String(role[i+1:]), PolicyArn: aws.String(vpcAccessPolicy(role))}); err != nil {
			return awserr.Explain("giving the function's role VPC access (iam:AttachRolePolicy)", err)
		}
	}
	if _, err := fn.UpdateFunctionConfiguration(ctx, &lambda.UpdateFunctionConfigurationInput{FunctionName: aws.String(function),
		VpcConfig: &lambdatypes.VpcConfig{SubnetIds: subnets, SecurityGroupIds: []string{sg}}}); err != nil {
		return awserr.Explain("moving the function into the deployment's subnets (lambda:UpdateFunctionConfiguration)", err)
	}
	fmt.Fprintf(out, "%s: moving into %s with security group %s\n", function, strings.Join(subnets, ","), sg)
	return waitActive(ctx, fn, function, poll, out)
}

// relayVPC reads the relay's configuration, whose VpcConfig is what an
// attached function must match.
func relayVPC(ctx context.Context, fn FunctionConfigReader, d Deployment) (*lambda.GetFunctionConfigurationOutput, error) {
	relay := d.Relay
	if relay == "" {
		return nil, fmt.Errorf("deployment %s reports no relay function", d.Name)
	}
	rc, err := fn.GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String(relay)})
	if err != nil {
		return nil, awserr.Explain("reading the relay function (lambda:GetFunctionConfiguration)", err)
	}
	if rc.VpcConfig == nil || len(rc.VpcConfig.SubnetIds) == 0 || len(rc.VpcConfig.SecurityGroupIds) != 1 {
		return nil, fmt.Errorf("the relay of %s has no usable VPC config", d.Name)
	}
	return rc, nil
}

// SubnetReader reads subnets (ec2:DescribeSubnets).
type SubnetReader interface {
	DescribeSubnets(ctx context.Context, in *ec2.DescribeSubnetsInput, opts ...func(*ec2.Options)) (*ec2.DescribeSubnetsOutput, error)
}

// FunctionConfigReader reads a function's configuration.
type FunctionConfigReader interface {
	GetFunctionConfiguration(ctx context.Context, in *lambda.GetFunctionConfigurationInput, opts ...func(*lambda.Options)) (*lambda.GetFunctionConfigurationOutput, error)
}

// Snippet is what `attach --print FORMAT` prints: the snippet of the
// user's own infrastructure code that puts a function behind the
// deployment, with the ids of the relay's VPC config (the truth, as for
// Attach). It changes nothing. function is the function's name in that
// code ("" for the provider-level or Globals form).
func Snippet(ctx context.Context, fn FunctionConfigReader, subnets SubnetReader, d Deployment, format, function string) (string, error) {
	rc, err := relayVPC(ctx, fn, d)
	if err != nil {
		return "", err
	}
	// The VPC from the subnets themselves: CDK looks it up by id, and the
	// subnets are what the deployment is made of.
	sn, err := subnets.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{SubnetIds: rc.VpcConfig.SubnetIds})
	if err != nil {
		return "", awserr.Explain("reading the relay's subnets (ec2:DescribeSubnets)", err)
	}
	vpc := ""
	for _, s := range sn.Subnets {
		if v := aws.ToString(s.VpcId); vpc == "" || v == vpc {
			vpc = v
		} else {
			return "", fmt.Errorf("the relay's subnets are in more than one VPC (%s, %s)", vpc, v)
		}
	}
	partition := "aws"
	if parts := strings.SplitN(aws.ToString(rc.FunctionArn), ":", 3); len(parts) == 3 && parts[1] != "" {
		partition = parts[1]
	}
	return iacsnippet.Render(format, iacsnippet.Target{
		Deployment: d.Name, TagKey: TagAttached, VPC: vpc,
		Subnets: rc.VpcConfig.SubnetIds, SecurityGroup: rc.VpcConfig.SecurityGroupIds[0], Partition: partition,
		// eni mode (a guardian) runs the relay in public subnets.
		PublicSubnets: d.ENIMode, Function: function,
	})
}

// Detach restores the VpcConfig saved by Attach.
func Detach(ctx context.Context, fn FunctionEditor, function string, poll time.Duration, out io.Writer) error {
	cfg, tags, err := readFunction(ctx, fn, function)
	if err != nil {
		return err
	}
	arn := aws.ToString(cfg.FunctionArn)
	prev, ok := tags[TagPreviousVPC]
	if !ok {
		return fmt.Errorf("%s is not attached to an outgate deployment", function)
	}
	v := &lambdatypes.VpcConfig{SubnetIds: []string{}, SecurityGroupIds: []string{}}
	if prev != "none" {
		subnets, sgs, _ := strings.Cut(prev, "|")
		v.SubnetIds, v.SecurityGroupIds = strings.Split(subnets, ","), strings.Split(sgs, ",")
	}
	if _, err := fn.UpdateFunctionConfiguration(ctx, &lambda.UpdateFunctionConfigurationInput{FunctionName: aws.String(function), VpcConfig: v}); err != nil {
		return awserr.Explain("restoring the function's VPC config (lambda:UpdateFunctionConfiguration)", err)
	}
	if err := waitActive(ctx, fn, function, poll, out); err != nil {
		return err
	}
	if _, err := fn.UntagResource(ctx, &lambda.UntagResourceInput{Resource: aws.String(arn), TagKeys: []string{TagAttached, TagPreviousVPC}}); err != nil {
		return awserr.Explain("untagging the function (lambda:UntagResource)", err)
	}
	fmt.Fprintf(out, "%s: restored its previous VPC config (%s)\n", function, prev)
	return nil
}

// readFunction returns a function's configuration and tags.
func readFunction(ctx context.Context, fn FunctionEditor, function string) (*lambda.GetFunctionConfigurationOutput, map[string]string, error) {
	cfg, err := fn.GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String(function)})
	if err != nil {
		return nil, nil, awserr.Explain("reading function "+function+" (lambda:GetFunctionConfiguration)", err)
	}
	tags, err := fn.ListTags(ctx, &lambda.ListTagsInput{Resource: cfg.FunctionArn})
	if err != nil {
		return nil, nil, awserr.Explain("reading the function's tags (lambda:ListTags)", err)
	}
	return cfg, tags.Tags, nil
}

// waitActive waits until the function's update is done and it is Active.
func waitActive(ctx context.Context, fn FunctionEditor, function string, poll time.Duration, out io.Writer) error {
	start := time.Now()
	for {
		cfg, err := fn.GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String(function)})
		if err != nil {
			return awserr.Explain("reading function "+function, err)
		}
		switch {
		case cfg.LastUpdateStatus == lambdatypes.LastUpdateStatusFailed:
			return fmt.Errorf("%s: the update failed: %s (%s)", function, aws.ToString(cfg.LastUpdateStatusReason), cfg.LastUpdateStatusReasonCode)
		case cfg.State == lambdatypes.StateFailed:
			return fmt.Errorf("%s: the function failed: %s (%s)", function, aws.ToString(cfg.StateReason), cfg.StateReasonCode)
		case cfg.State == lambdatypes.StateActive && cfg.LastUpdateStatus != lambdatypes.LastUpdateStatusInProgress:
			fmt.Fprintf(out, "%s: Active after %.0fs\n", function, time.Since(start).Seconds())
			return nil
		}
		if err := ctxutil.Sleep(ctx, poll); err != nil {
			return err
		}
	}
}
