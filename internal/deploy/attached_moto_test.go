package deploy

import (
	"bytes"
	"context"
	"io"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/outgate/outgate/internal/attach"
	"github.com/outgate/outgate/internal/stack"
	"github.com/outgate/outgate/internal/testutil"
)

// TestAttachPrintsTheDeploymentsIds: `attach --print` resolves the ids
// from the deployment in moto (the relay's own VPC config), in every
// format, changing nothing; a plain attach warns that the function's own
// deploy will undo it and points at --print.
func TestAttachPrintsTheDeploymentsIds(t *testing.T) {
	c, api := motoClients(t)
	ctx := context.Background()
	vpcID, pub := testutil.PublicSubnets(t, api, "10.7.0.0/16", 2)
	st, sg := deployInto(t, c, "iac", vpcID, pub)
	fn := userFunction(t)
	for _, format := range []string{"serverless", "sam", "cdk", "terraform", "cloudformation"} {
		s, err := attach.Snippet(ctx, c.Lambda, c.EC2, st.AttachTarget(), format, "")
		if err != nil {
			t.Fatalf("%s: %v", format, err)
		}
		for _, want := range append([]string{sg, attach.TagAttached, "iac", "AWSLambdaVPCAccessExecutionRole"}, pub...) {
			if !strings.Contains(s, want) {
				t.Errorf("%s: no %q in\n%s", format, want, s)
			}
		}
		if format == "cdk" && (!strings.Contains(s, vpcID) || !strings.Contains(s, "allowPublicSubnet: true")) {
			t.Errorf("cdk: not the deployment's VPC %s, or public subnets refused in eni mode:\n%s", vpcID, s)
		}
	}
	if cfg, _ := c.Lambda.GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String(fn)}); cfg.VpcConfig != nil && len(cfg.VpcConfig.SubnetIds) > 0 {
		t.Errorf("--print changed the function: %+v", cfg.VpcConfig)
	}
	if _, err := attach.Snippet(ctx, c.Lambda, c.EC2, st.AttachTarget(), "pulumi", ""); err == nil {
		t.Error("an unknown format was accepted")
	}
	var out bytes.Buffer
	if err := attach.Attach(ctx, c.Lambda, c.IAM, st.AttachTarget(), fn, 10*time.Millisecond, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "next deploy of "+fn) || !strings.Contains(out.String(), "outgate attach --name iac --print FORMAT") {
		t.Errorf("attach does not say an IaC deploy undoes it:\n%s", out.String())
	}
}

// TestStatusShowsAttachedFunctions, against moto (Lambda, IAM, the Tagging
// API): a function attached with `attach`, one that carries the tag and
// the VPC config from its own IaC, one tagged without any VPC config, and
// one neither tagged nor in the VPC. status lists the tagged ones OK or
// DRIFTED; then a "deploy" of the IaC one that drops its VPC config (as
// `sls deploy` of code without vpc: does) turns it DRIFTED, saying what
// differs and pointing at --print.
func TestStatusShowsAttachedFunctions(t *testing.T) {
	c, api := motoClients(t)
	ctx := context.Background()
	vpcID, pub := testutil.PublicSubnets(t, api, "10.8.0.0/16", 2)
	st, sg := deployInto(t, c, "dr", vpcID, pub)
	byAttach := userFunction(t)
	if err := attach.Attach(ctx, c.Lambda, c.IAM, st.AttachTarget(), byAttach, 10*time.Millisecond, io.Discard); err != nil {
		t.Fatal(err)
	}
	role := aws.String("arn:aws:iam::123456789012:role/user-fn")
	create := func(name string, vpc *lambdatypes.VpcConfig, tags map[string]string) {
		t.Helper()
		if _, err := c.Lambda.(*lambda.Client).CreateFunction(ctx, &lambda.CreateFunctionInput{FunctionName: aws.String(name), Role: role,
			Runtime: lambdatypes.RuntimeProvidedal2023, Handler: aws.String("bootstrap"), VpcConfig: vpc, Tags: tags,
			Code: &lambdatypes.FunctionCode{ZipFile: zipBootstrap([]byte("#!/bin/sh\n"))}}); err != nil {
			t.Fatal(err)
		}
	}
	tag := map[string]string{attach.TagAttached: "dr"}
	create("by-iac", &lambdatypes.VpcConfig{SubnetIds: pub[:1], SecurityGroupIds: []string{sg}}, tag)
	create("tag-only", nil, tag)
	create("unrelated", nil, nil)

	c.CloudWatch = fakeCloudWatch{} // moto cannot speak this client's CloudWatch protocol (see TestStatusReadsTheGuardiansLastRun)
	states := func() (map[string]string, *Status) {
		t.Helper()
		s, err := ReadStatus(ctx, c, "dr")
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, f := range s.Attached {
			got[f.Name] = f.State + " " + strings.Join(f.Differs, "; ")
		}
		return got, s
	}
	got, s := states()
	want := map[string]string{byAttach: "OK ", "by-iac": "OK ", "tag-only": "DRIFTED no VPC config: its calls leave from an IP nobody allowlisted (did its own deploy drop the vpc settings?)"}
	if !maps.Equal(got, want) {
		t.Fatalf("attached functions: %v, want %v", got, want)
	}
	if !containsText(s.NeedsAttention, "function tag-only is DRIFTED") || containsText(s.NeedsAttention, "by-iac") {
		t.Errorf("needs attention: %q", s.NeedsAttention)
	}

	// by-iac's own deploy, from code that does not mention the VPC.
	if _, err := c.Lambda.(*lambda.Client).UpdateFunctionConfiguration(ctx, &lambda.UpdateFunctionConfigurationInput{FunctionName: aws.String("by-iac"),
		VpcConfig: &lambdatypes.VpcConfig{SubnetIds: []string{}, SecurityGroupIds: []string{}}}); err != nil {
		t.Fatal(err)
	}
	got, s = states()
	if !strings.HasPrefix(got["by-iac"], "DRIFTED no VPC config") || got[byAttach] != "OK " {
		t.Errorf("after a deploy that dropped the VPC config: %v", got)
	}
	if !containsText(s.NeedsAttention, "function by-iac is DRIFTED") || !containsText(s.NeedsAttention, "outgate attach --name dr --print FORMAT") {
		t.Errorf("needs attention: %q", s.NeedsAttention)
	}
}

// deployInto deploys name into an existing VPC's public subnets and
// returns the stack and the relay's security group.
func deployInto(t *testing.T, c Clients, name, vpcID string, pub []string) (*Deployed, string) {
	t.Helper()
	ctx := context.Background()
	if _, err := Up(ctx, c, motoUp(name, stack.TemplateOptions{VPCID: vpcID, SubnetIDs: pub})); err != nil {
		t.Fatal(err)
	}
	st, err := DescribeDeployed(ctx, c.CloudFormation, name)
	if err != nil {
		t.Fatal(err)
	}
	relay, err := c.Lambda.GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String(st.Outputs[stack.OutputRelayName])})
	if err != nil {
		t.Fatal(err)
	}
	return st, relay.VpcConfig.SecurityGroupIds[0]
}
