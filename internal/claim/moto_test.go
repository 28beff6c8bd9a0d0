package claim

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/outgate/outgate/internal/guardian"
	"github.com/outgate/outgate/internal/testutil"
)

// motoEnv is a VPC with one subnet in moto, the EC2 wire protocol the
// claim speaks in production.
type motoEnv struct {
	t      *testing.T
	ctx    context.Context
	ec2    *ec2.Client
	as     *autoscaling.Client
	subnet string
	image  string
}

func newMoto(t *testing.T) *motoEnv {
	t.Helper()
	testutil.Moto(t)
	ctx := context.Background()
	ac, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	e := &motoEnv{t: t, ctx: ctx, ec2: ec2.NewFromConfig(ac), as: autoscaling.NewFromConfig(ac)}
	vpc, err := e.ec2.CreateVpc(ctx, &ec2.CreateVpcInput{CidrBlock: aws.String("10.0.0.0/16")})
	e.must(err)
	s, err := e.ec2.CreateSubnet(ctx, &ec2.CreateSubnetInput{VpcId: vpc.Vpc.VpcId, CidrBlock: aws.String("10.0.1.0/24")})
	e.must(err)
	e.subnet = aws.ToString(s.Subnet.SubnetId)
	images, err := e.ec2.DescribeImages(ctx, &ec2.DescribeImagesInput{})
	e.must(err)
	e.image = aws.ToString(images.Images[0].ImageId)
	return e
}

func (e *motoEnv) must(err error) {
	e.t.Helper()
	if err != nil {
		e.t.Fatal(err)
	}
}

func tags(kv ...string) []ec2types.Tag {
	var out []ec2types.Tag
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, ec2types.Tag{Key: aws.String(kv[i]), Value: aws.String(kv[i+1])})
	}
	return out
}

// instance runs an instance in the subnet, tagged for deployment (none if "").
func (e *motoEnv) instance(deployment string) string {
	e.t.Helper()
	in := &ec2.RunInstancesInput{ImageId: aws.String(e.image), MinCount: aws.Int32(1), MaxCount: aws.Int32(1), SubnetId: aws.String(e.subnet)}
	if deployment != "" {
		in.TagSpecifications = []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeInstance, Tags: tags(guardian.TagDeployment, deployment)}}
	}
	out, err := e.ec2.RunInstances(e.ctx, in)
	e.must(err)
	return aws.ToString(out.Instances[0].InstanceId)
}

// ip allocates an IP tagged for deployment and subnet.
func (e *motoEnv) ip(deployment, subnet string) (alloc, public string) {
	e.t.Helper()
	a, err := e.ec2.AllocateAddress(e.ctx, &ec2.AllocateAddressInput{Domain: ec2types.DomainTypeVpc, TagSpecifications: []ec2types.TagSpecification{{
		ResourceType: ec2types.ResourceTypeElasticIp, Tags: tags(guardian.TagDeployment, deployment, guardian.TagSubnet, subnet)}}})
	e.must(err)
	return aws.ToString(a.AllocationId), aws.ToString(a.PublicIp)
}

func (e *motoEnv) associate(alloc, instance string) {
	e.t.Helper()
	_, err := e.ec2.AssociateAddress(e.ctx, &ec2.AssociateAddressInput{AllocationId: aws.String(alloc), InstanceId: aws.String(instance)})
	e.must(err)
}

// holder is the instance the IP is associated with now.
func (e *motoEnv) holder(alloc string) string {
	e.t.Helper()
	out, err := e.ec2.DescribeAddresses(e.ctx, &ec2.DescribeAddressesInput{AllocationIds: []string{alloc}})
	e.must(err)
	return aws.ToString(out.Addresses[0].InstanceId)
}

// claimer claims for instance me, with a bounded number of looks and no
// real waiting (the waits are counted).
func (e *motoEnv) claimer(me string, waits *[]time.Duration) *Claimer {
	return &Claimer{EC2: e.ec2, Deployment: "pay", InstanceID: me, SubnetID: e.subnet, MaxAttempts: 3,
		Sleep: func(_ context.Context, d time.Duration) error { *waits = append(*waits, d); return nil }}
}

// TestClaimOverMoto drives every case of the rule moto can set up over the
// real EC2 wire protocol.
func TestClaimOverMoto(t *testing.T) {
	e := newMoto(t)
	ctx := e.ctx

	t.Run("unassociated IP is associated", func(t *testing.T) {
		alloc, public := e.ip("pay", e.subnet)
		defer e.ec2.ReleaseAddress(ctx, &ec2.ReleaseAddressInput{AllocationId: aws.String(alloc)})
		me := e.instance("pay")
		var waits []time.Duration
		got, err := e.claimer(me, &waits).Claim(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got.PublicIP != public || e.holder(alloc) != me {
			t.Fatalf("claimed %+v, holder %s; want %s on %s", got, e.holder(alloc), public, me)
		}
		// One wait: the look that confirms the association (EC2's API is
		// eventually consistent). Claiming again is a no-op.
		if len(waits) != 1 {
			t.Fatalf("waits %v, want one before the confirming look", waits)
		}
		if _, err := e.claimer(me, &waits).Claim(ctx); err != nil || e.holder(alloc) != me || len(waits) != 1 {
			t.Fatalf("second claim: %v, holder %s, waits %v", err, e.holder(alloc), waits)
		}
	})

	refused := []struct {
		name   string
		setup  func(alloc string)
		reason string
	}{
		{"running instance of the deployment", func(alloc string) { e.associate(alloc, e.instance("pay")) }, "which is running"},
		{"instance of another deployment, stopped", func(alloc string) {
			other := e.instance("staging")
			e.associate(alloc, other)
			_, err := e.ec2.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{other}})
			e.must(err)
		}, "another deployment"},
		{"untagged instance, stopped", func(alloc string) {
			other := e.instance("")
			e.associate(alloc, other)
			_, err := e.ec2.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{other}})
			e.must(err)
		}, "another deployment"},
		{"network interface", func(alloc string) {
			eni, err := e.ec2.CreateNetworkInterface(ctx, &ec2.CreateNetworkInterfaceInput{SubnetId: aws.String(e.subnet)})
			e.must(err)
			_, err = e.ec2.AssociateAddress(ctx, &ec2.AssociateAddressInput{AllocationId: aws.String(alloc), NetworkInterfaceId: eni.NetworkInterface.NetworkInterfaceId})
			e.must(err)
		}, "network interface"},
	}
	for _, c := range refused {
		t.Run("never taken from a "+c.name, func(t *testing.T) {
			alloc, _ := e.ip("pay", e.subnet)
			defer e.ec2.ReleaseAddress(ctx, &ec2.ReleaseAddressInput{AllocationId: aws.String(alloc)})
			c.setup(alloc)
			before := e.holder(alloc)
			me := e.instance("pay")
			var waits []time.Duration
			_, err := e.claimer(me, &waits).Claim(ctx)
			if !errors.Is(err, ErrNotClaimed) || !strings.Contains(err.Error(), c.reason) {
				t.Fatalf("err = %v, want ErrNotClaimed saying %q", err, c.reason)
			}
			if h := e.holder(alloc); h != before || h == me {
				t.Fatalf("holder %q, was %q", h, before)
			}
			// Three looks, two backoff waits, doubling.
			if len(waits) != 2 || waits[1] != 2*waits[0] {
				t.Fatalf("waits %v", waits)
			}
		})
	}

	for _, state := range []string{"stopped", "terminated"} {
		t.Run("taken from a "+state+" instance of the deployment", func(t *testing.T) {
			alloc, public := e.ip("pay", e.subnet)
			defer e.ec2.ReleaseAddress(ctx, &ec2.ReleaseAddressInput{AllocationId: aws.String(alloc)})
			old := e.instance("pay")
			e.associate(alloc, old)
			var err error
			if state == "stopped" {
				_, err = e.ec2.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{old}})
			} else {
				_, err = e.ec2.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{old}})
			}
			e.must(err)
			t.Logf("after %s, moto shows the IP on %q", state, e.holder(alloc))
			me := e.instance("pay")
			var waits []time.Duration
			got, err := e.claimer(me, &waits).Claim(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if got.PublicIP != public || e.holder(alloc) != me {
				t.Fatalf("holder %s, want %s", e.holder(alloc), me)
			}
		})
	}

	t.Run("no IP for the subnet, or two", func(t *testing.T) {
		me := e.instance("pay")
		var waits []time.Duration
		_, err := e.claimer(me, &waits).Claim(ctx)
		if !errors.Is(err, ErrNotClaimed) || !strings.Contains(err.Error(), "no IP is tagged") {
			t.Fatalf("err = %v", err)
		}
		a1, _ := e.ip("pay", e.subnet)
		a2, _ := e.ip("pay", e.subnet)
		_, err = e.claimer(me, &waits).Claim(ctx)
		if !strings.Contains(err.Error(), "2 IPs are tagged") || e.holder(a1) != "" || e.holder(a2) != "" {
			t.Fatalf("err = %v", err)
		}
		for _, a := range []string{a1, a2} {
			e.ec2.ReleaseAddress(ctx, &ec2.ReleaseAddressInput{AllocationId: aws.String(a)})
		}
	})
}

// TestEgressVerdictOverMoto: ready only when the egress IP is one of the
// deployment's IPs (read from EC2 by tag), and a wrong IP is flagged.
func TestEgressVerdictOverMoto(t *testing.T) {
	e := newMoto(t)
	_, mine := e.ip("pay", e.subnet)
	_, theirs := e.ip("staging", e.subnet)
	var answer netip.Addr
	eg := &Egress{EC2: e.ec2, Deployment: "pay", EgressIP: func(context.Context) (netip.Addr, error) {
		if !answer.IsValid() {
			return netip.Addr{}, errors.New("no answer")
		}
		return answer, nil
	}}
	if c := eg.Check(e.ctx); c.Ready || c.Wrong || !strings.Contains(c.Reason, "no answer") {
		t.Fatalf("no answer: %+v", c)
	}
	answer = netip.MustParseAddr(theirs)
	if c := eg.Check(e.ctx); c.Ready || !c.Wrong {
		t.Fatalf("another deployment's IP: %+v", c)
	}
	answer = netip.MustParseAddr("::ffff:" + mine)
	if c := eg.Check(e.ctx); !c.Ready || c.Wrong || c.EgressIP.String() != mine {
		t.Fatalf("the deployment's IP: %+v", c)
	}
}

// TestReportUnhealthyOverMoto: the call reaches the instance's Auto
// Scaling group, which marks it Unhealthy (and so replaces it).
func TestReportUnhealthyOverMoto(t *testing.T) {
	e := newMoto(t)
	lt, err := e.ec2.CreateLaunchTemplate(e.ctx, &ec2.CreateLaunchTemplateInput{LaunchTemplateName: aws.String("pay"),
		LaunchTemplateData: &ec2types.RequestLaunchTemplateData{ImageId: aws.String(e.image), InstanceType: ec2types.InstanceTypeT4gNano}})
	e.must(err)
	_, err = e.as.CreateAutoScalingGroup(e.ctx, &autoscaling.CreateAutoScalingGroupInput{AutoScalingGroupName: aws.String("pay-a"),
		MinSize: aws.Int32(1), MaxSize: aws.Int32(1), VPCZoneIdentifier: aws.String(e.subnet),
		LaunchTemplate: &astypes.LaunchTemplateSpecification{LaunchTemplateId: lt.LaunchTemplate.LaunchTemplateId}})
	e.must(err)
	g, err := e.as.DescribeAutoScalingGroups(e.ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{"pay-a"}})
	e.must(err)
	id := aws.ToString(g.AutoScalingGroups[0].Instances[0].InstanceId)
	if err := ReportUnhealthy(e.ctx, e.as, id); err != nil {
		t.Fatal(err)
	}
	out, err := e.as.DescribeAutoScalingInstances(e.ctx, &autoscaling.DescribeAutoScalingInstancesInput{InstanceIds: []string{id}})
	e.must(err)
	if h := aws.ToString(out.AutoScalingInstances[0].HealthStatus); !strings.EqualFold(h, "unhealthy") {
		t.Fatalf("health %q after the report", h)
	}
}
