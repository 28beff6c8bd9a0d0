package deploy

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	awsdynamodb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/outgate/outgate/internal/attach"
	"github.com/outgate/outgate/internal/deployedconfig"
	"github.com/outgate/outgate/internal/keys"
	"github.com/outgate/outgate/internal/stack"
	"github.com/outgate/outgate/internal/testutil"
)

// TestUpDoesNoHarm runs against one moto_server: a re-run of up keeps a
// nat deployment's shape; adding an AZ needs --yes and keeps the NAT
// gateway's IP; --adopt-eip refuses an IP in use; ips release refuses an
// IP the stack uses; a revoked key does not come back with up; an attached
// function stops a mode switch and down (naming it); and an eni -> nat
// switch frees the IPs only once the change set is ready.
func TestUpDoesNoHarm(t *testing.T) {
	c, api := motoClients(t)
	ctx := context.Background()
	noGuardianRuns(t)
	vpcID, pub := testutil.PublicSubnets(t, api, "10.12.0.0/16", 2)

	// A nat deployment in one AZ of an existing VPC.
	o := motoUp("keep", stack.TemplateOptions{Mode: "nat", VPCID: vpcID, SubnetIDs: pub[:1], Front: "url", Arch: "x86_64", MemoryMB: 512})
	o.Set = map[string]bool{FlagMode: true, FlagVPC: true, FlagSubnets: true, FlagArch: true, FlagMemory: true}
	if _, err := Up(ctx, c, o); err != nil {
		t.Fatal(err)
	}
	first, _ := DescribeDeployed(ctx, c.CloudFormation, "keep")
	ips, _ := ListIPs(ctx, c.EC2, "keep")
	if len(ips) != 1 || first.Resources["NatGateway0"] == "" {
		t.Fatalf("nat deployment: IPs %+v, resources %v", ips, first.Resources)
	}
	checkIdempotencyTable(t, first)
	current := ips[0].AllocationID

	// A plain re-run (the CLI's defaults, no flag set) keeps all of it.
	res, err := Up(ctx, c, motoUp("keep", cliDefaults))
	if err != nil {
		t.Fatalf("plain re-run: %v", err)
	}
	again, _ := DescribeDeployed(ctx, c.CloudFormation, "keep")
	if len(res.Changes) != 0 || again.Resources["NatGateway0"] != first.Resources["NatGateway0"] || again.Resources["Guardian"] != "" ||
		again.Resources["PrivateSubnet0"] != first.Resources["PrivateSubnet0"] {
		t.Errorf("a plain re-run reshaped the deployment: changes %v, resources %v", res.Changes, again.Resources)
	}
	if sh, err := ReadShape(ctx, c, again); err != nil || sh.Template.Arch != "x86_64" || sh.Template.MemoryMB != 512 || sh.Template.Mode != "nat" {
		t.Errorf("shape after a plain re-run: %+v %v", sh, err)
	}

	// Adding an AZ moves IPs into use: refused without --yes (or a
	// confirmation), before anything is allocated.
	more := motoUp("keep", stack.TemplateOptions{VPCID: vpcID, SubnetIDs: pub, AZs: 2})
	more.Set = map[string]bool{FlagAZs: true, FlagVPC: true, FlagSubnets: true}
	var needsYes ErrNeedsYes
	if _, err := Up(ctx, c, more); !errors.As(err, &needsYes) || !strings.Contains(err.Error(), "AZs: 1 -> 2") {
		t.Fatalf("adding an AZ without --yes: %v", err)
	}
	more.Confirm = func([]Change) bool { return false }
	if _, err := Up(ctx, c, more); !errors.As(err, &needsYes) {
		t.Fatalf("adding an AZ, answered no: %v", err)
	}
	if ips, _ := ListIPs(ctx, c.EC2, "keep"); len(ips) != 1 {
		t.Fatalf("a refused update allocated IPs: %+v", ips)
	}
	// --adopt-eip refuses an IP associated with anything.
	busy := allocate(t, api)
	eni, err := api.CreateNetworkInterface(ctx, &ec2.CreateNetworkInterfaceInput{SubnetId: aws.String(pub[1])})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := api.AssociateAddress(ctx, &ec2.AssociateAddressInput{AllocationId: aws.String(busy), NetworkInterfaceId: eni.NetworkInterface.NetworkInterfaceId}); err != nil {
		t.Fatal(err)
	}
	more.Yes, more.AdoptEIPs = true, []string{busy}
	if _, err := Up(ctx, c, more); err == nil || !strings.Contains(err.Error(), "in use by") {
		t.Fatalf("adopting an associated IP: %v", err)
	}
	// Adopt a free IP whose allocation id sorts before the NAT gateway's:
	// sorted, it would take NatGateway0's place and replace it.
	var early string
	for i := 0; i < 64 && early == ""; i++ {
		if a := allocate(t, api); a < current {
			early = a
		}
	}
	if early == "" {
		t.Fatal("moto gave no allocation id that sorts first in 64 tries")
	}
	more.AdoptEIPs = []string{early}
	// What up asks CloudFormation for is checked, not what moto makes of
	// it: moto rebuilds every resource whose parameters changed, even where
	// the value it reads is the same, so it loses NatGateway0 here.
	log := &callLog{}
	rc := c
	rc.CloudFormation = recordingCFN{c.CloudFormation, log}
	if _, err := Up(ctx, rc, more); err != nil {
		t.Fatalf("adding an AZ with --yes: %v", err)
	}
	if want := "EipAllocationIds=" + current + "," + early; !slices.Contains(log.list(), want) {
		t.Errorf("adding an AZ asks for %v; want %s (NatGateway0 keeps its IP)", log.list(), want)
	}

	// An interface endpoint someone already has in the VPC, with private
	// DNS, is found (AWS refuses a second one for the service); the
	// deployment's own endpoints are not counted.
	ep, err := api.CreateVpcEndpoint(ctx, &ec2.CreateVpcEndpointInput{VpcId: aws.String(vpcID), ServiceName: aws.String("com.amazonaws.us-east-1.sqs"),
		VpcEndpointType: ec2types.VpcEndpointTypeInterface, PrivateDnsEnabled: aws.Bool(true), SubnetIds: pub[:1]})
	if err != nil {
		t.Fatal(err)
	}
	epID := aws.ToString(ep.VpcEndpoint.VpcEndpointId)
	if found, err := existingPrivateDNSEndpoints(ctx, c.EC2, vpcID, "us-east-1", nil); err != nil || found["sqs"] != epID {
		t.Errorf("existing sqs endpoint with private DNS: %v %v", found, err)
	}
	if found, _ := existingPrivateDNSEndpoints(ctx, c.EC2, vpcID, "us-east-1", map[string]bool{epID: true}); len(found) != 0 {
		t.Errorf("the deployment's own endpoint counted as someone else's: %v", found)
	}

	// An eni deployment in another VPC.
	vpc2, pub2 := testutil.PublicSubnets(t, api, "10.13.0.0/16", 1)
	_, hash := keys.New()
	both := []byte("clients: [{name: a, key_sha256: [" + keys.Hash("og_x") + ", " + hash + "], hosts: [api.example]}]\n")
	e := motoUp("sw", stack.TemplateOptions{VPCID: vpc2, SubnetIDs: pub2})
	e.Set, e.ConfigYAML = map[string]bool{FlagVPC: true, FlagSubnets: true}, both
	res, err = Up(ctx, c, e)
	if err != nil {
		t.Fatal(err)
	}
	ip := res.IPs[0]
	// Not on an ENI (moto makes none), yet the stack uses it.
	if err := ReleaseIPs(ctx, c, "sw", []string{ip.PublicIP}); err == nil || !strings.Contains(err.Error(), "still used by the stack") {
		t.Errorf("releasing an IP the stack uses: %v", err)
	}
	// Revoked without --config: the file still has the key, and up refuses it.
	if err := deployedconfig.RevokeKey(ctx, c.SSM, deployedconfig.KeyEdit{Name: "sw", Client: "a"}, hash); err != nil {
		t.Fatal(err)
	}
	if _, err := Up(ctx, c, e); err == nil || !strings.Contains(err.Error(), "revoked") {
		t.Errorf("up from a file with a revoked key: %v", err)
	}
	if cfg, _ := deployedconfig.Read(ctx, c.SSM, "sw"); strings.Contains(string(cfg), hash) {
		t.Errorf("the revoked key came back:\n%s", cfg)
	}
	e.ConfigYAML = motoUp("", stack.TemplateOptions{}).ConfigYAML

	// An attached function stops a switch and down, which name it.
	fn := userFunction(t)
	st, _ := DescribeDeployed(ctx, c.CloudFormation, "sw")
	if err := attach.Attach(ctx, c.Lambda, c.IAM, st.AttachTarget(), fn, 10*time.Millisecond, io.Discard); err != nil {
		t.Fatal(err)
	}
	sw := e
	sw.Template.Mode, sw.Set, sw.Yes = "nat", map[string]bool{FlagMode: true}, true
	var attached ErrAttached
	if _, err := Up(ctx, c, sw); !errors.As(err, &attached) || !strings.Contains(err.Error(), "outgate detach --function "+fn) {
		t.Fatalf("switch with an attached function: %v", err)
	}
	if _, err := Down(ctx, c, "sw", 10*time.Millisecond, io.Discard); !errors.As(err, &attached) || !slices.Equal(attached.Functions, []string{fn}) {
		t.Fatalf("down with an attached function: %v", err)
	}
	if st, _ := lookupStack(ctx, c.CloudFormation, "sw"); st == nil {
		t.Fatal("down deleted the stack although it refused")
	}
	if err := attach.Detach(ctx, c.Lambda, fn, 10*time.Millisecond, io.Discard); err != nil {
		t.Fatal(err)
	}

	// The switch: the IP comes off the relay's ENI only after the change
	// set is ready, and before it runs.
	relayENI, err := api.CreateNetworkInterface(ctx, &ec2.CreateNetworkInterfaceInput{SubnetId: aws.String(pub2[0])})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := api.AssociateAddress(ctx, &ec2.AssociateAddressInput{AllocationId: aws.String(ip.AllocationID), NetworkInterfaceId: relayENI.NetworkInterface.NetworkInterfaceId}); err != nil {
		t.Fatal(err)
	}
	log = &callLog{}
	rc.CloudFormation, rc.EC2 = recordingCFN{c.CloudFormation, log}, recordingEC2{c.EC2, log}
	if _, err := Up(ctx, rc, sw); err != nil {
		t.Fatalf("eni -> nat: %v", err)
	}
	calls := log.list()
	ready, freed, exec := slices.Index(calls, "DescribeChangeSet CREATE_COMPLETE"), slices.Index(calls, "DisassociateAddress"), slices.Index(calls, "ExecuteChangeSet")
	if ready < 0 || freed < ready || exec < freed {
		t.Errorf("the IP was freed at call %d, the change set ready at %d and run at %d; want ready < freed < run: %v", freed, ready, exec, calls)
	}
}

// callLog records the calls that matter for the order of a switch (in-memory
// wrappers around the moto clients, since moto cannot tell when a call was
// made relative to another).
type callLog struct {
	mu    sync.Mutex
	calls []string
}

func (l *callLog) add(s string) { l.mu.Lock(); l.calls = append(l.calls, s); l.mu.Unlock() }
func (l *callLog) list() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.calls)
}

type recordingCFN struct {
	CloudFormation
	log *callLog
}

func (r recordingCFN) DescribeChangeSet(ctx context.Context, in *cloudformation.DescribeChangeSetInput, opts ...func(*cloudformation.Options)) (*cloudformation.DescribeChangeSetOutput, error) {
	out, err := r.CloudFormation.DescribeChangeSet(ctx, in, opts...)
	if err == nil {
		r.log.add("DescribeChangeSet " + string(out.Status))
	}
	return out, err
}

func (r recordingCFN) CreateChangeSet(ctx context.Context, in *cloudformation.CreateChangeSetInput, opts ...func(*cloudformation.Options)) (*cloudformation.CreateChangeSetOutput, error) {
	for _, p := range in.Parameters {
		if aws.ToString(p.ParameterKey) == stack.ParamEIPs {
			r.log.add(stack.ParamEIPs + "=" + aws.ToString(p.ParameterValue))
		}
	}
	return r.CloudFormation.CreateChangeSet(ctx, in, opts...)
}

func (r recordingCFN) ExecuteChangeSet(ctx context.Context, in *cloudformation.ExecuteChangeSetInput, opts ...func(*cloudformation.Options)) (*cloudformation.ExecuteChangeSetOutput, error) {
	r.log.add("ExecuteChangeSet")
	return r.CloudFormation.ExecuteChangeSet(ctx, in, opts...)
}

type recordingEC2 struct {
	EC2
	log *callLog
}

func (r recordingEC2) DisassociateAddress(ctx context.Context, in *ec2.DisassociateAddressInput, opts ...func(*ec2.Options)) (*ec2.DisassociateAddressOutput, error) {
	r.log.add("DisassociateAddress")
	return r.EC2.DisassociateAddress(ctx, in, opts...)
}

// allocate makes an untagged Elastic IP, as one a user already has.
func allocate(t *testing.T, api *ec2.Client) string {
	t.Helper()
	out, err := api.AllocateAddress(context.Background(), &ec2.AllocateAddressInput{Domain: ec2types.DomainTypeVpc})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.AllocationId)
}

// userFunction creates a function outside any VPC, as a user's would be.
func userFunction(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	ac, _ := awsconfig.LoadDefaultConfig(ctx)
	role, err := iam.NewFromConfig(ac).CreateRole(ctx, &iam.CreateRoleInput{RoleName: aws.String("user-fn"),
		AssumeRolePolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}`)})
	if err != nil {
		t.Fatal(err)
	}
	f, err := lambda.NewFromConfig(ac).CreateFunction(ctx, &lambda.CreateFunctionInput{FunctionName: aws.String("sms-sender"),
		Role: role.Role.Arn, Runtime: lambdatypes.RuntimeProvidedal2023, Handler: aws.String("bootstrap"),
		Code: &lambdatypes.FunctionCode{ZipFile: zipBootstrap([]byte("#!/bin/sh\n"))}})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(f.FunctionName)
}

// checkIdempotencyTable: the deployed stack's table is the relay's, in its
// environment, billed on demand (moto runs the template for real).
func checkIdempotencyTable(t *testing.T, d *Deployed) {
	t.Helper()
	ctx := context.Background()
	table := d.Resources[stack.IdempotencyTable]
	if table == "" {
		t.Fatalf("no idempotency table in %v", d.Resources)
	}
	ac, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	db := awsdynamodb.NewFromConfig(ac)
	out, err := db.DescribeTable(ctx, &awsdynamodb.DescribeTableInput{TableName: &table})
	if err != nil {
		t.Fatal(err)
	}
	if out.Table.BillingModeSummary == nil || out.Table.BillingModeSummary.BillingMode != "PAY_PER_REQUEST" {
		t.Errorf("table billing %+v", out.Table.BillingModeSummary)
	}
	// moto's CloudFormation leaves TimeToLiveSpecification and
	// PointInTimeRecoverySpecification unapplied (DescribeTimeToLive names no
	// attribute): TestRelayIdempotencyTable holds the template to them.
	fn, err := lambda.NewFromConfig(ac).GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String(d.Resources["Relay"])})
	if err != nil {
		t.Fatal(err)
	}
	if got := fn.Environment.Variables[stack.EnvIdempotencyTable]; got != table {
		t.Errorf("relay's %s = %q, want %q", stack.EnvIdempotencyTable, got, table)
	}
}
