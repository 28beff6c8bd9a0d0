package guardian

import (
	"context"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/outgate/outgate/internal/testutil"
)

// TestAgainstMoto runs the guardian over the real EC2 wire protocol, served
// by moto. moto cannot create `lambda` ENIs, so the ENIs here are ordinary
// ones attached to an instance (status in-use) and the guardian looks for
// interface-type "interface"; the Lambda discovery filter and lifecycle are
// covered by the simulator tests. moto also ignores MaxResults on
// DescribeNetworkInterfaces (one page), so pagination is covered there too.
func TestAgainstMoto(t *testing.T) {
	testutil.Moto(t)
	ctx := context.Background()
	ac, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	api := ec2.NewFromConfig(ac)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	vpc, err := api.CreateVpc(ctx, &ec2.CreateVpcInput{CidrBlock: aws.String("10.0.0.0/16")})
	must(err)
	var subnets []string
	for _, cidr := range []string{"10.0.1.0/24", "10.0.2.0/24"} {
		s, err := api.CreateSubnet(ctx, &ec2.CreateSubnetInput{VpcId: vpc.Vpc.VpcId, CidrBlock: aws.String(cidr)})
		must(err)
		subnets = append(subnets, aws.ToString(s.Subnet.SubnetId))
	}
	sgOut, err := api.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String("outgate"), Description: aws.String("egress only"), VpcId: vpc.Vpc.VpcId})
	must(err)
	images, err := api.DescribeImages(ctx, &ec2.DescribeImagesInput{})
	must(err)
	inst, err := api.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: images.Images[0].ImageId, MinCount: aws.Int32(1), MaxCount: aws.Int32(1), SubnetId: aws.String(subnets[0])})
	must(err)
	otherSG, err := api.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String("theirs"), Description: aws.String("another team"), VpcId: vpc.Vpc.VpcId})
	must(err)
	device := int32(1)
	// Lambda's description is what marks an ENI as the relay's Hyperplane
	// ENI (with the exact security-group set).
	newENIWith := func(subnet string, groups ...string) string {
		t.Helper()
		n, err := api.CreateNetworkInterface(ctx, &ec2.CreateNetworkInterfaceInput{SubnetId: aws.String(subnet), Groups: groups,
			Description: aws.String(fmt.Sprintf("AWS Lambda VPC ENI-relay-%08d-0b5c-4d2e-9f00-000000000000", device))})
		must(err)
		_, err = api.AttachNetworkInterface(ctx, &ec2.AttachNetworkInterfaceInput{NetworkInterfaceId: n.NetworkInterface.NetworkInterfaceId,
			InstanceId: inst.Instances[0].InstanceId, DeviceIndex: aws.Int32(device)})
		must(err)
		device++
		return aws.ToString(n.NetworkInterface.NetworkInterfaceId)
	}
	newENI := func(subnet string) string { return newENIWith(subnet, aws.ToString(sgOut.GroupId)) }
	allocate := func(deployment string) string {
		a, err := api.AllocateAddress(ctx, &ec2.AllocateAddressInput{Domain: ec2types.DomainTypeVpc, TagSpecifications: []ec2types.TagSpecification{{
			ResourceType: ec2types.ResourceTypeElasticIp, Tags: []ec2types.Tag{{Key: aws.String(TagDeployment), Value: aws.String(deployment)}}}}})
		must(err)
		return aws.ToString(a.AllocationId)
	}
	enis := []string{newENI(subnets[0]), newENI(subnets[0]), newENI(subnets[1])}
	// Another function's ENI whose groups include outgate's: the group-id
	// filter matches it, but it is not the relay's and gets no pool IP.
	theirs := newENIWith(subnets[1], aws.ToString(sgOut.GroupId), aws.ToString(otherSG.GroupId))
	pool := []string{allocate("prod"), allocate("prod"), allocate("prod")}
	foreign := allocate("staging")

	g, err := New(Config{Deployment: "prod", SecurityGroupID: aws.ToString(sgOut.GroupId), SubnetIDs: subnets, InterfaceType: "interface"}, api, nil)
	must(err)
	s := g.Run(ctx)
	if len(s.Errors) > 0 || s.Associations != 3 || s.ENIsWithoutIP != 0 || s.PoolSize != 3 {
		t.Fatalf("first run: %+v", s)
	}
	addrs := func() map[string]ec2types.Address {
		out, err := api.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{})
		must(err)
		m := map[string]ec2types.Address{}
		for _, a := range out.Addresses {
			m[aws.ToString(a.AllocationId)] = a
		}
		return m
	}
	byENI := map[string]string{}
	taggedFor := map[string]int{}
	for id, a := range addrs() {
		if id == foreign && a.AssociationId != nil && aws.ToString(a.AssociationId) != "" {
			t.Error("the guardian used another deployment's IP")
		}
		if eni := aws.ToString(a.NetworkInterfaceId); eni != "" {
			byENI[eni] = id
			subnetTag := ""
			for _, tg := range a.Tags {
				if aws.ToString(tg.Key) == TagSubnet {
					subnetTag = aws.ToString(tg.Value)
				}
			}
			if subnetTag != "" {
				taggedFor[subnetTag]++
			}
		}
	}
	// One IP per subnet remembers it (two ENIs in subnets[0] hold two IPs,
	// and only one is tagged: the other stays free to serve anywhere).
	for _, sub := range subnets {
		if taggedFor[sub] != 1 {
			t.Errorf("%d IPs are tagged for %s, want 1", taggedFor[sub], sub)
		}
	}
	for _, e := range enis {
		if byENI[e] == "" {
			t.Errorf("ENI %s has no IP after the run", e)
		}
	}
	if byENI[theirs] != "" {
		t.Errorf("the guardian gave pool IP %s to %s, whose security groups merely include outgate's", byENI[theirs], theirs)
	}
	if s := g.Run(ctx); s.Associations != 0 {
		t.Fatalf("second run changed things: %+v", s)
	}

	// The ENI holding one IP is detached (as Lambda retires an ENI) and a
	// new one appears in the same subnet: the IP moves to it.
	moved := byENI[enis[0]]
	desc, err := api.DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{NetworkInterfaceIds: []string{enis[0]}})
	must(err)
	_, err = api.DetachNetworkInterface(ctx, &ec2.DetachNetworkInterfaceInput{AttachmentId: desc.NetworkInterfaces[0].Attachment.AttachmentId})
	must(err)
	replacement := newENI(subnets[0])
	s = g.Run(ctx)
	if len(s.Errors) > 0 || s.Disassociations != 1 || s.Associations != 1 || s.ENIsWithoutIP != 0 {
		t.Fatalf("replacement run: %+v", s)
	}
	if got := aws.ToString(addrs()[moved].NetworkInterfaceId); got != replacement {
		t.Fatalf("IP %s is on %q, want the replacement %s", moved, got, replacement)
	}
	for _, id := range pool {
		if _, ok := addrs()[id]; !ok {
			t.Fatalf("pool IP %s is gone", id)
		}
	}
}
