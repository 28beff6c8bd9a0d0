package deploy

import (
	"context"
	"fmt"
	"math/big"
	"net/netip"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/outgate/outgate/internal/awserr"
)

// VPCReader reads an existing VPC that `up` deploys into
// (ec2:DescribeVpcs, ec2:DescribeSubnets, ec2:DescribeRouteTables).
type VPCReader interface {
	DescribeVpcs(ctx context.Context, in *ec2.DescribeVpcsInput, opts ...func(*ec2.Options)) (*ec2.DescribeVpcsOutput, error)
	DescribeSubnets(ctx context.Context, in *ec2.DescribeSubnetsInput, opts ...func(*ec2.Options)) (*ec2.DescribeSubnetsOutput, error)
	DescribeRouteTables(ctx context.Context, in *ec2.DescribeRouteTablesInput, opts ...func(*ec2.Options)) (*ec2.DescribeRouteTablesOutput, error)
}

// existingVPC is what `up` learns about a VPC it was given.
type existingVPC struct {
	CIDR   string         // primary IPv4 block
	Blocks []string       // every associated IPv4 block, the primary first
	AZs    []string       // of the given subnets, in their order
	used   []netip.Prefix // every subnet's block
}

// inspectVPC checks that the given subnets belong to the VPC, sit in
// different AZs and are public (a default route to an internet gateway):
// in eni mode the relay's Elastic IP reaches the internet only from such a
// subnet, in nat mode the NAT gateways need one. A mistake here would
// otherwise surface minutes later as a stack that deploys and never
// reaches a partner.
func inspectVPC(ctx context.Context, api VPCReader, vpcID string, subnetIDs []string) (*existingVPC, error) {
	vpcs, err := api.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{VpcIds: []string{vpcID}})
	if awserr.IsCode(err, "InvalidVpcID.NotFound") || err == nil && len(vpcs.Vpcs) != 1 {
		return nil, fmt.Errorf("--vpc-id %s: no such VPC in this region", vpcID)
	}
	if err != nil {
		return nil, awserr.Explain("reading --vpc-id "+vpcID+" (ec2:DescribeVpcs)", err)
	}
	v := &existingVPC{CIDR: aws.ToString(vpcs.Vpcs[0].CidrBlock)}
	v.Blocks = append(v.Blocks, v.CIDR)
	for _, a := range vpcs.Vpcs[0].CidrBlockAssociationSet {
		b := aws.ToString(a.CidrBlock)
		if a.CidrBlockState != nil && a.CidrBlockState.State == ec2types.VpcCidrBlockStateCodeAssociated && b != v.CIDR {
			v.Blocks = append(v.Blocks, b)
		}
	}
	subs, err := allSubnets(ctx, api, vpcID)
	if err != nil {
		return nil, err
	}
	byID := map[string]ec2types.Subnet{}
	for _, s := range subs {
		byID[aws.ToString(s.SubnetId)] = s
		if p, err := netip.ParsePrefix(aws.ToString(s.CidrBlock)); err == nil {
			v.used = append(v.used, p)
		}
	}
	tables, err := routeTables(ctx, api, vpcID)
	if err != nil {
		return nil, err
	}
	seenAZ := map[string]string{}
	for _, id := range subnetIDs {
		s, ok := byID[id]
		if !ok {
			return nil, fmt.Errorf("--subnet-ids: %s is not a subnet of %s", id, vpcID)
		}
		az := aws.ToString(s.AvailabilityZone)
		if other, dup := seenAZ[az]; dup {
			return nil, fmt.Errorf("--subnet-ids: %s and %s are both in %s; give one public subnet per availability zone", other, id, az)
		}
		seenAZ[az] = id
		v.AZs = append(v.AZs, az)
		if internetRoute(tables, id) == "" {
			return nil, fmt.Errorf("--subnet-ids: %s is not public: its route table sends 0.0.0.0/0 to no internet gateway, so traffic from it could not reach a partner; give public subnets (outgate adds private ones in nat mode)", id)
		}
	}
	return v, nil
}

func allSubnets(ctx context.Context, api VPCReader, vpcID string) ([]ec2types.Subnet, error) {
	var out []ec2types.Subnet
	pages := ec2.NewDescribeSubnetsPaginator(api, &ec2.DescribeSubnetsInput{Filters: []ec2types.Filter{{Name: aws.String("vpc-id"), Values: []string{vpcID}}}})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, awserr.Explain("listing the subnets of "+vpcID+" (ec2:DescribeSubnets)", err)
		}
		out = append(out, page.Subnets...)
	}
	return out, nil
}

// routeTables reads the VPC's route tables once, for every subnet's check.
func routeTables(ctx context.Context, api VPCReader, vpcID string) ([]ec2types.RouteTable, error) {
	var out []ec2types.RouteTable
	pages := ec2.NewDescribeRouteTablesPaginator(api, &ec2.DescribeRouteTablesInput{Filters: []ec2types.Filter{{Name: aws.String("vpc-id"), Values: []string{vpcID}}}})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, awserr.Explain("reading the route tables of "+vpcID+" (ec2:DescribeRouteTables)", err)
		}
		out = append(out, page.RouteTables...)
	}
	return out, nil
}

// internetRoute returns the internet gateway the subnet's default route
// goes to: through its own route table, or else the VPC's main one.
func internetRoute(tables []ec2types.RouteTable, subnetID string) string {
	var own, main *ec2types.RouteTable
	for i := range tables {
		for _, a := range tables[i].Associations {
			switch {
			case aws.ToString(a.SubnetId) == subnetID:
				own = &tables[i]
			case aws.ToBool(a.Main):
				main = &tables[i]
			}
		}
	}
	if own == nil {
		own = main
	}
	if own == nil {
		return ""
	}
	for _, r := range own.Routes {
		if aws.ToString(r.DestinationCidrBlock) == "0.0.0.0/0" && strings.HasPrefix(aws.ToString(r.GatewayId), "igw-") {
			return aws.ToString(r.GatewayId)
		}
	}
	return ""
}

// freeBlocks picks n unused blocks for outgate's private subnets, from the
// top of the VPC's range down (away from where people usually start), /24
// each, smaller in a small VPC.
func freeBlocks(vpcCIDR string, used []netip.Prefix, n int) ([]string, error) {
	vpc, err := netip.ParsePrefix(vpcCIDR)
	if err != nil || !vpc.Addr().Is4() {
		return nil, fmt.Errorf("the VPC's block %q is not IPv4; give --private-cidrs", vpcCIDR)
	}
	bits := max(24, vpc.Bits()+2)
	if bits > 28 {
		return nil, fmt.Errorf("the VPC %s is too small for %d more subnets; give --private-cidrs", vpcCIDR, n)
	}
	size := new(big.Int).Lsh(big.NewInt(1), uint(32-bits))
	count := 1 << (bits - vpc.Bits())
	base := new(big.Int).SetBytes(vpc.Masked().Addr().AsSlice())
	var out []string
	for i := count - 1; i >= 0 && len(out) < n; i-- {
		start := new(big.Int).Add(base, new(big.Int).Mul(size, big.NewInt(int64(i))))
		var b4 [4]byte
		start.FillBytes(b4[:])
		p := netip.PrefixFrom(netip.AddrFrom4(b4), bits)
		if overlapsAny(p, used) {
			continue
		}
		out = append(out, p.String())
	}
	if len(out) < n {
		return nil, fmt.Errorf("the VPC %s has no %d free /%d blocks; give --private-cidrs", vpcCIDR, n, bits)
	}
	sort.Strings(out) // stable order across runs
	return out, nil
}

func overlapsAny(p netip.Prefix, used []netip.Prefix) bool {
	for _, u := range used {
		if p.Overlaps(u) {
			return true
		}
	}
	return false
}

// checkPrivateCIDRs validates --private-cidrs against the VPC.
func checkPrivateCIDRs(v *existingVPC, cidrs []string, n int) error {
	if len(cidrs) != n {
		return fmt.Errorf("--private-cidrs: %d blocks for %d availability zones", len(cidrs), n)
	}
	vpc, err := netip.ParsePrefix(v.CIDR)
	if err != nil {
		return fmt.Errorf("the VPC's block %q cannot be read", v.CIDR)
	}
	var taken []netip.Prefix
	for _, c := range cidrs {
		p, err := netip.ParsePrefix(c)
		if err != nil || p.Masked() != p || !p.Addr().Is4() {
			return fmt.Errorf("--private-cidrs: %q is not an IPv4 block such as 10.0.200.0/24", c)
		}
		if p.Bits() > 28 || p.Bits() < vpc.Bits() || !vpc.Contains(p.Addr()) {
			return fmt.Errorf("--private-cidrs: %s must lie inside the VPC's %s and be /28 or larger", c, v.CIDR)
		}
		if overlapsAny(p, v.used) || overlapsAny(p, taken) {
			return fmt.Errorf("--private-cidrs: %s overlaps a subnet already in the VPC (or another block given)", c)
		}
		taken = append(taken, p)
	}
	return nil
}

// existingPrivateDNSEndpoints returns, by service, the interface endpoints
// of the VPC with private DNS on that are not the deployment's own. AWS
// refuses a second private-DNS endpoint for a service in a VPC (its private
// hosted zone would conflict), and the existing one already serves the
// relay, so `up` uses it rather than fail the stack.
func existingPrivateDNSEndpoints(ctx context.Context, api ShapeReader, vpcID, region string, own map[string]bool) (map[string]string, error) {
	out, err := api.DescribeVpcEndpoints(ctx, &ec2.DescribeVpcEndpointsInput{Filters: []ec2types.Filter{
		{Name: aws.String("vpc-id"), Values: []string{vpcID}}, {Name: aws.String("vpc-endpoint-type"), Values: []string{"Interface"}}}})
	if err != nil {
		return nil, awserr.Explain("reading the VPC's endpoints (ec2:DescribeVpcEndpoints)", err)
	}
	found := map[string]string{}
	prefix := "com.amazonaws." + region + "."
	for _, e := range out.VpcEndpoints {
		id, svc := aws.ToString(e.VpcEndpointId), aws.ToString(e.ServiceName)
		if own[id] || !aws.ToBool(e.PrivateDnsEnabled) || !strings.HasPrefix(svc, prefix) || e.VpcEndpointType != ec2types.VpcEndpointTypeInterface {
			continue
		}
		switch e.State {
		case ec2types.StateDeleted, ec2types.StateDeleting, ec2types.StateFailed, ec2types.StateRejected:
			continue
		}
		found[strings.TrimPrefix(svc, prefix)] = id
	}
	return found, nil
}
