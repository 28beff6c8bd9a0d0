package deploy

import (
	"context"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/outgate/outgate/internal/stack"
	"github.com/outgate/outgate/internal/testutil"
)

func prefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func TestFreeBlocks(t *testing.T) {
	for _, tc := range []struct {
		vpc  string
		used []netip.Prefix
		n    int
		want []string
		err  string
	}{
		{"10.0.0.0/16", nil, 2, []string{"10.0.254.0/24", "10.0.255.0/24"}, ""},
		{"10.0.0.0/16", prefixes("10.0.255.0/24", "10.0.252.0/22"), 1, []string{"10.0.251.0/24"}, ""},
		{"10.0.0.0/16", prefixes("10.0.128.0/17"), 1, []string{"10.0.127.0/24"}, ""},
		{"172.31.0.0/16", prefixes("172.31.0.0/20", "172.31.16.0/20"), 3, []string{"172.31.253.0/24", "172.31.254.0/24", "172.31.255.0/24"}, ""},
		{"10.1.0.0/24", nil, 1, []string{"10.1.0.192/26"}, ""},
		{"10.1.0.0/24", prefixes("10.1.0.0/24"), 1, nil, "no 1 free /26 blocks"},
		{"10.1.0.0/27", nil, 1, nil, "too small"},
		{"2001:db8::/56", nil, 1, nil, "not IPv4"},
	} {
		got, err := freeBlocks(tc.vpc, tc.used, tc.n)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("freeBlocks(%s): %v, want an error with %q", tc.vpc, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("freeBlocks(%s, %v, %d) = %v, %v; want %v", tc.vpc, tc.used, tc.n, got, err, tc.want)
		}
	}
}

func TestCheckPrivateCIDRs(t *testing.T) {
	v := &existingVPC{CIDR: "10.0.0.0/16", used: prefixes("10.0.1.0/24")}
	for _, tc := range []struct {
		cidrs []string
		err   string
	}{
		{[]string{"10.0.200.0/24", "10.0.201.0/24"}, ""},
		{[]string{"10.0.200.0/24"}, "1 blocks for 2"},
		{[]string{"10.0.200.0/24", "10.0.1.0/25"}, "overlaps"},
		{[]string{"10.0.200.0/24", "10.0.200.0/24"}, "overlaps"},
		{[]string{"10.0.200.0/24", "10.1.0.0/24"}, "inside the VPC"},
		{[]string{"10.0.200.0/24", "10.0.201.0/29"}, "/28 or larger"},
		{[]string{"10.0.200.0/24", "10.0.201.1/24"}, "not an IPv4 block"},
		{[]string{"10.0.200.0/24", "nope"}, "not an IPv4 block"},
	} {
		err := checkPrivateCIDRs(v, tc.cidrs, 2)
		if (tc.err == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%v: %v, want %q", tc.cidrs, err, tc.err)
		}
	}
}

// TestUpChecksTheExistingVPC: every mistake in --vpc-id / --subnet-ids is
// refused before anything is allocated, naming the subnet and the fix.
func TestUpChecksTheExistingVPC(t *testing.T) {
	c, api := motoClients(t)
	ctx := context.Background()
	vpcID, pub := testutil.PublicSubnets(t, api, "10.5.0.0/16", 2)
	private, _ := api.CreateSubnet(ctx, &ec2.CreateSubnetInput{VpcId: aws.String(vpcID), CidrBlock: aws.String("10.5.9.0/24"), AvailabilityZone: aws.String("us-east-1c")})
	sameAZ, _ := api.CreateSubnet(ctx, &ec2.CreateSubnetInput{VpcId: aws.String(vpcID), CidrBlock: aws.String("10.5.8.0/24"), AvailabilityZone: aws.String("us-east-1a")})
	other, _ := testutil.PublicSubnets(t, api, "10.4.0.0/16", 1)
	otherSubs, _ := api.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{Filters: []ec2types.Filter{{Name: aws.String("vpc-id"), Values: []string{other}}}})
	for _, tc := range []struct {
		name string
		o    stack.TemplateOptions
		cidr []string
		err  string
	}{
		{"no such vpc", stack.TemplateOptions{VPCID: "vpc-0000000000000000f", SubnetIDs: pub[:1]}, nil, "no such VPC"},
		{"subnet elsewhere", stack.TemplateOptions{VPCID: vpcID, SubnetIDs: []string{aws.ToString(otherSubs.Subnets[0].SubnetId)}}, nil, "is not a subnet of " + vpcID},
		{"private subnet", stack.TemplateOptions{VPCID: vpcID, SubnetIDs: []string{aws.ToString(private.Subnet.SubnetId)}}, nil, "is not public"},
		{"same az", stack.TemplateOptions{VPCID: vpcID, SubnetIDs: []string{pub[0], aws.ToString(sameAZ.Subnet.SubnetId)}}, nil, "both in us-east-1a"},
		{"cidrs in eni mode", stack.TemplateOptions{VPCID: vpcID, SubnetIDs: pub[:1]}, []string{"10.5.200.0/24"}, "apply to --mode nat"},
		{"overlapping cidr", stack.TemplateOptions{Mode: "nat", VPCID: vpcID, SubnetIDs: pub[:1]}, []string{"10.5.0.0/24"}, "overlaps"},
	} {
		o := motoUp("check", tc.o)
		o.PrivateCIDRs = tc.cidr
		_, err := Up(ctx, c, o)
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.err)
		}
		// Wrong --private-cidrs are the flags' fault (the CLI exits 2);
		// a VPC or subnet that is not as said is the account's (exit 1).
		var bad ErrOptions
		if errors.As(err, &bad) != (tc.cidr != nil) {
			t.Errorf("%s: ErrOptions is %v, want %v", tc.name, errors.As(err, &bad), tc.cidr != nil)
		}
	}
	if ips, _ := ListIPs(ctx, c.EC2, "check"); len(ips) != 0 {
		t.Errorf("a refused up allocated IPs: %+v", ips)
	}
}
