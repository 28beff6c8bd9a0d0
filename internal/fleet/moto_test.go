package fleet

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/outgate/outgate/internal/testutil"
)

// world is an instance-mode deployment on moto: two public subnets, an IP
// tagged for each, and an Auto Scaling group of one instance per subnet,
// made through the same APIs the stack's resources use. The instances'
// readiness is a CloudWatch metric (on AWS from their EMF log lines):
// moto cannot speak CloudWatch's RPC v2 CBOR protocol, so CloudWatch is
// the in-memory fakeCloudWatch behind the same narrow interface.
type world struct {
	c       Clients
	ec2     *ec2.Client
	cw      *fakeCloudWatch
	groups  []string
	subnets []string
	allocs  []string
	azs     []string
}

func newWorld(t *testing.T) *world {
	t.Helper()
	testutil.Moto(t)
	ctx := context.Background()
	ac, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w := &world{ec2: ec2.NewFromConfig(ac), cw: &fakeCloudWatch{}, azs: []string{"us-east-1a", "us-east-1b"}}
	as := autoscaling.NewFromConfig(ac)
	w.c = Clients{AutoScaling: as, EC2: w.ec2, CloudWatch: w.cw}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	vpc, err := w.ec2.CreateVpc(ctx, &ec2.CreateVpcInput{CidrBlock: aws.String("10.42.0.0/16")})
	must(err)
	images, err := w.ec2.DescribeImages(ctx, &ec2.DescribeImagesInput{})
	must(err)
	lt, err := w.ec2.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{LaunchTemplateName: aws.String("pay"),
		LaunchTemplateData: &ec2types.RequestLaunchTemplateData{ImageId: images.Images[0].ImageId, InstanceType: ec2types.InstanceTypeT4gNano}})
	must(err)
	for i, az := range w.azs {
		s, err := w.ec2.CreateSubnet(ctx, &ec2.CreateSubnetInput{VpcId: vpc.Vpc.VpcId, CidrBlock: aws.String([]string{"10.42.0.0/24", "10.42.1.0/24"}[i]), AvailabilityZone: aws.String(az)})
		must(err)
		subnet := aws.ToString(s.Subnet.SubnetId)
		w.subnets = append(w.subnets, subnet)
		a, err := w.ec2.AllocateAddress(ctx, &ec2.AllocateAddressInput{Domain: ec2types.DomainTypeVpc, TagSpecifications: []ec2types.TagSpecification{{
			ResourceType: ec2types.ResourceTypeElasticIp, Tags: []ec2types.Tag{{Key: aws.String("outgate:deployment"), Value: aws.String("pay")}, {Key: aws.String("outgate:subnet"), Value: aws.String(subnet)}}}}})
		must(err)
		w.allocs = append(w.allocs, aws.ToString(a.AllocationId))
		name := "pay-InstanceGroup" + string(rune('0'+i))
		_, err = as.CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{AutoScalingGroupName: aws.String(name),
			MinSize: aws.Int32(1), MaxSize: aws.Int32(1), DesiredCapacity: aws.Int32(1), VPCZoneIdentifier: aws.String(subnet),
			LaunchTemplate: &astypes.LaunchTemplateSpecification{LaunchTemplateId: lt.LaunchTemplate.LaunchTemplateId, Version: aws.String("$Latest")},
			Tags:           []astypes.Tag{{Key: aws.String("outgate:deployment"), Value: aws.String("pay"), PropagateAtLaunch: aws.Bool(true)}}})
		must(err)
		w.groups = append(w.groups, name)
	}
	return w
}

func (w *world) instance(t *testing.T, i int) string {
	t.Helper()
	gs, err := w.c.Read(context.Background(), "pay", w.groups)
	if err != nil || len(gs[i].Instances) != 1 {
		t.Fatalf("group %d: %v %+v", i, err, gs)
	}
	return gs[i].Instances[0].ID
}

// Read is a method on Clients in tests only for brevity.
func (c Clients) Read(ctx context.Context, d string, g []string) ([]Group, error) {
	return Read(ctx, c, d, g)
}

func (w *world) ready(t *testing.T, az string, v float64) {
	w.cw.points = append(w.cw.points, point{deployment: "pay", az: az, at: time.Now(), v: v})
}

type point struct {
	deployment, az string
	at             time.Time
	v              float64
}

// fakeCloudWatch answers GetMetricStatistics for InstanceReady from the
// points the test reported: one-minute maxima within the asked window.
type fakeCloudWatch struct{ points []point }

func (f *fakeCloudWatch) GetMetricStatistics(_ context.Context, in *cloudwatch.GetMetricStatisticsInput, _ ...func(*cloudwatch.Options)) (*cloudwatch.GetMetricStatisticsOutput, error) {
	dims := map[string]string{}
	for _, d := range in.Dimensions {
		dims[aws.ToString(d.Name)] = aws.ToString(d.Value)
	}
	maxAt := map[time.Time]float64{}
	for _, p := range f.points {
		if aws.ToString(in.Namespace) != Namespace || aws.ToString(in.MetricName) != MetricInstanceReady || dims["Deployment"] != p.deployment || dims["AZ"] != p.az ||
			p.at.Before(aws.ToTime(in.StartTime)) || p.at.After(aws.ToTime(in.EndTime)) {
			continue
		}
		m := p.at.Truncate(time.Minute)
		if v, ok := maxAt[m]; !ok || p.v > v {
			maxAt[m] = p.v
		}
	}
	out := &cloudwatch.GetMetricStatisticsOutput{}
	for m, v := range maxAt {
		out.Datapoints = append(out.Datapoints, cwtypes.Datapoint{Timestamp: aws.Time(m), Maximum: aws.Float64(v)})
	}
	return out, nil
}

func TestReadOnMoto(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	// AZ a: the instance claimed its IP and reports ready. AZ b: its
	// instance has not claimed yet and reports not ready.
	id0 := w.instance(t, 0)
	if _, err := w.ec2.AssociateAddress(ctx, &ec2.AssociateAddressInput{AllocationId: aws.String(w.allocs[0]), InstanceId: aws.String(id0)}); err != nil {
		t.Fatal(err)
	}
	w.ready(t, "us-east-1a", 1)
	w.ready(t, "us-east-1b", 0)
	gs, err := Read(ctx, w.c, "pay", w.groups)
	if err != nil {
		t.Fatal(err)
	}
	a, b := gs[0], gs[1]
	if a.AZ != "us-east-1a" || a.Subnet != w.subnets[0] || a.PoolIP == "" || a.Instances[0].IP != a.PoolIP || a.Instances[0].State != "running" {
		t.Errorf("AZ a: %+v", a)
	}
	if a.Ready == nil || !*a.Ready || a.LastCheck.IsZero() || a.Problem != "" {
		t.Errorf("AZ a readiness: %+v", a)
	}
	if b.Ready == nil || *b.Ready || b.Instances[0].IP != "" || !strings.Contains(b.Problem, "not ready") {
		t.Errorf("AZ b: %+v", b)
	}
	// AZ b's IP on an instance outside the deployment's group: named.
	images, _ := w.ec2.DescribeImages(ctx, &ec2.DescribeImagesInput{})
	other, err := w.ec2.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: images.Images[0].ImageId, MinCount: aws.Int32(1), MaxCount: aws.Int32(1), SubnetId: aws.String(w.subnets[1])})
	if err != nil {
		t.Fatal(err)
	}
	otherID := aws.ToString(other.Instances[0].InstanceId)
	if _, err := w.ec2.AssociateAddress(ctx, &ec2.AssociateAddressInput{AllocationId: aws.String(w.allocs[1]), InstanceId: aws.String(otherID)}); err != nil {
		t.Fatal(err)
	}
	gs, _ = Read(ctx, w.c, "pay", w.groups)
	if !strings.Contains(gs[1].Problem, "held by "+otherID) {
		t.Errorf("AZ b with its IP elsewhere: %q", gs[1].Problem)
	}
	// Release refuses to take an IP from a running instance that is not
	// the deployment's.
	if err := Release(ctx, w.c, "pay", w.groups, time.Minute, 10*time.Millisecond); err == nil || !strings.Contains(err.Error(), "not outgate's") {
		t.Errorf("release with a foreign holder: %v", err)
	}
}

// Release empties the groups and leaves every IP of the deployment
// unassociated, ready for NAT gateways or the guardian; Restore brings
// one instance per group back.
func TestReleaseOnMoto(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	for i := range w.groups {
		if _, err := w.ec2.AssociateAddress(ctx, &ec2.AssociateAddressInput{AllocationId: aws.String(w.allocs[i]), InstanceId: aws.String(w.instance(t, i))}); err != nil {
			t.Fatal(err)
		}
	}
	if err := Release(ctx, w.c, "pay", w.groups, time.Minute, 10*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	out, err := w.ec2.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{AllocationIds: w.allocs})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range out.Addresses {
		if a.AssociationId != nil || a.InstanceId != nil && *a.InstanceId != "" {
			t.Errorf("%s still on %s", aws.ToString(a.PublicIp), aws.ToString(a.InstanceId))
		}
	}
	gs, err := Read(ctx, w.c, "pay", w.groups)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range gs {
		if len(g.Instances) != 0 || !strings.Contains(g.Problem, "no instance") {
			t.Errorf("after release: %+v", g)
		}
	}
	if err := Restore(ctx, w.c, w.groups); err != nil {
		t.Fatal(err)
	}
	gs, _ = Read(ctx, w.c, "pay", w.groups)
	for _, g := range gs {
		if len(g.Instances) != 1 {
			t.Errorf("after restore: %+v", g)
		}
	}
}
