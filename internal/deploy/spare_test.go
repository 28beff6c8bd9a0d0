package deploy

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/outgate/outgate/internal/guardian"
	"github.com/outgate/outgate/internal/stack"
	"github.com/outgate/outgate/internal/testutil"
)

// TestUpSpareIPs: `up --spare-ips 2` in eni mode owns one IP per AZ plus
// two spares, all tagged for the deployment and none for a subnet (so the
// guardian gives a spare to whichever ENI needs one), lists all of them for
// partners, and expects all of them at the egress check. A second up
// allocates nothing more.
func TestUpSpareIPs(t *testing.T) {
	c, api := motoClients(t)
	ctx := context.Background()
	vpcID, pub := testutil.PublicSubnets(t, api, "10.8.0.0/16", 1)
	o := motoUp("spares", stack.TemplateOptions{VPCID: vpcID, SubnetIDs: pub})
	o.SpareIPs = 2
	res, err := Up(ctx, c, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.IPs) != 3 {
		t.Fatalf("up lists %d IPs for partners, want 1 per AZ + 2 spares: %+v", len(res.IPs), res.IPs)
	}
	out, err := api.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{Filters: []ec2types.Filter{
		{Name: aws.String("tag:" + guardian.TagDeployment), Values: []string{"spares"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Addresses) != 3 {
		t.Fatalf("%d IPs tagged for the deployment, want 3", len(out.Addresses))
	}
	for _, a := range out.Addresses {
		for _, tg := range a.Tags {
			if aws.ToString(tg.Key) == guardian.TagSubnet {
				t.Errorf("IP %s is tagged for subnet %s before any ENI used it", aws.ToString(a.PublicIp), aws.ToString(tg.Value))
			}
		}
	}
	st, err := DescribeDeployed(ctx, c.CloudFormation, "spares")
	if err != nil {
		t.Fatal(err)
	}
	for _, ip := range res.IPs {
		if !strings.Contains(st.Parameters[stack.ParamExpectedIPs], ip.PublicIP) {
			t.Errorf("the egress check does not expect %s (ExpectedIps %q)", ip.PublicIP, st.Parameters[stack.ParamExpectedIPs])
		}
	}
	if _, err := Up(ctx, c, o); err != nil {
		t.Fatal(err)
	}
	again, _ := api.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{})
	if len(again.Addresses) != 3 {
		t.Errorf("a second up left %d IPs, want the same 3", len(again.Addresses))
	}
}

func TestSpareIPsOptionErrors(t *testing.T) {
	for _, o := range []UpOptions{
		{SpareIPs: -1, Template: stack.TemplateOptions{Mode: "eni"}},
		{SpareIPs: MaxSpareIPs + 1, Template: stack.TemplateOptions{Mode: "eni"}},
		{SpareIPs: 1, Template: stack.TemplateOptions{Mode: "nat"}},
	} {
		if err := o.checkSpareIPs(); err == nil || !strings.Contains(err.Error(), "--spare-ips") {
			t.Errorf("%+v: %v", o, err)
		}
	}
	if err := (UpOptions{SpareIPs: 2, Template: stack.TemplateOptions{Mode: "eni"}}).checkSpareIPs(); err != nil {
		t.Error(err)
	}
}
