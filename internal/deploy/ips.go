package deploy

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/lambda"

	"github.com/outgate/outgate/internal/awserr"
	"github.com/outgate/outgate/internal/guardian"
	"github.com/outgate/outgate/internal/stack"
)

// IP is one of a deployment's Elastic IPs.
type IP struct {
	AllocationID string `json:"allocation_id"`
	PublicIP     string `json:"public_ip"`
	Subnet       string `json:"subnet,omitempty"`      // the subnet it serves (outgate:subnet)
	AttachedTo   string `json:"attached_to,omitempty"` // ENI or instance, if associated
	Association  string `json:"association_id,omitempty"`
}

// ListIPs returns the Elastic IPs tagged for the deployment.
func ListIPs(ctx context.Context, c EC2, name string) ([]IP, error) {
	out, err := c.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{Filters: []ec2types.Filter{
		{Name: aws.String("tag:" + guardian.TagDeployment), Values: []string{name}}}})
	if err != nil {
		return nil, awserr.Explain("listing Elastic IPs (ec2:DescribeAddresses)", err)
	}
	var ips []IP
	for _, a := range out.Addresses {
		ip := IP{AllocationID: aws.ToString(a.AllocationId), PublicIP: aws.ToString(a.PublicIp),
			AttachedTo: aws.ToString(a.NetworkInterfaceId) + aws.ToString(a.InstanceId), Association: aws.ToString(a.AssociationId)}
		for _, t := range a.Tags {
			if aws.ToString(t.Key) == guardian.TagSubnet {
				ip.Subnet = aws.ToString(t.Value)
			}
		}
		ips = append(ips, ip)
	}
	sort.Slice(ips, func(i, j int) bool { return ips[i].AllocationID < ips[j].AllocationID })
	return ips, nil
}

// EnsureIPs makes the deployment own n IPs: the tagged ones first, then
// adopted allocation ids (tagged now, so a partner's known IP is reused), then
// new allocations. It never releases anything.
func EnsureIPs(ctx context.Context, c EC2, name string, n int, adopt []string) (ips []IP, created []IP, err error) {
	if len(adopt) > 0 {
		desc, err := c.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{AllocationIds: adopt})
		if err != nil {
			return nil, nil, awserr.Explain("looking up --adopt-eip", err)
		}
		for _, a := range desc.Addresses {
			ours := false
			for _, t := range a.Tags {
				if aws.ToString(t.Key) == guardian.TagDeployment && aws.ToString(t.Value) != name {
					return nil, nil, fmt.Errorf("%s belongs to deployment %q; outgate will not take it", aws.ToString(a.AllocationId), aws.ToString(t.Value))
				}
				ours = ours || aws.ToString(t.Key) == guardian.TagDeployment
			}
			// An IP in use elsewhere (an instance, a NAT gateway, a load
			// balancer's ENI) would be taken from it by the guardian or fail
			// the NAT gateway: that is someone's traffic, so it is refused.
			if !ours && (aws.ToString(a.AssociationId) != "" || aws.ToString(a.NetworkInterfaceId) != "" || aws.ToString(a.InstanceId) != "") {
				return nil, nil, fmt.Errorf("--adopt-eip %s (%s) is in use by %s; outgate adopts only an IP associated with nothing: free it first",
					aws.ToString(a.AllocationId), aws.ToString(a.PublicIp), aws.ToString(a.NetworkInterfaceId)+aws.ToString(a.InstanceId))
			}
		}
		if _, err := c.CreateTags(ctx, &ec2.CreateTagsInput{Resources: adopt,
			Tags: []ec2types.Tag{{Key: aws.String(guardian.TagDeployment), Value: aws.String(name)}}}); err != nil {
			return nil, nil, awserr.Explain("tagging adopted IPs (ec2:CreateTags)", err)
		}
	}
	ips, err = ListIPs(ctx, c, name)
	if err != nil {
		return nil, nil, err
	}
	for len(ips) < n {
		out, err := c.AllocateAddress(ctx, &ec2.AllocateAddressInput{Domain: ec2types.DomainTypeVpc,
			TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeElasticIp,
				Tags: []ec2types.Tag{{Key: aws.String(guardian.TagDeployment), Value: aws.String(name)}}}}})
		if err != nil {
			return nil, nil, awserr.Explain("allocating an Elastic IP (ec2:AllocateAddress)", err)
		}
		ip := IP{AllocationID: aws.ToString(out.AllocationId), PublicIP: aws.ToString(out.PublicIp)}
		ips = append(ips, ip)
		created = append(created, ip)
	}
	// A stable order: the i-th IP feeds the i-th NAT gateway, and a
	// reordering between runs would replace them.
	sort.Slice(ips, func(i, j int) bool { return ips[i].AllocationID < ips[j].AllocationID })
	return ips, created, nil
}

// ReleaseIPs releases the named IPs of a deployment, refusing any that are
// not tagged for it, still attached, or still used by the deployment's
// stack (an eni deployment's IP may be off its ENI for a while, when Lambda
// replaces it, and the guardian puts it back: releasing it then would cut
// that AZ's egress).
func ReleaseIPs(ctx context.Context, c Clients, name string, publicIPs []string) error {
	if err := stack.ValidateName(name); err != nil {
		return err
	}
	inUse, err := stackIPs(ctx, c, name)
	if err != nil {
		return err
	}
	ips, err := ListIPs(ctx, c.EC2, name)
	if err != nil {
		return err
	}
	byIP := map[string]IP{}
	for _, ip := range ips {
		byIP[ip.PublicIP] = ip
	}
	for _, p := range publicIPs {
		ip, ok := byIP[p]
		if !ok {
			return fmt.Errorf("%s is not an IP of deployment %q", p, name)
		}
		if ip.AttachedTo != "" {
			return fmt.Errorf("%s is still attached to %s: run `outgate down --name %s` first", p, ip.AttachedTo, name)
		}
		if inUse[p] {
			return fmt.Errorf("%s is still used by the stack %s (its relay expects to leave from it); nothing was released: run `outgate down --name %s` first, or `outgate up --name %s --azs N` with fewer AZs", p, name, name, name)
		}
	}
	for _, p := range publicIPs {
		if _, err := c.Releaser.ReleaseAddress(ctx, &ec2.ReleaseAddressInput{AllocationId: aws.String(byIP[p].AllocationID)}); err != nil {
			return awserr.Explain("releasing "+p+" (ec2:ReleaseAddress)", err)
		}
	}
	return nil
}

// stackIPs returns the public IPs the deployment's stack uses: those its
// relay is told to leave from (OUTGATE_EXPECTED_IPS), read from the function
// itself. No stack, no IPs in use.
func stackIPs(ctx context.Context, c Clients, name string) (map[string]bool, error) {
	st, err := lookupStack(ctx, c.CloudFormation, name)
	if err != nil || st == nil {
		return nil, err
	}
	d, err := DescribeDeployed(ctx, c.CloudFormation, name)
	if err != nil {
		return nil, err
	}
	relay := d.Resources["Relay"]
	if relay == "" {
		return nil, nil
	}
	fc, err := c.Lambda.GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String(relay)})
	if err != nil {
		return nil, awserr.Explain("reading which IPs the relay uses (lambda:GetFunctionConfiguration)", err)
	}
	used := map[string]bool{}
	if fc.Environment != nil {
		for _, ip := range strings.Split(fc.Environment.Variables["OUTGATE_EXPECTED_IPS"], ",") {
			if ip = strings.TrimSpace(ip); ip != "" {
				used[ip] = true
			}
		}
	}
	return used, nil
}
