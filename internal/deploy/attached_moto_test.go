package deploy

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"

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
	if _, err := Up(ctx, c, motoUp("iac", TemplateOptions{VPCID: vpcID, SubnetIDs: pub})); err != nil {
		t.Fatal(err)
	}
	st, err := DescribeDeployed(ctx, c.CloudFormation, "iac")
	if err != nil {
		t.Fatal(err)
	}
	relay, err := c.Lambda.GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String(st.Outputs[OutputRelayName])})
	if err != nil {
		t.Fatal(err)
	}
	sg := relay.VpcConfig.SecurityGroupIds[0]
	fn := userFunction(t)
	for _, format := range []string{"serverless", "sam", "cdk", "terraform", "cloudformation"} {
		s, err := AttachSnippet(ctx, c.Lambda, c.EC2, st, format, "")
		if err != nil {
			t.Fatalf("%s: %v", format, err)
		}
		for _, want := range append([]string{sg, TagAttached, "iac", "AWSLambdaVPCAccessExecutionRole"}, pub...) {
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
	if _, err := AttachSnippet(ctx, c.Lambda, c.EC2, st, "pulumi", ""); err == nil {
		t.Error("an unknown format was accepted")
	}
	var out bytes.Buffer
	if err := Attach(ctx, c.Lambda, c.IAM, st, fn, 10*time.Millisecond, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "next deploy of "+fn) || !strings.Contains(out.String(), "outgate attach --name iac --print FORMAT") {
		t.Errorf("attach does not say an IaC deploy undoes it:\n%s", out.String())
	}
}
