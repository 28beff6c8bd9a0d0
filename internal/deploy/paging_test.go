package deploy

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/outgate/outgate/internal/stack"
	"github.com/outgate/outgate/internal/testutil"
)

// moto answers ListStackResources, DescribeChangeSet (its changes),
// DescribeStackEvents, ListFunctions and EC2's DescribeNetworkInterfaces,
// DescribeSubnets, DescribeRouteTables and DescribeVpcEndpoints in one page
// whatever the MaxResults, so these wrappers cut moto's real answer into
// pages (of one item, and of 4 for a stack's resources and changes), with a
// NextToken/NextMarker as AWS gives past a page: the data is moto's, only
// the paging is the wrappers'. Each counts the pages it served, so a test
// can tell the later pages were read.

// page returns n items of all from the one the token names (the first
// without one) and the token of the next page, nil after the last.
func page[T any](all []T, token *string, n int) ([]T, *string) {
	i, _ := strconv.Atoi(aws.ToString(token))
	if i+n >= len(all) {
		return all[min(i, len(all)):], nil
	}
	return all[i : i+n], aws.String(strconv.Itoa(i + n))
}

type pagedCloudFormation struct {
	CloudFormation
	pages map[string]int
}

func (p pagedCloudFormation) ListStackResources(ctx context.Context, in *cloudformation.ListStackResourcesInput, opts ...func(*cloudformation.Options)) (*cloudformation.ListStackResourcesOutput, error) {
	all, err := p.CloudFormation.ListStackResources(ctx, &cloudformation.ListStackResourcesInput{StackName: in.StackName}, opts...)
	if err != nil {
		return nil, err
	}
	p.pages["ListStackResources"]++
	all.StackResourceSummaries, all.NextToken = page(all.StackResourceSummaries, in.NextToken, 4)
	return all, nil
}

func (p pagedCloudFormation) DescribeStackEvents(ctx context.Context, in *cloudformation.DescribeStackEventsInput, opts ...func(*cloudformation.Options)) (*cloudformation.DescribeStackEventsOutput, error) {
	all, err := p.CloudFormation.DescribeStackEvents(ctx, &cloudformation.DescribeStackEventsInput{StackName: in.StackName}, opts...)
	if err != nil {
		return nil, err
	}
	p.pages["DescribeStackEvents"]++
	all.StackEvents, all.NextToken = page(all.StackEvents, in.NextToken, 1)
	return all, nil
}

func (p pagedCloudFormation) DescribeChangeSet(ctx context.Context, in *cloudformation.DescribeChangeSetInput, opts ...func(*cloudformation.Options)) (*cloudformation.DescribeChangeSetOutput, error) {
	all, err := p.CloudFormation.DescribeChangeSet(ctx, &cloudformation.DescribeChangeSetInput{StackName: in.StackName, ChangeSetName: in.ChangeSetName}, opts...)
	if err != nil {
		return nil, err
	}
	p.pages["DescribeChangeSet"]++
	all.Changes, all.NextToken = page(all.Changes, in.NextToken, 4)
	return all, nil
}

type pagedEC2 struct {
	EC2
	pages map[string]int
}

func (p pagedEC2) DescribeNetworkInterfaces(ctx context.Context, in *ec2.DescribeNetworkInterfacesInput, opts ...func(*ec2.Options)) (*ec2.DescribeNetworkInterfacesOutput, error) {
	all, err := p.EC2.DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{Filters: in.Filters, NetworkInterfaceIds: in.NetworkInterfaceIds}, opts...)
	if err != nil {
		return nil, err
	}
	p.pages["DescribeNetworkInterfaces"]++
	all.NetworkInterfaces, all.NextToken = page(all.NetworkInterfaces, in.NextToken, 1)
	return all, nil
}

func (p pagedEC2) DescribeSubnets(ctx context.Context, in *ec2.DescribeSubnetsInput, opts ...func(*ec2.Options)) (*ec2.DescribeSubnetsOutput, error) {
	all, err := p.EC2.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{Filters: in.Filters, SubnetIds: in.SubnetIds}, opts...)
	if err != nil {
		return nil, err
	}
	p.pages["DescribeSubnets"]++
	all.Subnets, all.NextToken = page(all.Subnets, in.NextToken, 1)
	return all, nil
}

func (p pagedEC2) DescribeRouteTables(ctx context.Context, in *ec2.DescribeRouteTablesInput, opts ...func(*ec2.Options)) (*ec2.DescribeRouteTablesOutput, error) {
	all, err := p.EC2.DescribeRouteTables(ctx, &ec2.DescribeRouteTablesInput{Filters: in.Filters, RouteTableIds: in.RouteTableIds}, opts...)
	if err != nil {
		return nil, err
	}
	p.pages["DescribeRouteTables"]++
	all.RouteTables, all.NextToken = page(all.RouteTables, in.NextToken, 1)
	return all, nil
}

func (p pagedEC2) DescribeVpcEndpoints(ctx context.Context, in *ec2.DescribeVpcEndpointsInput, opts ...func(*ec2.Options)) (*ec2.DescribeVpcEndpointsOutput, error) {
	all, err := p.EC2.DescribeVpcEndpoints(ctx, &ec2.DescribeVpcEndpointsInput{Filters: in.Filters, VpcEndpointIds: in.VpcEndpointIds}, opts...)
	if err != nil {
		return nil, err
	}
	p.pages["DescribeVpcEndpoints"]++
	all.VpcEndpoints, all.NextToken = page(all.VpcEndpoints, in.NextToken, 1)
	return all, nil
}

type pagedLambda struct {
	Lambda
	pages map[string]int
}

func (p pagedLambda) ListFunctions(ctx context.Context, in *lambda.ListFunctionsInput, opts ...func(*lambda.Options)) (*lambda.ListFunctionsOutput, error) {
	all, err := p.Lambda.ListFunctions(ctx, &lambda.ListFunctionsInput{}, opts...)
	if err != nil {
		return nil, err
	}
	p.pages["ListFunctions"]++
	all.Functions, all.NextMarker = page(all.Functions, in.Marker, 1)
	return all, nil
}

// paged puts the paging wrappers around moto's clients.
func paged(c Clients) (Clients, map[string]int) {
	pages := map[string]int{}
	c.CloudFormation = pagedCloudFormation{c.CloudFormation, pages}
	c.EC2 = pagedEC2{c.EC2, pages}
	c.Lambda = pagedLambda{c.Lambda, pages}
	return c, pages
}

// TestListingsReadEveryPage: with every listing in small pages, up still
// prints every new event of the stack (not only the newest page's), the stack is read back with all its resources, status lists
// every ENI of the relay, and the functions in the deployment's security
// group are all found (they stop down).
func TestListingsReadEveryPage(t *testing.T) {
	c, api := motoClients(t)
	ctx := context.Background()
	vpcID, pub := testutil.PublicSubnets(t, api, "10.11.0.0/16", 1)
	pc, pages := paged(c)
	o := motoUp("pages", stack.TemplateOptions{VPCID: vpcID, SubnetIDs: pub})
	var progress bytes.Buffer
	o.Out = &progress
	if _, err := Up(ctx, pc, o); err != nil {
		t.Fatal(err)
	}
	all, err := c.CloudFormation.ListStackResources(ctx, &cloudformation.ListStackResourcesInput{StackName: aws.String("pages")})
	if err != nil || len(all.StackResourceSummaries) < 3 {
		t.Fatalf("moto's stack has %d resources (%v); the test needs several", len(all.StackResourceSummaries), err)
	}
	// Every change of the change set is printed, not only its first page's.
	for _, r := range all.StackResourceSummaries {
		if id := aws.ToString(r.LogicalResourceId); !regexp.MustCompile(`\n +Add +` + id + ` `).MatchString(progress.String()) {
			t.Errorf("up did not print the change that adds %s:\n%s", id, progress.String())
		}
	}
	if want := fmt.Sprintf("(CREATE): %d changes\n", len(all.StackResourceSummaries)); !strings.Contains(progress.String(), want) {
		t.Errorf("up did not count every change (%q):\n%s", want, progress.String())
	}
	// moto records three events of the stack itself (none per resource):
	// up shows each, not only the newest page's.
	for _, status := range []string{"REVIEW_IN_PROGRESS", "CREATE_IN_PROGRESS", "CREATE_COMPLETE"} {
		if !regexp.MustCompile(`\] pages +` + status + `\n`).MatchString(progress.String()) {
			t.Errorf("up did not show the stack's event %s:\n%s", status, progress.String())
		}
	}
	st, err := DescribeDeployed(ctx, pc.CloudFormation, "pages")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range all.StackResourceSummaries {
		id := aws.ToString(r.LogicalResourceId)
		if st.Resources[id] != aws.ToString(r.PhysicalResourceId) {
			t.Errorf("resource %s read back as %q, want %q", id, st.Resources[id], aws.ToString(r.PhysicalResourceId))
		}
	}

	sg := st.Resources["RelaySecurityGroup"]
	var want []string
	for range 3 {
		eni, err := api.CreateNetworkInterface(ctx, &ec2.CreateNetworkInterfaceInput{SubnetId: aws.String(pub[0]), Groups: []string{sg}})
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, aws.ToString(eni.NetworkInterface.NetworkInterfaceId))
	}
	pc.CloudWatch = fakeCloudWatch{} // moto cannot speak CloudWatch's RPC v2 CBOR (status reads the alarms)
	s, err := readStatus(ctx, pc, "pages", "interface")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range s.ENIs {
		got = append(got, e.ID)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("status lists ENIs %v, want all of %v", got, want)
	}

	userFunction(t) // its role, and a function outside the deployment
	var fns []string
	for i := range 3 {
		name := "user-fn-" + strconv.Itoa(i)
		if _, err := c.Lambda.(*lambda.Client).CreateFunction(ctx, &lambda.CreateFunctionInput{FunctionName: aws.String(name),
			Role: aws.String("arn:aws:iam::123456789012:role/user-fn"), Runtime: lambdatypes.RuntimeProvidedal2023, Handler: aws.String("bootstrap"),
			VpcConfig: &lambdatypes.VpcConfig{SubnetIds: pub, SecurityGroupIds: []string{sg}},
			Code:      &lambdatypes.FunctionCode{ZipFile: zipBootstrap([]byte("#!/bin/sh\n"))}}); err != nil {
			t.Fatal(err)
		}
		fns = append(fns, name)
	}
	found, err := AttachedFunctions(ctx, pc.Lambda, sg, st.Resources["Relay"], st.Resources["Guardian"])
	if err != nil || !slices.Equal(found, fns) {
		t.Errorf("functions in the deployment's security group: %v (%v), want %v", found, err, fns)
	}
	for _, op := range []string{"ListStackResources", "DescribeChangeSet", "DescribeStackEvents", "DescribeNetworkInterfaces", "ListFunctions"} {
		if pages[op] < 3 {
			t.Errorf("%s served %d pages: the listing stopped before its last", op, pages[op])
		}
	}
}

// TestVPCListingsReadEveryPage: in an existing VPC read one item a page,
// up's check still sees every subnet the user gave (the last on the last
// page) with its route table, and every interface endpoint with private
// DNS already there (AWS refuses a second one for a service).
func TestVPCListingsReadEveryPage(t *testing.T) {
	c, api := motoClients(t)
	ctx := context.Background()
	vpcID, pub := testutil.PublicSubnets(t, api, "10.12.0.0/16", 3)
	pc, pages := paged(c)
	v, err := inspectVPC(ctx, pc.EC2, vpcID, pub)
	if err != nil || len(v.AZs) != 3 {
		t.Fatalf("inspectVPC of 3 public subnets read a page at a time: %+v, %v", v, err)
	}
	want := map[string]string{}
	for _, svc := range []string{"sqs", "sns"} {
		ep, err := api.CreateVpcEndpoint(ctx, &ec2.CreateVpcEndpointInput{VpcId: aws.String(vpcID), ServiceName: aws.String("com.amazonaws.us-east-1." + svc),
			VpcEndpointType: ec2types.VpcEndpointTypeInterface, PrivateDnsEnabled: aws.Bool(true), SubnetIds: pub[:1]})
		if err != nil {
			t.Fatal(err)
		}
		want[svc] = aws.ToString(ep.VpcEndpoint.VpcEndpointId)
	}
	found, err := existingPrivateDNSEndpoints(ctx, pc.EC2, vpcID, "us-east-1", nil)
	if err != nil || !maps.Equal(found, want) {
		t.Errorf("existing endpoints read a page at a time: %v (%v), want %v", found, err, want)
	}
	for _, op := range []string{"DescribeSubnets", "DescribeRouteTables", "DescribeVpcEndpoints"} {
		if pages[op] < 2 {
			t.Errorf("%s served %d pages: the listing stopped before its last", op, pages[op])
		}
	}
}
