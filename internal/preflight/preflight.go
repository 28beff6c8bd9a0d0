// Package preflight refuses an instance-mode deployment that cannot work,
// before anything is created or billed: an instance type that is not arm64
// (the AMI and the binary are), a region or AZ that does not sell the type,
// a --domain whose DNS does not point at the deployment's IPs (the ACME CA
// would never reach the instances, and callers would reach something else),
// and a bad --allow-from. Each refusal says what to do instead.
package preflight

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"github.com/outgate/outgate/internal/hostname"
)

// EC2 is the narrow EC2 API the checks read; the IAM action is beside each.
type EC2 interface {
	// ec2:DescribeInstanceTypes (Resource "*": no resource-level permissions)
	DescribeInstanceTypes(ctx context.Context, in *ec2.DescribeInstanceTypesInput, opts ...func(*ec2.Options)) (*ec2.DescribeInstanceTypesOutput, error)
	// ec2:DescribeInstanceTypeOfferings (Resource "*")
	DescribeInstanceTypeOfferings(ctx context.Context, in *ec2.DescribeInstanceTypeOfferingsInput, opts ...func(*ec2.Options)) (*ec2.DescribeInstanceTypeOfferingsOutput, error)
	// ec2:DescribeAvailabilityZones (Resource "*")
	DescribeAvailabilityZones(ctx context.Context, in *ec2.DescribeAvailabilityZonesInput, opts ...func(*ec2.Options)) (*ec2.DescribeAvailabilityZonesOutput, error)
}

// DefaultInstanceType is the smallest Graviton instance: the gateway needs
// little memory, and instance hours are most of the mode's bill.
const DefaultInstanceType = "t4g.nano"

// instanceTypeName: family.size, as EC2 spells them (t4g.nano, c7gn.medium).
var instanceTypeName = regexp.MustCompile(`^[a-z][a-z0-9-]*\.[a-z0-9]+$`)

// InstanceTypeName refuses what cannot be an instance type's name, before
// any AWS call (and before it lands in a template).
func InstanceTypeName(typ string) error {
	if !instanceTypeName.MatchString(typ) || len(typ) > 64 {
		return fmt.Errorf("--instance-type %q is not an instance type name such as %s", typ, DefaultInstanceType)
	}
	return nil
}

// InstanceType refuses a type that does not exist or does not run arm64.
func InstanceType(ctx context.Context, api EC2, typ string) error {
	if err := InstanceTypeName(typ); err != nil {
		return err
	}
	out, err := api.DescribeInstanceTypes(ctx, &ec2.DescribeInstanceTypesInput{InstanceTypes: []ec2types.InstanceType{ec2types.InstanceType(typ)}})
	var ae smithy.APIError
	if errors.As(err, &ae) && strings.HasPrefix(ae.ErrorCode(), "InvalidInstanceType") {
		return fmt.Errorf("--instance-type %s: EC2 knows no such type in this region; use a Graviton (arm64) type such as %s, t4g.micro or c7g.medium", typ, DefaultInstanceType)
	}
	if err != nil {
		return fmt.Errorf("checking --instance-type (ec2:DescribeInstanceTypes): %w", err)
	}
	if len(out.InstanceTypes) == 0 {
		return fmt.Errorf("--instance-type %s: EC2 knows no such type in this region; use a Graviton (arm64) type such as %s", typ, DefaultInstanceType)
	}
	it := out.InstanceTypes[0]
	if it.ProcessorInfo == nil || !slices.Contains(it.ProcessorInfo.SupportedArchitectures, ec2types.ArchitectureTypeArm64) {
		var archs []string
		if it.ProcessorInfo != nil {
			for _, a := range it.ProcessorInfo.SupportedArchitectures {
				archs = append(archs, string(a))
			}
		}
		return fmt.Errorf("--instance-type %s runs %s, not arm64: instance mode runs the arm64 build on Amazon Linux 2023 arm64; use a Graviton type (a \"g\" in the family: %s, t4g.micro, c7g.medium)",
			typ, strings.Join(archs, "/"), DefaultInstanceType)
	}
	return nil
}

// offeredAZs are the region's available AZs (not Local or Wavelength
// Zones) that sell the type, sorted by name.
func offeredAZs(ctx context.Context, api EC2, typ string) (offered, all []string, err error) {
	azs, err := api.DescribeAvailabilityZones(ctx, &ec2.DescribeAvailabilityZonesInput{Filters: []ec2types.Filter{
		{Name: aws.String("zone-type"), Values: []string{"availability-zone"}},
		{Name: aws.String("state"), Values: []string{"available"}},
	}})
	if err != nil {
		return nil, nil, fmt.Errorf("listing the region's availability zones (ec2:DescribeAvailabilityZones): %w", err)
	}
	for _, z := range azs.AvailabilityZones {
		all = append(all, aws.ToString(z.ZoneName))
	}
	sells := map[string]bool{}
	p := ec2.NewDescribeInstanceTypeOfferingsPaginator(api, &ec2.DescribeInstanceTypeOfferingsInput{
		LocationType: ec2types.LocationTypeAvailabilityZone,
		Filters:      []ec2types.Filter{{Name: aws.String("instance-type"), Values: []string{typ}}},
	})
	for pages := 0; p.HasMorePages() && pages < 100; pages++ {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("checking where %s is sold (ec2:DescribeInstanceTypeOfferings): %w", typ, err)
		}
		for _, o := range page.InstanceTypeOfferings {
			sells[aws.ToString(o.Location)] = true
		}
	}
	for _, z := range all {
		if sells[z] {
			offered = append(offered, z)
		}
	}
	sort.Strings(offered)
	sort.Strings(all)
	return offered, all, nil
}

// NewVPCAZs checks the AZs a new VPC will use: subnet i goes in
// Fn::GetAZs' i-th AZ, the region's available AZs by name, so each of the
// first n must sell the type, or the group there would never launch. It
// returns them.
func NewVPCAZs(ctx context.Context, api EC2, region, typ string, n int) ([]string, error) {
	offered, all, err := offeredAZs(ctx, api, typ)
	if err != nil {
		return nil, err
	}
	switch {
	case len(offered) == 0:
		return nil, fmt.Errorf("%s is not sold in region %s (none of its AZs offers it): choose another --region, or another arm64 --instance-type that the region sells (`aws ec2 describe-instance-type-offerings --region %s --filters Name=instance-type,Values=t4g.*`)",
			typ, region, region)
	case len(all) < n:
		return nil, fmt.Errorf("--azs %d, but region %s has %d availability zones", n, region, len(all))
	}
	first := all[:n]
	if bad := without(first, offered); len(bad) > 0 {
		return nil, fmt.Errorf("a new VPC uses the region's first %d AZs (%s), and %s does not sell %s in %s: use fewer --azs, or --vpc-id with subnets in AZs that sell it (%s)",
			n, strings.Join(first, ", "), typ, typ, strings.Join(bad, ", "), strings.Join(offered, ", "))
	}
	return first, nil
}

// CheckAZs refuses existing subnets in AZs that do not sell the type (the
// Auto Scaling group would never launch there).
func CheckAZs(ctx context.Context, api EC2, region, typ string, azs []string) error {
	offered, _, err := offeredAZs(ctx, api, typ)
	if err != nil {
		return err
	}
	var bad []string
	for _, z := range azs {
		if !slices.Contains(offered, z) {
			bad = append(bad, z)
		}
	}
	switch {
	case len(offered) == 0:
		return fmt.Errorf("%s is not sold in region %s: choose another --region, or another arm64 --instance-type", typ, region)
	case len(bad) > 0:
		return fmt.Errorf("%s is not sold in %s, where --subnet-ids has a subnet: use subnets in %s, or another --instance-type",
			typ, strings.Join(bad, ", "), strings.Join(offered, ", "))
	}
	return nil
}

func without(all, some []string) []string {
	var out []string
	for _, a := range all {
		if !slices.Contains(some, a) {
			out = append(out, a)
		}
	}
	return out
}

// AllowFrom parses --allow-from: IPv4 and IPv6 CIDR blocks the security
// group admits on 443. Empty means anywhere (0.0.0.0/0 and ::/0): the key
// authenticates every request. A block with host bits set is refused with
// the block it probably meant, not silently widened or narrowed.
func AllowFrom(list []string) ([]netip.Prefix, error) {
	if len(list) == 0 {
		return []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}, nil
	}
	// A security group takes 60 inbound rules per protocol family by default.
	const maxRules = 50
	var out []netip.Prefix
	var errs []error
	for _, s := range list {
		p, err := netip.ParsePrefix(strings.TrimSpace(s))
		if err != nil {
			if a, aerr := netip.ParseAddr(strings.TrimSpace(s)); aerr == nil {
				errs = append(errs, fmt.Errorf("--allow-from %q: a CIDR block is needed; for one address write %s", s, netip.PrefixFrom(a, a.BitLen())))
			} else {
				errs = append(errs, fmt.Errorf("--allow-from %q is not a CIDR block (such as 198.51.100.0/24 or 2001:db8::/32)", s))
			}
			continue
		}
		if p.Addr().Zone() != "" || p.Addr().Is4In6() {
			errs = append(errs, fmt.Errorf("--allow-from %q: write IPv4 blocks as IPv4, without zones", s))
			continue
		}
		if p.Masked() != p {
			errs = append(errs, fmt.Errorf("--allow-from %q has bits set past /%d: did you mean %s?", s, p.Bits(), p.Masked()))
			continue
		}
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	if len(out) > maxRules {
		errs = append(errs, fmt.Errorf("--allow-from: %d blocks, at most %d (a security group's rule quota); use wider blocks", len(out), maxRules))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// Resolver looks a name up (a *net.Resolver).
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// ErrPointDNS stops a first `up --domain` after the IPs are allocated:
// the CA can only issue once the name points at them, and the IPs did not
// exist before. Nothing else was created.
type ErrPointDNS struct {
	Domain string
	IPs    []netip.Addr
	// Resolved is what the name resolves to now (empty: it does not).
	Resolved []netip.Addr
}

func (e ErrPointDNS) Error() string {
	var ips, now []string
	for _, a := range e.IPs {
		ips = append(ips, a.String())
	}
	for _, a := range e.Resolved {
		now = append(now, a.String())
	}
	state := "does not resolve yet"
	if len(now) > 0 {
		state = "resolves to " + strings.Join(now, ", ")
	}
	return fmt.Sprintf("%s %s: point it at the deployment's IPs (A records %s; no AAAA record), wait until `dig +short %s` shows them, then run the same `up` again. "+
		"The IPs are allocated and kept (give them to partners now); nothing else was created",
		e.Domain, state, strings.Join(ips, " and "), e.Domain)
}

// Domain checks that --domain resolves to exactly the deployment's IPs:
// every address it resolves to must be one of them (else callers, and the
// ACME CA's challenge, reach someone else), and every IP should be in it
// (else that AZ's instance serves nobody; returned as a warning). IPv6
// answers are refused: the IPs are IPv4 Elastic IPs.
func Domain(ctx context.Context, r Resolver, domain string, ips []netip.Addr) (warnings []string, err error) {
	name, err := hostname.Normalize(domain)
	if err != nil || !strings.Contains(name, ".") || net4or6(name) {
		return nil, fmt.Errorf("--domain %q is not a DNS name such as gw.example.com", domain)
	}
	if name != domain {
		return nil, fmt.Errorf("--domain %q: write it as %s", domain, name)
	}
	got, lerr := r.LookupNetIP(ctx, "ip", name)
	if lerr != nil || len(got) == 0 {
		return nil, ErrPointDNS{Domain: name, IPs: ips}
	}
	var foreign []string
	seen := map[netip.Addr]bool{}
	for _, a := range got {
		a = a.Unmap()
		seen[a] = true
		if !slices.Contains(ips, a) {
			foreign = append(foreign, a.String())
		}
	}
	if len(foreign) > 0 {
		return nil, ErrPointDNS{Domain: name, IPs: ips, Resolved: unmapAll(got)}
	}
	for _, a := range ips {
		if !seen[a] {
			warnings = append(warnings, fmt.Sprintf("%s does not resolve to %s: callers reach only the other AZs' instances until you add an A record for it", name, a))
		}
	}
	return warnings, nil
}

func unmapAll(as []netip.Addr) []netip.Addr {
	out := make([]netip.Addr, len(as))
	for i, a := range as {
		out[i] = a.Unmap()
	}
	return out
}

func net4or6(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}
