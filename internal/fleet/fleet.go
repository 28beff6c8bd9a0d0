// Package fleet is the control plane's view of an instance-mode
// deployment's instances: which instance runs in each AZ, which of the
// deployment's IPs it holds, whether it reports ready (`outgate status`),
// and how `up` takes the IPs back from them before another mode's holders
// (NAT gateways, the guardian's Lambda ENIs) need them.
//
// The instances themselves decide whom they serve (internal/claim); this
// package only reads, and, for a mode switch, empties the groups so the
// IPs leave the instances explicitly rather than by whichever of
// CloudFormation's deletes and creates happens first.
package fleet

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/outgate/outgate/internal/ctxutil"
	"github.com/outgate/outgate/internal/guardian"
)

// AutoScaling: the calls on the deployment's groups (IAM action beside each).
type AutoScaling interface {
	// autoscaling:DescribeAutoScalingGroups (Resource "*")
	DescribeAutoScalingGroups(ctx context.Context, in *autoscaling.DescribeAutoScalingGroupsInput, opts ...func(*autoscaling.Options)) (*autoscaling.DescribeAutoScalingGroupsOutput, error)
	// autoscaling:UpdateAutoScalingGroup on the group (mode switches only)
	UpdateAutoScalingGroup(ctx context.Context, in *autoscaling.UpdateAutoScalingGroupInput, opts ...func(*autoscaling.Options)) (*autoscaling.UpdateAutoScalingGroupOutput, error)
}

// EC2: reading instances and IPs; DisassociateAddress only for an IP left
// on an instance that no longer runs.
type EC2 interface {
	// ec2:DescribeInstances (Resource "*")
	DescribeInstances(ctx context.Context, in *ec2.DescribeInstancesInput, opts ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
	// ec2:DescribeAddresses (Resource "*")
	DescribeAddresses(ctx context.Context, in *ec2.DescribeAddressesInput, opts ...func(*ec2.Options)) (*ec2.DescribeAddressesOutput, error)
	// ec2:DisassociateAddress on the deployment's elastic-ip/*
	DisassociateAddress(ctx context.Context, in *ec2.DisassociateAddressInput, opts ...func(*ec2.Options)) (*ec2.DisassociateAddressOutput, error)
}

// CloudWatch reads the instances' readiness metric.
type CloudWatch interface {
	// cloudwatch:GetMetricStatistics (Resource "*")
	GetMetricStatistics(ctx context.Context, in *cloudwatch.GetMetricStatisticsInput, opts ...func(*cloudwatch.Options)) (*cloudwatch.GetMetricStatisticsOutput, error)
}

// Metric names and namespace the instances report in (EMF), by
// Deployment and AZ.
const (
	Namespace           = "Outgate"
	MetricInstanceReady = "InstanceReady"
)

// Group is one AZ's Auto Scaling group as status shows it.
type Group struct {
	Name   string `json:"group"`
	AZ     string `json:"az"`
	Subnet string `json:"subnet"`
	// PoolIP is the deployment's IP tagged for the subnet ("" when none is).
	PoolIP string `json:"pool_ip,omitempty"`
	// Instances are the group's instances (normally one; two for a
	// moment while one replaces another).
	Instances []Instance `json:"instances"`
	// Ready is the AZ's latest InstanceReady (nil: no report in the last
	// 10 minutes); LastCheck when it was reported.
	Ready     *bool     `json:"ready,omitempty"`
	LastCheck time.Time `json:"last_check,omitzero"`
	// Problem says what needs a human, or is "" when nothing does.
	Problem string `json:"problem,omitempty"`
}

// Instance is one instance of a group.
type Instance struct {
	ID        string `json:"id"`
	State     string `json:"state"`     // EC2: pending, running, shutting-down...
	Lifecycle string `json:"lifecycle"` // Auto Scaling: Pending, InService, Terminating...
	Health    string `json:"health"`    // Auto Scaling: Healthy or Unhealthy
	// IP is the deployment IP associated with it ("" when none).
	IP string `json:"ip,omitempty"`
}

// Clients are the three services Read and Release use.
type Clients struct {
	AutoScaling AutoScaling
	EC2         EC2
	CloudWatch  CloudWatch
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

func (c Clients) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// Read describes the deployment's groups (names from the stack).
func Read(ctx context.Context, c Clients, deployment string, groups []string) ([]Group, error) {
	if len(groups) == 0 {
		return nil, nil
	}
	out, err := c.AutoScaling.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: groups})
	if err != nil {
		return nil, fmt.Errorf("reading the Auto Scaling groups (autoscaling:DescribeAutoScalingGroups): %w", err)
	}
	ips, err := deploymentIPs(ctx, c.EC2, deployment)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, g := range out.AutoScalingGroups {
		for _, i := range g.Instances {
			ids = append(ids, aws.ToString(i.InstanceId))
		}
	}
	inst := map[string]ec2types.Instance{}
	if len(ids) > 0 {
		p := ec2.NewDescribeInstancesPaginator(c.EC2, &ec2.DescribeInstancesInput{InstanceIds: ids})
		for pages := 0; p.HasMorePages() && pages < 100; pages++ {
			page, err := p.NextPage(ctx)
			if err != nil {
				return nil, fmt.Errorf("reading the instances (ec2:DescribeInstances): %w", err)
			}
			for _, r := range page.Reservations {
				for _, i := range r.Instances {
					inst[aws.ToString(i.InstanceId)] = i
				}
			}
		}
	}
	var res []Group
	for _, g := range out.AutoScalingGroups {
		gr := Group{Name: aws.ToString(g.AutoScalingGroupName), Subnet: aws.ToString(g.VPCZoneIdentifier)}
		if len(g.AvailabilityZones) > 0 {
			gr.AZ = g.AvailabilityZones[0]
		}
		for _, a := range ips {
			if tag(a.Tags, guardian.TagSubnet) == gr.Subnet && gr.Subnet != "" {
				gr.PoolIP = aws.ToString(a.PublicIp)
			}
		}
		for _, i := range g.Instances {
			id := aws.ToString(i.InstanceId)
			in := Instance{ID: id, Lifecycle: string(i.LifecycleState), Health: aws.ToString(i.HealthStatus)}
			if e, ok := inst[id]; ok && e.State != nil {
				in.State = string(e.State.Name)
			}
			for _, a := range ips {
				if aws.ToString(a.InstanceId) == id {
					in.IP = aws.ToString(a.PublicIp)
				}
			}
			gr.Instances = append(gr.Instances, in)
		}
		sort.Slice(gr.Instances, func(a, b int) bool { return gr.Instances[a].ID < gr.Instances[b].ID })
		// The rest of the row stands without readiness: say why it is missing.
		if err := readiness(ctx, c, deployment, &gr); err != nil {
			gr.Problem = err.Error()
		} else {
			gr.Problem = problem(gr, ips)
		}
		res = append(res, gr)
	}
	sort.Slice(res, func(a, b int) bool { return res[a].AZ < res[b].AZ })
	return res, nil
}

// readiness: the AZ's InstanceReady, the latest one-minute maximum of the
// last 10 minutes (the instances report every minute).
func readiness(ctx context.Context, c Clients, deployment string, g *Group) error {
	if c.CloudWatch == nil || g.AZ == "" {
		return nil
	}
	now := c.now()
	out, err := c.CloudWatch.GetMetricStatistics(ctx, &cloudwatch.GetMetricStatisticsInput{
		Namespace: aws.String(Namespace), MetricName: aws.String(MetricInstanceReady),
		Dimensions: []cwtypes.Dimension{{Name: aws.String("Deployment"), Value: aws.String(deployment)}, {Name: aws.String("AZ"), Value: aws.String(g.AZ)}},
		StartTime:  aws.Time(now.Add(-10 * time.Minute)), EndTime: aws.Time(now), Period: aws.Int32(60),
		Statistics: []cwtypes.Statistic{cwtypes.StatisticMaximum},
	})
	if err != nil {
		return fmt.Errorf("reading InstanceReady (cloudwatch:GetMetricStatistics): %w", err)
	}
	for _, d := range out.Datapoints {
		if t := aws.ToTime(d.Timestamp); t.After(g.LastCheck) {
			g.LastCheck = t
			ready := aws.ToFloat64(d.Maximum) >= 1
			g.Ready = &ready
		}
	}
	return nil
}

// problem names what a human should look at in a group, if anything.
func problem(g Group, ips []ec2types.Address) string {
	switch {
	case g.PoolIP == "":
		return "no IP of the deployment is tagged " + guardian.TagSubnet + "=" + g.Subnet + ": run `outgate up` again"
	case len(g.Instances) == 0:
		return "no instance (the group is launching one, or cannot: see its activity in the EC2 console)"
	}
	for _, a := range ips {
		if aws.ToString(a.PublicIp) != g.PoolIP || aws.ToString(a.AssociationId) == "" {
			continue
		}
		held := aws.ToString(a.InstanceId)
		if !slices.ContainsFunc(g.Instances, func(i Instance) bool { return i.ID == held }) {
			what := held
			if what == "" {
				what = "network interface " + aws.ToString(a.NetworkInterfaceId)
			}
			return fmt.Sprintf("the AZ's IP %s is held by %s, not by this group's instance: the instance never takes it from anything but a stopped or terminated instance of the deployment", g.PoolIP, what)
		}
	}
	if g.Ready != nil && !*g.Ready {
		return "the instance reports not ready (its egress IP is not yet verified): it is replaced if this lasts 10 minutes after boot"
	}
	if g.Ready == nil {
		return "no readiness report in the last 10 minutes"
	}
	return ""
}

func deploymentIPs(ctx context.Context, api EC2, deployment string) ([]ec2types.Address, error) {
	out, err := api.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{Filters: []ec2types.Filter{
		{Name: aws.String("tag:" + guardian.TagDeployment), Values: []string{deployment}}}})
	if err != nil {
		return nil, fmt.Errorf("reading the deployment's IPs (ec2:DescribeAddresses): %w", err)
	}
	return out.Addresses, nil
}

func tag(ts []ec2types.Tag, k string) string {
	for _, t := range ts {
		if aws.ToString(t.Key) == k {
			return aws.ToString(t.Value)
		}
	}
	return ""
}

// Release empties the groups (minimum, maximum and desired 0), waits until
// their instances are gone, and takes the deployment's IPs off any
// instance that no longer runs, so that a NAT gateway or the guardian can
// hold them: `up` calls it before a switch away from instance mode. It
// waits at most wait, polling every poll; on error or timeout the caller
// calls Restore.
func Release(ctx context.Context, c Clients, deployment string, groups []string, wait, poll time.Duration) error {
	for _, g := range groups {
		if _, err := c.AutoScaling.UpdateAutoScalingGroup(ctx, &autoscaling.UpdateAutoScalingGroupInput{AutoScalingGroupName: aws.String(g),
			MinSize: aws.Int32(0), MaxSize: aws.Int32(0), DesiredCapacity: aws.Int32(0)}); err != nil {
			return fmt.Errorf("emptying %s (autoscaling:UpdateAutoScalingGroup): %w", g, err)
		}
	}
	deadline := c.now().Add(wait)
	for {
		left, err := instancesLeft(ctx, c, groups)
		if err != nil {
			return err
		}
		if len(left) == 0 {
			break
		}
		if c.now().After(deadline) {
			return fmt.Errorf("the instances %v were still running %s after their groups were emptied", left, wait)
		}
		if err := ctxutil.Sleep(ctx, poll); err != nil {
			return err
		}
	}
	// Termination disassociates an instance's IP; this makes sure of it
	// (and covers an instance the group stopped managing).
	ips, err := deploymentIPs(ctx, c.EC2, deployment)
	if err != nil {
		return err
	}
	for _, a := range ips {
		id := aws.ToString(a.InstanceId)
		if id == "" || a.AssociationId == nil {
			continue
		}
		running, err := isRunning(ctx, c.EC2, id)
		if err != nil {
			return err
		}
		if running {
			return fmt.Errorf("the deployment's IP %s is on instance %s, which is running and not in the deployment's groups: free it yourself (it is not outgate's)", aws.ToString(a.PublicIp), id)
		}
		if _, err := c.EC2.DisassociateAddress(ctx, &ec2.DisassociateAddressInput{AssociationId: a.AssociationId}); err != nil {
			return fmt.Errorf("taking %s off instance %s (ec2:DisassociateAddress): %w", aws.ToString(a.PublicIp), id, err)
		}
	}
	return nil
}

// Restore gives each group its one instance back (a switch that failed).
func Restore(ctx context.Context, c Clients, groups []string) error {
	for _, g := range groups {
		if _, err := c.AutoScaling.UpdateAutoScalingGroup(ctx, &autoscaling.UpdateAutoScalingGroupInput{AutoScalingGroupName: aws.String(g),
			MinSize: aws.Int32(1), MaxSize: aws.Int32(1), DesiredCapacity: aws.Int32(1)}); err != nil {
			return fmt.Errorf("restoring %s to one instance (autoscaling:UpdateAutoScalingGroup): %w", g, err)
		}
	}
	return nil
}

func instancesLeft(ctx context.Context, c Clients, groups []string) ([]string, error) {
	out, err := c.AutoScaling.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: groups})
	if err != nil {
		return nil, fmt.Errorf("reading the Auto Scaling groups (autoscaling:DescribeAutoScalingGroups): %w", err)
	}
	var left []string
	for _, g := range out.AutoScalingGroups {
		for _, i := range g.Instances {
			left = append(left, aws.ToString(i.InstanceId))
		}
	}
	return left, nil
}

func isRunning(ctx context.Context, api EC2, id string) (bool, error) {
	out, err := api.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		return false, fmt.Errorf("reading instance %s (ec2:DescribeInstances): %w", id, err)
	}
	for _, r := range out.Reservations {
		for _, i := range r.Instances {
			if i.State != nil {
				switch i.State.Name {
				case ec2types.InstanceStateNamePending, ec2types.InstanceStateNameRunning:
					return true, nil
				}
			}
		}
	}
	return false, nil
}
