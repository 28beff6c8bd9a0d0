package testutil

import (
	"context"
	"net/netip"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
)

// PublicSubnets makes a VPC with an internet gateway and n public subnets
// (one per AZ) in moto, as a user's existing VPC would be.
func PublicSubnets(t *testing.T, api *ec2.Client, cidr string, n int) (string, []string) {
	t.Helper()
	ctx := context.Background()
	vpc, err := api.CreateVpc(ctx, &ec2.CreateVpcInput{CidrBlock: aws.String(cidr)})
	if err != nil {
		t.Fatal(err)
	}
	vpcID := aws.ToString(vpc.Vpc.VpcId)
	igw, _ := api.CreateInternetGateway(ctx, &ec2.CreateInternetGatewayInput{})
	api.AttachInternetGateway(ctx, &ec2.AttachInternetGatewayInput{VpcId: aws.String(vpcID), InternetGatewayId: igw.InternetGateway.InternetGatewayId})
	rt, err := api.CreateRouteTable(ctx, &ec2.CreateRouteTableInput{VpcId: aws.String(vpcID)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := api.CreateRoute(ctx, &ec2.CreateRouteInput{RouteTableId: rt.RouteTable.RouteTableId, DestinationCidrBlock: aws.String("0.0.0.0/0"),
		GatewayId: igw.InternetGateway.InternetGatewayId}); err != nil {
		t.Fatal(err)
	}
	base := netip.MustParsePrefix(cidr).Addr().As4()
	var ids []string
	for i := 0; i < n; i++ {
		sub, err := api.CreateSubnet(ctx, &ec2.CreateSubnetInput{VpcId: aws.String(vpcID),
			CidrBlock:        aws.String(netip.PrefixFrom(netip.AddrFrom4([4]byte{base[0], base[1], byte(i), 0}), 24).String()),
			AvailabilityZone: aws.String("us-east-1" + string(rune('a'+i)))})
		if err != nil {
			t.Fatal(err)
		}
		id := aws.ToString(sub.Subnet.SubnetId)
		if _, err := api.AssociateRouteTable(ctx, &ec2.AssociateRouteTableInput{RouteTableId: rt.RouteTable.RouteTableId, SubnetId: aws.String(id)}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return vpcID, ids
}
