package deploy

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/outgate/outgate/internal/ownca"
	"github.com/outgate/outgate/internal/preflight"
	"github.com/outgate/outgate/internal/stack"
	"github.com/outgate/outgate/internal/testutil"
)

// fakeBinary stands in for the linux/arm64 build: moto runs no instance.
func fakeBinary(context.Context) (Binary, error) {
	return Binary{[]byte("outgate for the instances")}, nil
}

func motoInstanceUp(name string, tpl stack.TemplateOptions) UpOptions {
	o := motoUp(name, tpl)
	o.Binary = fakeBinary
	o.Set = map[string]bool{FlagMode: true}
	return o
}

// TestInstanceUpStatusDown runs instance mode's life on moto, in an
// existing VPC (moto cannot delete a stack that made its own VPC): up
// stages the binary by its content address, creates one Auto Scaling group
// per AZ whose instance carries the deployment tag, tags each IP with the
// subnet it serves; status shows each AZ's instance and IP; a re-run keeps
// the shape and the IPs; a switch to eni is refused with what to do; down
// keeps the IPs. The instances' claim is theirs (internal/claim): here the
// test associates the IP as an instance would.
func TestInstanceUpStatusDown(t *testing.T) {
	c, api := motoClients(t)
	c.CloudWatch = fakeCloudWatch{} // moto cannot speak CloudWatch's RPC v2 CBOR: no readiness reports, no alarms
	ctx := context.Background()
	vpcID, pub := testutil.PublicSubnets(t, api, "10.21.0.0/16", 2)
	first := motoInstanceUp("box", stack.TemplateOptions{Mode: "instance", VPCID: vpcID, SubnetIDs: pub,
		Instance: stack.InstanceOptions{AllowFrom: []string{"198.51.100.0/24"}}, Notify: []string{"ops@example.com"}})
	first.Set[FlagAllowFrom], first.Set[FlagNotify] = true, true
	res, err := Up(ctx, c, first)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.IPs) != 2 {
		t.Fatalf("IPs %+v", res.IPs)
	}
	// Without --domain, up made the deployment's own CA (internal/ownca).
	ca, err := ownca.ReadCert(ctx, c.SSM, ownca.CertParameter("box"))
	if err != nil {
		t.Fatalf("no own CA after up: %v", err)
	}
	st, err := DescribeDeployed(ctx, c.CloudFormation, "box")
	if err != nil {
		t.Fatal(err)
	}
	bin, _ := fakeBinary(ctx)
	if st.Parameters[stack.ParamBinarySHA256] != bin.SHA256() || st.Parameters[stack.ParamBinaryKey] != bin.Key("box") {
		t.Errorf("binary parameters: %v", st.Parameters)
	}
	bucket := st.Parameters[stack.ParamCodeBucket]
	obj, err := c.S3.(*s3.Client).GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(bin.Key("box"))})
	if err != nil {
		t.Fatalf("binary not staged: %v", err)
	}
	obj.Body.Close()
	// Each IP names the subnet it serves, one subnet each.
	ips, _ := ListIPs(ctx, c.EC2, "box")
	seen := map[string]bool{}
	for _, ip := range ips {
		if ip.Subnet != pub[0] && ip.Subnet != pub[1] || seen[ip.Subnet] {
			t.Errorf("IP subnets: %+v", ips)
		}
		seen[ip.Subnet] = true
	}
	groups := instanceGroups(st)
	if len(groups) != 2 {
		t.Fatalf("groups: %v", st.Resources)
	}

	// The instance in pub[0] claims its IP, as internal/claim does.
	s, err := ReadStatus(ctx, c, "box")
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Instances) != 2 || len(s.Instances[0].Instances) != 1 {
		t.Fatalf("status instances: %+v (%v)", s.Instances, s.NeedsAttention)
	}
	g0 := s.Instances[0]
	var alloc string
	for _, ip := range ips {
		if ip.Subnet == g0.Subnet {
			alloc = ip.AllocationID
		}
	}
	out, err := api.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{g0.Instances[0].ID}})
	if err != nil {
		t.Fatal(err)
	}
	if tag(out.Reservations[0].Instances[0].Tags, "outgate:deployment") != "box" {
		t.Errorf("the instance does not carry the deployment tag its IAM scope needs: %v", out.Reservations[0].Instances[0].Tags)
	}
	if _, err := api.AssociateAddress(ctx, &ec2.AssociateAddressInput{AllocationId: aws.String(alloc), InstanceId: aws.String(g0.Instances[0].ID)}); err != nil {
		t.Fatal(err)
	}
	s, _ = ReadStatus(ctx, c, "box")
	if s.Instances[0].Instances[0].IP != s.Instances[0].PoolIP || s.Instances[1].Instances[0].IP != "" {
		t.Errorf("status after the claim: %+v", s.Instances)
	}
	if !containsText(s.NeedsAttention, "no readiness report") {
		t.Errorf("needs attention: %v", s.NeedsAttention)
	}

	// A plain re-run keeps the AZs, subnets and IPs, and asks for no CA again.
	o := motoInstanceUp("box", stack.TemplateOptions{Mode: "instance"})
	o.Set = map[string]bool{}
	again, err := Up(ctx, c, o)
	if err != nil {
		t.Fatalf("re-run: %v", err)
	}
	if len(again.IPs) != 2 || again.IPs[0].AllocationID != res.IPs[0].AllocationID {
		t.Errorf("re-run IPs: %+v, first %+v", again.IPs, res.IPs)
	}
	st2, _ := DescribeDeployed(ctx, c.CloudFormation, "box")
	if st2.Resources["InstanceGroup0"] != st.Resources["InstanceGroup0"] {
		t.Errorf("re-run replaced the group: %v", st2.Resources)
	}
	// ... who the alarms page ...
	if tpl, err := c.CloudFormation.GetTemplate(ctx, &cloudformation.GetTemplateInput{StackName: aws.String("box")}); err != nil || !strings.Contains(aws.ToString(tpl.TemplateBody), "ops@example.com") {
		t.Errorf("a plain re-run dropped the alarm subscription: %v", err)
	}
	// ... and who may connect: a re-run without --allow-from never widens it.
	if blocks, err := allowFromOf(ctx, c.SecurityGroups, st2.Resources["InstanceSecurityGroup"]); err != nil || len(blocks) != 1 || blocks[0] != "198.51.100.0/24" {
		t.Errorf("allow-from after a plain re-run: %v %v", blocks, err)
	}
	// verify's view: no domain, so the own CA's certificate and the
	// config's egress check URL (the default here).
	acc, err := ReadInstanceAccess(ctx, c, "box")
	if err != nil || acc.Domain != "" || string(acc.CAPEM) != string(ownca.PEM(ca)) || acc.CheckURL != "https://checkip.amazonaws.com" {
		t.Errorf("instance access: %+v %v", acc, err)
	}

	kept, err := Down(ctx, c, "box", o.Poll, o.Out)
	if err != nil {
		t.Fatal(err)
	}
	if len(kept) != 2 {
		t.Errorf("down kept %+v", kept)
	}
	// The instances' log group outlives the stack; a new up uses it
	// rather than fail creating it again.
	again2, err := Up(ctx, c, motoInstanceUp("box", stack.TemplateOptions{Mode: "instance", VPCID: vpcID, SubnetIDs: pub}))
	if err != nil {
		t.Fatalf("up after down: %v", err)
	}
	st6, _ := DescribeDeployed(ctx, c.CloudFormation, "box")
	if st6.Parameters[stack.ParamCreateInstanceLogs] != "false" || again2.IPs[0].AllocationID != res.IPs[0].AllocationID && again2.IPs[0].AllocationID != res.IPs[1].AllocationID {
		t.Errorf("up after down: parameters %v, IPs %+v", st6.Parameters, again2.IPs)
	}
	if err := DeleteLogGroups(ctx, c.Logs, "box", o.Out); err != nil {
		t.Fatal(err)
	}
	if keep, _ := keptInstanceLogs(ctx, c.Logs, "box", 30, func(string, ...any) {}); keep {
		t.Error("down --delete-logs left the instances' log group")
	}
}

func tag(ts []ec2types.Tag, k string) string {
	for _, t := range ts {
		if aws.ToString(t.Key) == k {
			return aws.ToString(t.Value)
		}
	}
	return ""
}

// The refusals come before anything is created: no IP allocated, no
// bucket, no stack.
func TestInstanceUpRefusesBeforeCreating(t *testing.T) {
	c, api := motoClients(t)
	ctx := context.Background()
	vpcID, pub := testutil.PublicSubnets(t, api, "10.22.0.0/16", 2)
	dns := testutil.NewDNS(t)
	for name, tc := range map[string]struct {
		tpl  stack.TemplateOptions
		want string
	}{
		"x86 type":     {stack.TemplateOptions{Mode: "instance", VPCID: vpcID, SubnetIDs: pub, Instance: stack.InstanceOptions{Type: "t3.nano"}}, "not arm64"},
		"unknown type": {stack.TemplateOptions{Mode: "instance", Instance: stack.InstanceOptions{Type: "t9z.giant"}}, "no such type"},
		"bad allow":    {stack.TemplateOptions{Mode: "instance", Instance: stack.InstanceOptions{AllowFrom: []string{"198.51.100.7/24"}}}, "did you mean"},
	} {
		o := motoInstanceUp("refuse", tc.tpl)
		_, err := Up(ctx, c, o)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
		if ips, _ := ListIPs(ctx, c.EC2, "refuse"); len(ips) != 0 {
			t.Errorf("%s: IPs allocated before the refusal: %+v", name, ips)
		}
	}
	// --domain before DNS points at the IPs: the IPs are allocated (so the
	// user can point the name at them), nothing else is created, and the
	// error says what to do.
	o := motoInstanceUp("dns", stack.TemplateOptions{Mode: "instance", VPCID: vpcID, SubnetIDs: pub, Instance: stack.InstanceOptions{Domain: "gw.example.com"}})
	o.Resolver = testutil.Resolver(dns.Addr)
	res, err := Up(ctx, c, o)
	var pd preflight.ErrPointDNS
	if !errors.As(err, &pd) || res == nil || len(res.IPs) != 2 || res.Status != "WAITING_FOR_DNS" {
		t.Fatalf("first up with a domain: %v %+v", err, res)
	}
	if exists, _ := stackExists(ctx, c.CloudFormation, "dns"); exists {
		t.Error("a stack was created before the domain resolved")
	}
	// Pointed: the same up goes on with the same IPs.
	dns.Set("gw.example.com", res.IPs[0].PublicIP, res.IPs[1].PublicIP)
	res2, err := Up(ctx, c, o)
	if err != nil {
		t.Fatalf("second up: %v", err)
	}
	if res2.IPs[0].AllocationID != res.IPs[0].AllocationID || res2.IPs[1].AllocationID != res.IPs[1].AllocationID {
		t.Errorf("IPs changed: %+v then %+v", res.IPs, res2.IPs)
	}
	st, _ := DescribeDeployed(ctx, c.CloudFormation, "dns")
	if st.Parameters[stack.ParamDomain] != "gw.example.com" {
		t.Errorf("domain parameter: %v", st.Parameters)
	}
}

// TestInstanceSwitchesKeepTheIPs: instance -> eni -> instance on one
// deployment in an existing VPC. Without --yes nothing changes; with it the
// groups are emptied before the change set runs, so the IP the instance
// claimed leaves it explicitly, and the relay gets the same IPs; going back
// stops the guardian first, and each IP keeps the subnet it serves.
func TestInstanceSwitchesKeepTheIPs(t *testing.T) {
	c, api := motoClients(t)
	c.CloudWatch = fakeCloudWatch{} // moto cannot speak CloudWatch's RPC v2 CBOR
	ctx := context.Background()
	vpcID, pub := testutil.PublicSubnets(t, api, "10.23.0.0/16", 2)
	res, err := Up(ctx, c, motoInstanceUp("box", stack.TemplateOptions{Mode: "instance", VPCID: vpcID, SubnetIDs: pub}))
	if err != nil {
		t.Fatal(err)
	}
	// The first AZ's instance claims its IP, as internal/claim does.
	s, err := ReadStatus(ctx, c, "box")
	if err != nil || len(s.Instances) != 2 || len(s.Instances[0].Instances) != 1 {
		t.Fatalf("status: %v %+v", err, s)
	}
	var alloc string
	ips, _ := ListIPs(ctx, c.EC2, "box")
	for _, ip := range ips {
		if ip.Subnet == s.Instances[0].Subnet {
			alloc = ip.AllocationID
		}
	}
	if _, err := api.AssociateAddress(ctx, &ec2.AssociateAddressInput{AllocationId: aws.String(alloc), InstanceId: aws.String(s.Instances[0].Instances[0].ID)}); err != nil {
		t.Fatal(err)
	}
	// instance -> eni in place: refused without --yes (nothing changed),
	// then done with it: the groups are emptied first, so the IP leaves
	// the instance explicitly, and the same IPs serve the relay.
	noGuardianRuns(t)
	sw := motoUp("box", stack.TemplateOptions{Mode: "eni"})
	sw.Set = map[string]bool{FlagMode: true}
	var needsYes ErrNeedsYes
	if _, err := Up(ctx, c, sw); !errors.As(err, &needsYes) {
		t.Fatalf("switch without --yes: %v", err)
	}
	if st3, _ := DescribeDeployed(ctx, c.CloudFormation, "box"); st3.Resources["InstanceGroup0"] == "" {
		t.Fatal("a refused switch changed the stack")
	}
	sw.Yes = true
	_, err = Up(ctx, c, sw)
	if err != nil {
		t.Fatalf("switch to eni: %v", err)
	}
	st4, _ := DescribeDeployed(ctx, c.CloudFormation, "box")
	if st4.Resources["Guardian"] == "" || st4.Resources["InstanceGroup0"] != "" {
		t.Errorf("after the switch to eni: %v", st4.Resources)
	}
	if ips, _ := ListIPs(ctx, c.EC2, "box"); len(ips) != 2 || ips[0].AllocationID != res.IPs[0].AllocationID && ips[0].AllocationID != res.IPs[1].AllocationID {
		t.Errorf("IPs after the switch: %+v (were %+v)", ips, res.IPs)
	} else {
		for _, ip := range ips {
			if ip.AttachedTo != "" {
				t.Errorf("%s still on %s after the instances left", ip.PublicIP, ip.AttachedTo)
			}
		}
	}
	// eni -> instance in place: the guardian is stopped first, and the
	// groups come back in the same subnets, each IP still tagged for its own.
	back := motoInstanceUp("box", stack.TemplateOptions{Mode: "instance"})
	back.Yes = true
	if _, err := Up(ctx, c, back); err != nil {
		t.Fatalf("switch back to instance: %v", err)
	}
	st5, _ := DescribeDeployed(ctx, c.CloudFormation, "box")
	if st5.Resources["InstanceGroup1"] == "" || st5.Resources["Guardian"] != "" {
		t.Errorf("after the switch back: %v", st5.Resources)
	}
	ips2, _ := ListIPs(ctx, c.EC2, "box")
	for _, ip := range ips2 {
		before := ""
		for _, p := range ips {
			if p.AllocationID == ip.AllocationID {
				before = p.Subnet
			}
		}
		if ip.Subnet != before {
			t.Errorf("%s moved from subnet %s to %s", ip.PublicIP, before, ip.Subnet)
		}
	}

}

// TestInstanceNATSwitchesKeepTheIP: nat -> instance -> nat in one AZ of an
// existing VPC. The NAT gateway's allocation becomes the AZ's instance IP
// (tagged with the public subnet it serves), and going back empties the
// group before the NAT gateway needs the IP, which it gets again. (moto
// lets a NAT gateway take an IP an instance still holds, so the release
// itself is proven by TestInstanceSwitchesKeepTheIPs.)
func TestInstanceNATSwitchesKeepTheIP(t *testing.T) {
	c, api := motoClients(t)
	c.CloudWatch = fakeCloudWatch{} // moto cannot speak CloudWatch's RPC v2 CBOR
	ctx := context.Background()
	vpcID, pub := testutil.PublicSubnets(t, api, "10.24.0.0/16", 1)
	nat := motoUp("flip", stack.TemplateOptions{Mode: "nat", VPCID: vpcID, SubnetIDs: pub})
	nat.Set = map[string]bool{FlagMode: true}
	first, err := Up(ctx, c, nat)
	if err != nil {
		t.Fatal(err)
	}
	alloc := first.IPs[0].AllocationID
	toInst := motoInstanceUp("flip", stack.TemplateOptions{Mode: "instance"})
	toInst.Yes = true
	if _, err := Up(ctx, c, toInst); err != nil {
		t.Fatalf("nat -> instance: %v", err)
	}
	st, _ := DescribeDeployed(ctx, c.CloudFormation, "flip")
	if st.Resources["InstanceGroup0"] == "" || st.Resources["NatGateway0"] != "" {
		t.Fatalf("after nat -> instance: %v", st.Resources)
	}
	ips, _ := ListIPs(ctx, c.EC2, "flip")
	if len(ips) != 1 || ips[0].AllocationID != alloc || ips[0].Subnet != pub[0] {
		t.Fatalf("IP after nat -> instance: %+v (was %s)", ips, alloc)
	}
	s, _ := ReadStatus(ctx, c, "flip")
	if _, err := api.AssociateAddress(ctx, &ec2.AssociateAddressInput{AllocationId: aws.String(alloc), InstanceId: aws.String(s.Instances[0].Instances[0].ID)}); err != nil {
		t.Fatal(err)
	}
	nat.Yes = true
	if _, err := Up(ctx, c, nat); err != nil {
		t.Fatalf("instance -> nat: %v", err)
	}
	st, _ = DescribeDeployed(ctx, c.CloudFormation, "flip")
	if st.Resources["NatGateway0"] == "" || st.Resources["InstanceGroup0"] != "" {
		t.Fatalf("after instance -> nat: %v", st.Resources)
	}
	gws, err := api.DescribeNatGateways(ctx, &ec2.DescribeNatGatewaysInput{NatGatewayIds: []string{st.Resources["NatGateway0"]}})
	if err != nil || len(gws.NatGateways) != 1 || len(gws.NatGateways[0].NatGatewayAddresses) == 0 || aws.ToString(gws.NatGateways[0].NatGatewayAddresses[0].AllocationId) != alloc {
		t.Errorf("the NAT gateway does not hold %s: %+v %v", alloc, gws, err)
	}
}

// tagIPSubnets keeps an IP's subnet when it is one of the deployment's
// and no other IP claims it first, and gives the subnets left to the
// others: two IPs tagged for one subnet end up one per subnet.
func TestTagIPSubnets(t *testing.T) {
	c, api := motoClients(t)
	ctx := context.Background()
	var ips []IP
	for range 3 {
		a, err := api.AllocateAddress(ctx, &ec2.AllocateAddressInput{Domain: ec2types.DomainTypeVpc})
		if err != nil {
			t.Fatal(err)
		}
		ips = append(ips, IP{AllocationID: aws.ToString(a.AllocationId), PublicIP: aws.ToString(a.PublicIp)})
	}
	ips[0].Subnet, ips[1].Subnet, ips[2].Subnet = "subnet-b", "subnet-b", "subnet-gone"
	got, err := tagIPSubnets(ctx, c.EC2, "x", ips, []string{"subnet-a", "subnet-b", "subnet-c"})
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Subnet != "subnet-b" || got[1].Subnet != "subnet-a" || got[2].Subnet != "subnet-c" {
		t.Errorf("subnets: %+v", got)
	}
	out, _ := api.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{AllocationIds: []string{got[1].AllocationID}})
	if tag(out.Addresses[0].Tags, "outgate:subnet") != "subnet-a" {
		t.Errorf("tag not written: %v", out.Addresses[0].Tags)
	}
}
