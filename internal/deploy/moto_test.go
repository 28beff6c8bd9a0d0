package deploy

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/outgate/outgate/internal/keys"
	"github.com/outgate/outgate/internal/testutil"
)

func motoClients(t *testing.T) (Clients, *ec2.Client) {
	testutil.Moto(t)
	ac, err := awsconfig.LoadDefaultConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c := NewClients(ac, true)
	return c, c.EC2.(*ec2.Client)
}

// fakeZips stands in for the function code: moto stores it and never runs it.
func fakeZips(context.Context, string) (Zip, Zip, error) {
	return Zip{"outgate-relay", zipBootstrap([]byte("relay"))}, Zip{"outgate-guardian", zipBootstrap([]byte("guardian"))}, nil
}

// TestHandOverIPsAgainstMoto: switching a running eni deployment to nat
// first pauses its guardian (the stack's GuardianState becomes DISABLED)
// and takes the IPs off the relay's ENIs, so the NAT gateways can take them.
// The nat update itself is not run here: after the pause update moto fails
// to remove the IAM role it replaced ("NoSuchEntity"); that the NAT gateways
// get the deployment's allocation ids is checked on the template
// (TestTemplateShape).
func TestHandOverIPsAgainstMoto(t *testing.T) {
	c, api := motoClients(t)
	ctx := context.Background()
	vpc, _ := api.CreateVpc(ctx, &ec2.CreateVpcInput{CidrBlock: aws.String("10.7.0.0/16")})
	sub, _ := api.CreateSubnet(ctx, &ec2.CreateSubnetInput{VpcId: vpc.Vpc.VpcId, CidrBlock: aws.String("10.7.1.0/24")})
	subnet := aws.ToString(sub.Subnet.SubnetId)
	cfg := []byte("clients: [{name: a, key_sha256: " + keys.Hash("og_x") + ", hosts: [api.example]}]\n")
	o := UpOptions{Name: "handover", Template: TemplateOptions{VPCID: aws.ToString(vpc.Vpc.VpcId), SubnetIDs: []string{subnet}},
		ConfigYAML: cfg, Poll: 50 * time.Millisecond, Out: io.Discard, Zips: fakeZips}
	res, err := Up(ctx, c, o)
	if err != nil {
		t.Fatal(err)
	}
	// Stand in for the guardian: the IP sits on an ENI in the deployment's subnet.
	eni, err := api.CreateNetworkInterface(ctx, &ec2.CreateNetworkInterfaceInput{SubnetId: aws.String(subnet)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := api.AssociateAddress(ctx, &ec2.AssociateAddressInput{AllocationId: aws.String(res.IPs[0].AllocationID),
		NetworkInterfaceId: eni.NetworkInterface.NetworkInterfaceId}); err != nil {
		t.Fatal(err)
	}

	o.Template.Mode = "nat"
	if err := handOverIPs(ctx, c, o, func(string, ...any) {}); err != nil {
		t.Fatal(err)
	}
	st, err := DescribeDeployed(ctx, c.CloudFormation, "handover")
	if err != nil {
		t.Fatal(err)
	}
	if st.Parameters[ParamGuardianState] != "DISABLED" {
		t.Errorf("GuardianState = %q, want DISABLED", st.Parameters[ParamGuardianState])
	}
	ips, _ := ListIPs(ctx, c.EC2, "handover")
	if len(ips) != 1 || ips[0].AttachedTo != "" || ips[0].AllocationID != res.IPs[0].AllocationID {
		t.Errorf("after the hand-over the IP must be free and the same: %+v", ips)
	}
	// A nat -> nat (or eni -> eni) run has nothing to hand over.
	o.Template.Mode = "eni"
	if err := handOverIPs(ctx, c, o, func(string, ...any) { t.Error("eni -> eni must not hand over") }); err != nil {
		t.Fatal(err)
	}
}

// TestStatusReadsTheGuardiansLastRun: status reports the newest EnisWithoutIp
// datapoint the guardian published, and asks for attention without one.
func TestStatusReadsTheGuardiansLastRun(t *testing.T) {
	c, api := motoClients(t)
	ctx := context.Background()
	vpc, _ := api.CreateVpc(ctx, &ec2.CreateVpcInput{CidrBlock: aws.String("10.6.0.0/16")})
	sub, _ := api.CreateSubnet(ctx, &ec2.CreateSubnetInput{VpcId: vpc.Vpc.VpcId, CidrBlock: aws.String("10.6.1.0/24")})
	cfg := []byte("clients: [{name: a, key_sha256: " + keys.Hash("og_x") + ", hosts: [api.example]}]\n")
	if _, err := Up(ctx, c, UpOptions{Name: "st", Template: TemplateOptions{VPCID: aws.ToString(vpc.Vpc.VpcId), SubnetIDs: []string{aws.ToString(sub.Subnet.SubnetId)}},
		ConfigYAML: cfg, Poll: 50 * time.Millisecond, Out: io.Discard, Zips: fakeZips}); err != nil {
		t.Fatal(err)
	}
	// moto cannot speak the protocol this CloudWatch client uses (RPC v2
	// CBOR), so CloudWatch is an in-memory fake behind the same narrow
	// interface here; first with no datapoints at all.
	c.CloudWatch = fakeCloudWatch{}
	s, err := ReadStatus(ctx, c, "st", "")
	if err != nil {
		t.Fatal(err)
	}
	if s.Guardian != nil || !containsText(s.NeedsAttention, "no guardian run") {
		t.Errorf("without metrics: %+v", s)
	}
	// What the guardian's EMF lines become in CloudWatch.
	c.CloudWatch = fakeCloudWatch{points: []cwtypes.Datapoint{
		{Timestamp: aws.Time(time.Now().Add(-3 * time.Minute)), Maximum: aws.Float64(0)},
		{Timestamp: aws.Time(time.Now().Add(-1 * time.Minute)), Maximum: aws.Float64(1)},
	}}
	s, _ = ReadStatus(ctx, c, "st", "")
	if s.Guardian == nil || s.Guardian.ENIsWithoutIP != 1 || !containsText(s.NeedsAttention, "without a static IP") {
		t.Errorf("with a run that found an ENI without IP: %+v", s)
	}
}

type fakeCloudWatch struct{ points []cwtypes.Datapoint }

func (f fakeCloudWatch) GetMetricStatistics(_ context.Context, in *cloudwatch.GetMetricStatisticsInput, _ ...func(*cloudwatch.Options)) (*cloudwatch.GetMetricStatisticsOutput, error) {
	if aws.ToString(in.Namespace) != "Outgate" || aws.ToString(in.MetricName) != "EnisWithoutIp" || aws.ToString(in.Dimensions[0].Value) != "st" {
		return &cloudwatch.GetMetricStatisticsOutput{}, nil
	}
	return &cloudwatch.GetMetricStatisticsOutput{Datapoints: f.points}, nil
}

func containsText(list []string, sub string) bool {
	for _, s := range list {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
