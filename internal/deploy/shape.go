package deploy

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/outgate/outgate/internal/awserr"
	"github.com/outgate/outgate/internal/awspage"
	"github.com/outgate/outgate/internal/stack"
)

// ShapeReader reads what a deployment's resources look like
// (ec2:DescribeNatGateways, ec2:DescribeVpcEndpoints; the rest through
// VPCReader and lambda:GetFunctionConfiguration).
type ShapeReader interface {
	DescribeNatGateways(ctx context.Context, in *ec2.DescribeNatGatewaysInput, opts ...func(*ec2.Options)) (*ec2.DescribeNatGatewaysOutput, error)
	DescribeVpcEndpoints(ctx context.Context, in *ec2.DescribeVpcEndpointsInput, opts ...func(*ec2.Options)) (*ec2.DescribeVpcEndpointsOutput, error)
}

// Shape is a running deployment as `up` reads it back, from the resources
// themselves: the template options it has, and which IP each NAT gateway
// holds (so adding an AZ never moves an IP from one NAT gateway to another).
type Shape struct {
	Template stack.TemplateOptions
	NATAlloc []string // NatGateway{i}'s allocation id, by i ("" for none)
	Relay    string   // the relay function
	SG       string   // the relay's security group
}

// ReadShape reads the shape of a deployed stack. Stack parameters are not
// used for lists (emulators return them in another notation); every value
// comes from a resource: the mode from the guardian or NAT gateways, the
// front door from the API, arch, memory and subnets from the relay
// function, the VPC from its subnets.
func ReadShape(ctx context.Context, c Clients, st *Deployed) (*Shape, error) {
	sh := &Shape{Relay: st.Resources["Relay"], SG: st.Resources["RelaySecurityGroup"]}
	o := &sh.Template
	o.Mode, o.Front = "eni", "url"
	if _, ok := st.Resources["NatGateway0"]; ok {
		o.Mode = "nat"
	}
	if _, ok := st.Resources["HttpApi"]; ok {
		o.Front = "apigw"
	}
	if sh.Relay == "" {
		return nil, fmt.Errorf("stack %s has no relay function (status %s): fix or delete it (`outgate down --name %s`) first", st.Name, st.Status, st.Name)
	}
	fc, err := c.Lambda.GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String(sh.Relay)})
	if err != nil {
		return nil, awserr.Explain("reading the relay function (lambda:GetFunctionConfiguration)", err)
	}
	o.Arch = "x86_64"
	if len(fc.Architectures) > 0 {
		o.Arch = string(fc.Architectures[0])
	}
	o.MemoryMB = int(aws.ToInt32(fc.MemorySize))
	var relaySubnets []string
	if fc.VpcConfig != nil {
		relaySubnets = fc.VpcConfig.SubnetIds
	}
	count := func(prefix string) int {
		n := 0
		for n < stack.MaxAZs && st.Resources[fmt.Sprintf("%s%d", prefix, n)] != "" {
			n++
		}
		return n
	}
	_, ownVPC := st.Resources["Vpc"]
	switch {
	case o.Mode == "nat":
		o.AZs = count("PrivateSubnet")
		o.SharedNAT = o.AZs > 1 && st.Resources["NatGateway1"] == ""
	case ownVPC:
		o.AZs = count("PublicSubnet")
	default:
		o.AZs = len(relaySubnets)
	}
	// Which IP each NAT gateway holds, and (in an existing VPC) the public
	// subnets they stand in.
	var natSubnets []string
	if o.Mode == "nat" {
		var ids []string
		for i := 0; i < stack.MaxAZs; i++ {
			if id := st.Resources[fmt.Sprintf("NatGateway%d", i)]; id != "" {
				ids = append(ids, id)
			}
		}
		var nats []ec2types.NatGateway
		pages := ec2.NewDescribeNatGatewaysPaginator(c.EC2, &ec2.DescribeNatGatewaysInput{NatGatewayIds: ids})
		if err := awspage.Each(ctx, pages, maxVPCPages, func(out *ec2.DescribeNatGatewaysOutput) { nats = append(nats, out.NatGateways...) }); err != nil {
			return nil, awserr.Explain("reading the deployment's NAT gateways (ec2:DescribeNatGateways)", err)
		}
		for i := 0; i < stack.MaxAZs; i++ {
			id := st.Resources[fmt.Sprintf("NatGateway%d", i)]
			alloc, subnet := "", ""
			for _, n := range nats {
				if aws.ToString(n.NatGatewayId) == id && id != "" {
					subnet = aws.ToString(n.SubnetId)
					if len(n.NatGatewayAddresses) > 0 {
						alloc = aws.ToString(n.NatGatewayAddresses[0].AllocationId)
					}
				}
			}
			if id != "" {
				sh.NATAlloc = append(sh.NATAlloc, alloc)
				natSubnets = append(natSubnets, subnet)
			}
		}
	}
	if !ownVPC {
		if len(relaySubnets) > 0 {
			var subs []ec2types.Subnet
			pages := ec2.NewDescribeSubnetsPaginator(c.EC2, &ec2.DescribeSubnetsInput{SubnetIds: relaySubnets[:1]})
			if err := awspage.Each(ctx, pages, maxVPCPages, func(out *ec2.DescribeSubnetsOutput) { subs = append(subs, out.Subnets...) }); err != nil {
				return nil, awserr.Explain("reading the relay's subnets (ec2:DescribeSubnets)", err)
			}
			if len(subs) == 1 {
				o.VPCID = aws.ToString(subs[0].VpcId)
			}
		}
		if o.Mode == "eni" {
			o.SubnetIDs = slices.Clone(relaySubnets)
		} else {
			o.SubnetIDs = natSubnets
			if o.SharedNAT {
				// One NAT gateway, so its subnet is the only public one the
				// resources still name; the rest come from the options the
				// stack was last built with, when it recorded them.
				if rec := strings.Fields(st.Tags[stack.TagPublicSubnets]); len(rec) == o.AZs {
					o.SubnetIDs = rec
				} else {
					o.SubnetIDs = nil
				}
			}
		}
	}
	// Endpoints, from the endpoints themselves (their logical ids lose the
	// service name's punctuation).
	var epIDs []string
	for id, phys := range st.Resources {
		if strings.HasPrefix(id, "Endpoint") && id != "EndpointSecurityGroup" && strings.HasPrefix(phys, "vpce-") {
			epIDs = append(epIDs, phys)
		}
	}
	if len(epIDs) > 0 {
		var endpoints []ec2types.VpcEndpoint
		pages := ec2.NewDescribeVpcEndpointsPaginator(c.EC2, &ec2.DescribeVpcEndpointsInput{VpcEndpointIds: epIDs})
		if err := awspage.Each(ctx, pages, maxVPCPages, func(out *ec2.DescribeVpcEndpointsOutput) { endpoints = append(endpoints, out.VpcEndpoints...) }); err != nil {
			return nil, awserr.Explain("reading the deployment's VPC endpoints (ec2:DescribeVpcEndpoints)", err)
		}
		for _, e := range endpoints {
			svc := aws.ToString(e.ServiceName)
			prefix := "com.amazonaws." + c.Region + "."
			if strings.HasPrefix(svc, prefix) {
				o.Endpoints = append(o.Endpoints, strings.TrimPrefix(svc, prefix))
			}
		}
		slices.Sort(o.Endpoints)
	}
	return sh, nil
}

// Flags of `up` that change a deployment's shape, by name. UpOptions.Set
// holds those the user gave; the rest keep what is deployed.
const (
	FlagMode      = "mode"
	FlagAZs       = "azs"
	FlagVPC       = "vpc-id"
	FlagSubnets   = "subnet-ids"
	FlagEndpoints = "endpoints"
	FlagFront     = "front"
	FlagSharedNAT = "shared-nat"
	FlagArch      = "arch"
	FlagMemory    = "memory"
	// Instance mode.
	FlagInstanceType = "instance-type"
	FlagDomain       = "domain"
	FlagAllowFrom    = "allow-from"
	// Not shape, but kept the same way: who the alarms page.
	FlagNotify      = "notify"
	FlagNotifyTopic = "notify-topic"
)

// NewDeploymentAZs is how many AZs (and IPs) a new deployment gets unless
// --azs says otherwise: two, so one AZ's outage does not cut egress.
const NewDeploymentAZs = 2

// keepShape fills every option the user did not set from what is deployed
// (prev), or for a new deployment (prev nil) from the defaults.
func keepShape(want stack.TemplateOptions, set map[string]bool, prev *stack.TemplateOptions) stack.TemplateOptions {
	if prev == nil {
		if !set[FlagAZs] && len(want.SubnetIDs) == 0 {
			want.AZs = NewDeploymentAZs
		}
		return want
	}
	o := want
	if !set[FlagMode] {
		o.Mode = prev.Mode
	}
	if !set[FlagFront] {
		o.Front = prev.Front
	}
	if !set[FlagArch] {
		o.Arch = prev.Arch
	}
	if !set[FlagMemory] {
		o.MemoryMB = prev.MemoryMB
	}
	if !set[FlagVPC] && !set[FlagSubnets] {
		o.VPCID, o.SubnetIDs = prev.VPCID, slices.Clone(prev.SubnetIDs)
	}
	if !set[FlagAZs] {
		switch {
		case set[FlagSubnets]:
			o.AZs = len(o.SubnetIDs)
		default:
			o.AZs = prev.AZs
		}
	}
	if !set[FlagSharedNAT] {
		o.SharedNAT = prev.SharedNAT
	}
	if !set[FlagEndpoints] {
		o.Endpoints = slices.Clone(prev.Endpoints)
	}
	// Options that only exist in nat mode do not follow a switch to eni.
	if o.Mode == "eni" {
		if !set[FlagEndpoints] {
			o.Endpoints = nil
		}
		if !set[FlagSharedNAT] {
			o.SharedNAT = false
		}
	}
	return o
}

// Change is one difference between the deployed shape and the new one.
type Change struct {
	What string `json:"what"`
	From string `json:"from"`
	To   string `json:"to"`
	// Disruptive changes move the IPs (to other ENIs or NAT gateways, with
	// a pause in egress), add or drop IPs, or change the relay URL.
	Disruptive bool   `json:"disruptive"`
	Why        string `json:"why,omitempty"`
}

func (c Change) String() string {
	s := fmt.Sprintf("%s: %s -> %s", c.What, c.From, c.To)
	if c.Why != "" {
		s += " (" + c.Why + ")"
	}
	return s
}

// diffShape lists what an update changes.
func diffShape(prev, next stack.TemplateOptions) []Change {
	var ch []Change
	add := func(what, from, to string, disruptive bool, why string) {
		if from != to {
			ch = append(ch, Change{What: what, From: from, To: to, Disruptive: disruptive, Why: why})
		}
	}
	add("mode", prev.Mode, next.Mode, true, "the IPs move; egress pauses for minutes")
	add("AZs", fmt.Sprint(prev.AZs), fmt.Sprint(next.AZs), true, "IPs are added to or dropped from egress; partners must allowlist every one in use")
	add("VPC", orNone(prev.VPCID), orNone(next.VPCID), true, "the relay moves; its IPs move to new ENIs or NAT gateways")
	add("subnets", orNone(strings.Join(prev.SubnetIDs, ",")), orNone(strings.Join(next.SubnetIDs, ",")), true, "the relay moves; its IPs move to new ENIs or NAT gateways")
	add("front door", prev.Front, next.Front, true, "the relay URL changes; every caller must be given the new one")
	add("shared NAT", fmt.Sprint(prev.SharedNAT), fmt.Sprint(next.SharedNAT), true, "NAT gateways and their IPs are added or removed")
	add("endpoints", orNone(strings.Join(prev.Endpoints, ",")), orNone(strings.Join(next.Endpoints, ",")), false, "")
	add("arch", prev.Arch, next.Arch, false, "")
	add("memory MB", fmt.Sprint(prev.MemoryMB), fmt.Sprint(next.MemoryMB), false, "")
	return ch
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// movesRelay reports whether the relay's subnets change (which a function
// attached to the deployment's subnets cannot follow by itself).
func movesRelay(prev, next stack.TemplateOptions) bool {
	return prev.Mode != next.Mode || prev.AZs != next.AZs || prev.VPCID != next.VPCID ||
		strings.Join(prev.SubnetIDs, ",") != strings.Join(next.SubnetIDs, ",")
}
