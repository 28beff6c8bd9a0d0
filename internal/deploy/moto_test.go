package deploy

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/lambda"

	"github.com/outgate/outgate/internal/keys"
	"github.com/outgate/outgate/internal/stack"
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

// motoUp is up's options for a test deployment: a one-client config, fast
// polling, the fake zips.
func motoUp(name string, tpl stack.TemplateOptions) UpOptions {
	cfg := []byte("clients: [{name: a, key_sha256: " + keys.Hash("og_x") + ", hosts: [api.example]}]\n")
	return UpOptions{Name: name, Template: tpl, ConfigYAML: cfg, Poll: 50 * time.Millisecond, Out: io.Discard, Zips: fakeZips}
}

// noGuardianRuns drops the wait for a guardian run in flight: moto runs no
// function code.
func noGuardianRuns(t *testing.T) {
	d := guardianRunMax
	guardianRunMax = 10 * time.Millisecond
	t.Cleanup(func() { guardianRunMax = d })
}

// fakeZips stands in for the function code: moto stores it and never runs it.
func fakeZips(context.Context, string) (Zip, Zip, error) {
	return Zip{"outgate-relay", zipBootstrap([]byte("relay"))}, Zip{"outgate-guardian", zipBootstrap([]byte("guardian"))}, nil
}

// TestSwitchModesKeepsTheIPs: eni -> nat -> eni on one deployment in an
// existing VPC. Going to nat first stops the guardian (reserved concurrency
// 0) and takes the IP off the relay's ENI, then the NAT gateway gets
// that same allocation and the relay moves into a private subnet outgate
// adds (a free block, in the public subnet's AZ, routed to the NAT
// gateway). Going back removes the NAT gateway and the private subnet;
// the IP is free for the guardian again. moto has no Lambda ENIs, so one
// created by hand stands in for the relay's.
func TestSwitchModesKeepsTheIPs(t *testing.T) {
	c, api := motoClients(t)
	ctx := context.Background()
	vpcID, pub := testutil.PublicSubnets(t, api, "10.7.0.0/16", 1)
	noGuardianRuns(t)
	o := motoUp("switch", stack.TemplateOptions{VPCID: vpcID, SubnetIDs: pub})
	res, err := Up(ctx, c, o)
	if err != nil {
		t.Fatal(err)
	}
	alloc := res.IPs[0].AllocationID
	eni, err := api.CreateNetworkInterface(ctx, &ec2.CreateNetworkInterfaceInput{SubnetId: aws.String(pub[0])})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := api.AssociateAddress(ctx, &ec2.AssociateAddressInput{AllocationId: aws.String(alloc),
		NetworkInterfaceId: eni.NetworkInterface.NetworkInterfaceId}); err != nil {
		t.Fatal(err)
	}

	o.Template.Mode, o.Set, o.Yes = "nat", map[string]bool{FlagMode: true}, true
	if _, err := Up(ctx, c, o); err != nil {
		t.Fatalf("eni -> nat: %v", err)
	}
	st, err := DescribeDeployed(ctx, c.CloudFormation, "switch")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := st.Resources["Guardian"]; ok {
		t.Error("the guardian is still deployed in nat mode")
	}
	nats, err := api.DescribeNatGateways(ctx, &ec2.DescribeNatGatewaysInput{})
	if err != nil {
		t.Fatal(err)
	}
	var natAlloc, natSubnet string
	for _, n := range nats.NatGateways {
		if n.State == "deleted" || len(n.NatGatewayAddresses) == 0 {
			continue
		}
		natAlloc, natSubnet = aws.ToString(n.NatGatewayAddresses[0].AllocationId), aws.ToString(n.SubnetId)
	}
	if natAlloc != alloc || natSubnet != pub[0] {
		t.Fatalf("NAT gateway holds %q in %q; want the deployment's %s in %s", natAlloc, natSubnet, alloc, pub[0])
	}
	privID := st.Resources["PrivateSubnet0"]
	subs, err := api.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{SubnetIds: []string{privID}})
	if err != nil || len(subs.Subnets) != 1 {
		t.Fatalf("private subnet %q: %v", privID, err)
	}
	if p := subs.Subnets[0]; aws.ToString(p.CidrBlock) != "10.7.255.0/24" || aws.ToString(p.AvailabilityZone) != "us-east-1a" {
		t.Errorf("private subnet %s in %s, want the VPC's last free /24 in the public subnet's AZ", aws.ToString(p.CidrBlock), aws.ToString(p.AvailabilityZone))
	}
	// moto records no association for a SubnetRouteTableAssociation made by
	// CloudFormation, so the route is checked on the stack's route table and
	// the association on the template (TestTemplateShape).
	rts, _ := api.DescribeRouteTables(ctx, &ec2.DescribeRouteTablesInput{RouteTableIds: []string{st.Resources["PrivateRouteTable0"]}})
	if len(rts.RouteTables) != 1 || !routesTo(rts.RouteTables[0], "nat-") {
		t.Errorf("the private route table's default route does not go to the NAT gateway: %+v", rts.RouteTables)
	}
	// status in nat mode: a relay ENI in the private subnet has no public IP
	// and that is right; the IP is on the NAT gateway. (moto makes no Lambda
	// ENIs: a plain one with the relay's security group stands in.)
	relayENI, err := api.CreateNetworkInterface(ctx, &ec2.CreateNetworkInterfaceInput{SubnetId: aws.String(privID),
		Groups: []string{st.Resources["RelaySecurityGroup"]}})
	if err != nil {
		t.Fatal(err)
	}
	inUse(t, api, privID, aws.ToString(relayENI.NetworkInterface.NetworkInterfaceId))
	c.CloudWatch = fakeCloudWatch{} // moto cannot speak CloudWatch's RPC v2 CBOR (status reads the alarms)
	s, err := readStatus(ctx, c, "switch", "interface")
	if err != nil {
		t.Fatal(err)
	}
	if len(s.NeedsAttention) != 0 || len(s.ENIs) != 1 || len(s.IPs) != 1 || s.IPs[0].AttachedTo == "" {
		t.Errorf("status in nat mode: %+v", s)
	}
	// Up again in nat mode keeps the private subnet where it is.
	if _, err := Up(ctx, c, o); err != nil {
		t.Fatalf("nat again: %v", err)
	}
	if again, _ := DescribeDeployed(ctx, c.CloudFormation, "switch"); again.Resources["PrivateSubnet0"] != privID {
		t.Errorf("a second nat up replaced the private subnet %s with %s", privID, again.Resources["PrivateSubnet0"])
	}

	o.Template.Mode = "eni"
	if _, err := Up(ctx, c, o); err != nil {
		t.Fatalf("nat -> eni: %v", err)
	}
	st, _ = DescribeDeployed(ctx, c.CloudFormation, "switch")
	if _, ok := st.Resources["Guardian"]; !ok {
		t.Error("no guardian after switching back to eni")
	}
	if _, ok := st.Resources["NatGateway0"]; ok {
		t.Error("the NAT gateway is still in the stack after switching back to eni")
	}
	ips, _ := ListIPs(ctx, c.EC2, "switch")
	if len(ips) != 1 || ips[0].AllocationID != alloc {
		t.Errorf("after eni -> nat -> eni the deployment's IPs are %+v, want just %s", ips, alloc)
	}
}

// inUse attaches an ENI to an instance so its status is in-use, as a
// Lambda ENI's is.
func inUse(t *testing.T, api *ec2.Client, subnet, eni string) {
	t.Helper()
	ctx := context.Background()
	images, err := api.DescribeImages(ctx, &ec2.DescribeImagesInput{})
	if err != nil || len(images.Images) == 0 {
		t.Fatalf("moto has no image to start an instance from: %v", err)
	}
	run, err := api.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: images.Images[0].ImageId, MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		SubnetId: aws.String(subnet)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := api.AttachNetworkInterface(ctx, &ec2.AttachNetworkInterfaceInput{NetworkInterfaceId: aws.String(eni),
		InstanceId: run.Instances[0].InstanceId, DeviceIndex: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
}

func routesTo(rt ec2types.RouteTable, prefix string) bool {
	for _, r := range rt.Routes {
		if aws.ToString(r.DestinationCidrBlock) == "0.0.0.0/0" && strings.HasPrefix(aws.ToString(r.NatGatewayId), prefix) {
			return true
		}
	}
	return false
}

// TestStatusReadsTheGuardiansLastRun: status reports the newest EnisWithoutIp
// datapoint the guardian published, and asks for attention without one.
func TestStatusReadsTheGuardiansLastRun(t *testing.T) {
	c, api := motoClients(t)
	ctx := context.Background()
	vpcID, pub := testutil.PublicSubnets(t, api, "10.6.0.0/16", 1)
	if _, err := Up(ctx, c, motoUp("st", stack.TemplateOptions{VPCID: vpcID, SubnetIDs: pub})); err != nil {
		t.Fatal(err)
	}
	// moto cannot speak the protocol this CloudWatch client uses (RPC v2
	// CBOR), so CloudWatch is an in-memory fake behind the same narrow
	// interface here; first with no datapoints at all.
	c.CloudWatch = fakeCloudWatch{}
	s, err := ReadStatus(ctx, c, "st")
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
	s, _ = ReadStatus(ctx, c, "st")
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

// TestFailedSwitchRestartsTheGuardian: when an eni -> nat switch fails with
// the stack back in eni mode, the guardian stopped for the hand-over runs
// again (its reserved concurrency is removed), so it puts the IPs back.
func TestFailedSwitchRestartsTheGuardian(t *testing.T) {
	c, api := motoClients(t)
	ctx := context.Background()
	vpcID, pub := testutil.PublicSubnets(t, api, "10.8.0.0/16", 1)
	noGuardianRuns(t)
	o := motoUp("resume", stack.TemplateOptions{VPCID: vpcID, SubnetIDs: pub})
	if _, err := Up(ctx, c, o); err != nil {
		t.Fatal(err)
	}
	o.Template.Mode = "nat"
	st, err := DescribeDeployed(ctx, c.CloudFormation, "resume")
	if err != nil {
		t.Fatal(err)
	}
	fn, err := handOverIPs(ctx, c, o, st, func(string, ...any) {})
	if err != nil || fn == "" {
		t.Fatalf("hand-over: %q, %v", fn, err)
	}
	lc := c.Lambda.(*lambda.Client)
	reserved := func() *int32 {
		out, err := lc.GetFunctionConcurrency(ctx, &lambda.GetFunctionConcurrencyInput{FunctionName: aws.String(fn)})
		if err != nil {
			t.Fatal(err)
		}
		return out.ReservedConcurrentExecutions
	}
	if r := reserved(); r == nil || *r != 0 {
		t.Fatalf("the guardian is not stopped during the hand-over: reserved concurrency %v", r)
	}
	var said []string
	resumeGuardian(ctx, c, "resume", fn, func(f string, a ...any) { said = append(said, fmt.Sprintf(f, a...)) })
	// Back to what the stack gives it: one run at a time, not throttled and
	// not unbounded.
	if r := reserved(); r == nil || *r != 1 {
		t.Errorf("after a failed switch the guardian's reserved concurrency is %v, want 1 (the stack's): %v", r, said)
	}
}
