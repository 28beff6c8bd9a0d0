// Package guardian keeps the static IPs of an outgate deployment attached to
// the relay function's Lambda Hyperplane ENIs. Lambda creates, replaces and
// reclaims those ENIs on its own (a config change, a second ENI past 65,000
// connections, another AZ, weeks of idleness); every run finds them all and
// gives each in-use ENI an Elastic IP from the deployment's pool, preferring
// the one that served its subnet before, so partners' allowlists stay valid.
//
// It never releases an IP, never allocates one unless the deployment allows
// it, and never touches an ENI or IP outside the deployment.
package guardian

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/outgate/outgate/internal/ctxutil"
)

// Tags on the deployment's Elastic IPs.
const (
	TagDeployment = "outgate:deployment" // pool membership
	TagSubnet     = "outgate:subnet"     // the subnet this IP serves (stable mapping)
)

// Config says which ENIs and which IPs belong to the deployment.
type Config struct {
	Deployment      string   // value of TagDeployment on the pool's IPs
	SecurityGroupID string   // outgate's security group; its Lambda ENIs are ours
	SubnetIDs       []string // the deployment's subnets
	// AllocationIDs, if set, is the pool; otherwise every IP tagged
	// outgate:deployment=Deployment is.
	AllocationIDs []string
	// InterfaceType is "lambda" in production; the moto tests use
	// "interface", since moto cannot make Lambda ENIs.
	InterfaceType string
	// AllowAllocate lets the guardian allocate a new IP when the pool is too
	// small. Off by default: a new IP is on nobody's allowlist, so the safe
	// answer is an alarm and a human, not a silent new address.
	AllowAllocate bool
	// RelayFunction is invoked as a keepalive (see keepalive.go).
	RelayFunction  string
	KeepaliveEvery time.Duration // default 1h
	RunEvery       time.Duration // the guardian's own schedule; default 1m
	// MaxAttempts per AWS call when throttled; default 5.
	MaxAttempts int
	// PageSize for DescribeNetworkInterfaces; default 100 (0 < n <= 1000).
	PageSize int32
}

// Guardian reconciles one deployment.
type Guardian struct {
	cfg    Config
	ec2    EC2
	lambda Lambda
	now    func() time.Time
	sleep  func(context.Context, time.Duration) error
}

// New checks the config and returns a guardian. lambda may be nil when no
// relay function is configured.
func New(cfg Config, e EC2, l Lambda) (*Guardian, error) {
	if cfg.SecurityGroupID == "" || len(cfg.SubnetIDs) == 0 {
		return nil, fmt.Errorf("guardian: the security group and at least one subnet are required")
	}
	if cfg.Deployment == "" && len(cfg.AllocationIDs) == 0 {
		return nil, fmt.Errorf("guardian: a deployment name (for the pool tag) or allocation ids are required")
	}
	if cfg.InterfaceType == "" {
		cfg.InterfaceType = "lambda"
	}
	if cfg.KeepaliveEvery <= 0 {
		cfg.KeepaliveEvery = time.Hour
	}
	if cfg.RunEvery <= 0 {
		cfg.RunEvery = time.Minute
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 5
	}
	if cfg.PageSize <= 0 || cfg.PageSize > 1000 {
		cfg.PageSize = 100
	}
	if cfg.RelayFunction != "" && l == nil {
		return nil, fmt.Errorf("guardian: a relay function is set but no Lambda client")
	}
	return &Guardian{cfg: cfg, ec2: e, lambda: l, now: time.Now, sleep: ctxutil.Sleep}, nil
}

// Summary is what one run saw and did; it is logged as one JSON line.
type Summary struct {
	Deployment      string   `json:"deployment"`
	ENIsSeen        int      `json:"enis_seen"`
	ENIsPending     int      `json:"enis_pending"`
	ENIsWithoutIP   int      `json:"enis_without_ip"`
	PoolSize        int      `json:"pool_size"`
	PoolFree        int      `json:"pool_free"`
	Associations    int      `json:"associations"`
	Disassociations int      `json:"disassociations"`
	Allocated       int      `json:"allocated"`
	Retries         int      `json:"retries"`
	Errors          []string `json:"errors,omitempty"`
	NeedsHuman      []string `json:"needs_human,omitempty"`
	FunctionState   string   `json:"function_state,omitempty"`
	KeepaliveSent   bool     `json:"keepalive_sent,omitempty"`
	// IPs maps each in-use ENI to its public IP after the run ("" if none).
	IPs map[string]string `json:"ips"`
}

type eni struct {
	id, subnet, privateIP, status string
	publicIP, allocationID        string // from its association, if any
}

type address struct {
	allocationID, publicIP, associationID string
	eniID, instanceID, subnetTag          string
}

// Run makes one pass. Partial failures are retried inside the run and
// whatever is left is in the summary; the next run converges.
func (g *Guardian) Run(ctx context.Context) Summary {
	s := Summary{Deployment: g.cfg.Deployment, IPs: map[string]string{}}
	enis, err := g.listENIs(ctx, &s)
	if err != nil {
		s.Errors = append(s.Errors, "listing ENIs: "+err.Error())
		return s
	}
	pool, err := g.listPool(ctx, &s)
	if err != nil {
		s.Errors = append(s.Errors, "listing the IP pool: "+err.Error())
		return s
	}
	g.reconcile(ctx, enis, pool, &s)
	g.verify(ctx, &s)
	g.keepalive(ctx, &s)
	return s
}

func (g *Guardian) listENIs(ctx context.Context, s *Summary) (map[string]*eni, error) {
	in := &ec2.DescribeNetworkInterfacesInput{
		Filters: []ec2types.Filter{
			{Name: aws.String("interface-type"), Values: []string{g.cfg.InterfaceType}},
			{Name: aws.String("group-id"), Values: []string{g.cfg.SecurityGroupID}},
			{Name: aws.String("subnet-id"), Values: g.cfg.SubnetIDs},
		},
		MaxResults: aws.Int32(g.cfg.PageSize),
	}
	out := map[string]*eni{}
	for {
		page, err := call(ctx, g, s, func() (*ec2.DescribeNetworkInterfacesOutput, error) { return g.ec2.DescribeNetworkInterfaces(ctx, in) })
		if err != nil {
			return nil, err
		}
		for _, n := range page.NetworkInterfaces {
			e := &eni{id: aws.ToString(n.NetworkInterfaceId), subnet: aws.ToString(n.SubnetId),
				privateIP: aws.ToString(n.PrivateIpAddress), status: string(n.Status)}
			if a := n.Association; a != nil {
				e.publicIP, e.allocationID = aws.ToString(a.PublicIp), aws.ToString(a.AllocationId)
			}
			out[e.id] = e
		}
		if aws.ToString(page.NextToken) == "" {
			return out, nil
		}
		in.NextToken = page.NextToken
	}
}

func (g *Guardian) poolInput() *ec2.DescribeAddressesInput {
	if len(g.cfg.AllocationIDs) > 0 {
		return &ec2.DescribeAddressesInput{AllocationIds: g.cfg.AllocationIDs}
	}
	return &ec2.DescribeAddressesInput{Filters: []ec2types.Filter{
		{Name: aws.String("tag:" + TagDeployment), Values: []string{g.cfg.Deployment}},
	}}
}

func (g *Guardian) listPool(ctx context.Context, s *Summary) (map[string]*address, error) {
	out, err := call(ctx, g, s, func() (*ec2.DescribeAddressesOutput, error) { return g.ec2.DescribeAddresses(ctx, g.poolInput()) })
	if err != nil {
		return nil, err
	}
	pool := map[string]*address{}
	for _, a := range out.Addresses {
		if a.Domain != "" && a.Domain != ec2types.DomainTypeVpc {
			continue
		}
		ad := &address{allocationID: aws.ToString(a.AllocationId), publicIP: aws.ToString(a.PublicIp),
			associationID: aws.ToString(a.AssociationId), eniID: aws.ToString(a.NetworkInterfaceId), instanceID: aws.ToString(a.InstanceId)}
		for _, t := range a.Tags {
			if aws.ToString(t.Key) == TagSubnet {
				ad.subnetTag = aws.ToString(t.Value)
			}
		}
		pool[ad.allocationID] = ad
	}
	s.PoolSize = len(pool)
	return pool, nil
}

// reconcile gives every in-use ENI an IP from the pool.
func (g *Guardian) reconcile(ctx context.Context, enis map[string]*eni, pool map[string]*address, s *Summary) {
	s.ENIsSeen = len(enis)
	inUse := map[string]*eni{}
	for id, e := range enis {
		switch e.status {
		case "in-use":
			inUse[id] = e
		case "available":
			// Lambda is about to delete it (or it is detached); no traffic
			// leaves through it.
		default:
			s.ENIsPending++ // "pending"/"attaching": the next run picks it up
		}
	}
	// Which pool IPs are free, held, or outside our reach.
	free := map[string]*address{}
	hasIP := map[string]bool{}
	for _, a := range sortedAddrs(pool) {
		switch {
		case a.associationID == "":
			free[a.allocationID] = a
		case a.eniID != "" && inUse[a.eniID] != nil:
			hasIP[a.eniID] = true
			if a.subnetTag != inUse[a.eniID].subnet {
				g.tagSubnet(ctx, a, inUse[a.eniID].subnet, s)
			}
		case a.eniID != "" && enis[a.eniID] != nil:
			// On one of our ENIs that is no longer in use (Lambda replaced
			// it): take the IP back for the replacement.
			if g.disassociate(ctx, a, s) {
				free[a.allocationID] = a
			}
		default:
			s.NeedsHuman = append(s.NeedsHuman, fmt.Sprintf("pool IP %s (%s) is associated with %s%s, outside this deployment; outgate leaves it alone",
				a.publicIP, a.allocationID, a.eniID, a.instanceID))
		}
	}
	// ENIs that carry an IP that is not in the pool (attached by hand) keep it.
	for id, e := range inUse {
		if !hasIP[id] && e.publicIP != "" {
			hasIP[id] = true
			s.NeedsHuman = append(s.NeedsHuman, fmt.Sprintf("ENI %s has IP %s (%s), which is not in the pool; outgate leaves it, but add it to the pool if partners allowlist it",
				id, e.publicIP, e.allocationID))
		}
	}
	subnetInUse := map[string]bool{}
	for _, e := range inUse {
		subnetInUse[e.subnet] = true
	}
	for _, e := range sortedENIs(inUse) {
		if hasIP[e.id] {
			continue
		}
		g.attach(ctx, e, free, subnetInUse, s)
	}
	s.PoolFree = len(free)
}

// attach gives e an IP: the one that served its subnet before, else an
// unmapped one, else one mapped to a subnet with no ENI now.
func (g *Guardian) attach(ctx context.Context, e *eni, free map[string]*address, subnetInUse map[string]bool, s *Summary) {
	for {
		a := pick(free, e.subnet, subnetInUse)
		if a == nil && g.cfg.AllowAllocate {
			a = g.allocate(ctx, e.subnet, s)
		}
		if a == nil {
			s.ENIsWithoutIP++
			s.NeedsHuman = append(s.NeedsHuman, fmt.Sprintf("ENI %s in %s has no static IP: the pool is too small; add an Elastic IP tagged %s=%s (and give it to your partners)",
				e.id, e.subnet, TagDeployment, g.cfg.Deployment))
			return
		}
		delete(free, a.allocationID)
		err := g.associate(ctx, a, e, s)
		switch code(err) {
		case "":
			s.Associations++
			if a.subnetTag != e.subnet {
				g.tagSubnet(ctx, a, e.subnet, s)
			}
			return
		case "Resource.AlreadyAssociated":
			// Another run got there first: with the IP (try the next one)
			// or with this ENI (then it is done). Verification tells.
			if g.eniHasIP(ctx, e.id, s) {
				return
			}
			continue
		case "InvalidNetworkInterfaceID.NotFound":
			free[a.allocationID] = a // the ENI went away meanwhile
			return
		default:
			free[a.allocationID] = a
			s.Errors = append(s.Errors, fmt.Sprintf("associating %s with %s: %v", a.allocationID, e.id, err))
			return
		}
	}
}

func pick(free map[string]*address, subnet string, subnetInUse map[string]bool) *address {
	var untagged, other *address
	for _, a := range sortedAddrs(free) {
		switch {
		case a.subnetTag == subnet:
			return a
		case a.subnetTag == "" && untagged == nil:
			untagged = a
		case a.subnetTag != "" && !subnetInUse[a.subnetTag] && other == nil:
			other = a
		}
	}
	if untagged != nil {
		return untagged
	}
	return other
}

func (g *Guardian) associate(ctx context.Context, a *address, e *eni, s *Summary) error {
	_, err := call(ctx, g, s, func() (*ec2.AssociateAddressOutput, error) {
		return g.ec2.AssociateAddress(ctx, &ec2.AssociateAddressInput{
			AllocationId:       aws.String(a.allocationID),
			NetworkInterfaceId: aws.String(e.id),
			PrivateIpAddress:   aws.String(e.privateIP),
			// Explicitly false: never pull an IP off another resource, and
			// never stack a second IP on an ENI another run just served.
			AllowReassociation: aws.Bool(false),
		})
	})
	return err
}

func (g *Guardian) disassociate(ctx context.Context, a *address, s *Summary) bool {
	_, err := call(ctx, g, s, func() (*ec2.DisassociateAddressOutput, error) {
		return g.ec2.DisassociateAddress(ctx, &ec2.DisassociateAddressInput{AssociationId: aws.String(a.associationID)})
	})
	switch code(err) {
	case "", "InvalidAssociationID.NotFound": // already gone counts as done
		s.Disassociations++
		a.associationID, a.eniID = "", ""
		return true
	}
	s.Errors = append(s.Errors, fmt.Sprintf("disassociating %s from %s: %v", a.allocationID, a.eniID, err))
	return false
}

func (g *Guardian) tagSubnet(ctx context.Context, a *address, subnet string, s *Summary) {
	_, err := call(ctx, g, s, func() (*ec2.CreateTagsOutput, error) {
		return g.ec2.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{a.allocationID},
			Tags: []ec2types.Tag{{Key: aws.String(TagSubnet), Value: aws.String(subnet)}}})
	})
	if err != nil {
		s.Errors = append(s.Errors, fmt.Sprintf("tagging %s with its subnet: %v", a.allocationID, err))
		return
	}
	a.subnetTag = subnet
}

func (g *Guardian) allocate(ctx context.Context, subnet string, s *Summary) *address {
	tags := []ec2types.Tag{{Key: aws.String(TagDeployment), Value: aws.String(g.cfg.Deployment)}, {Key: aws.String(TagSubnet), Value: aws.String(subnet)}}
	out, err := call(ctx, g, s, func() (*ec2.AllocateAddressOutput, error) {
		return g.ec2.AllocateAddress(ctx, &ec2.AllocateAddressInput{Domain: ec2types.DomainTypeVpc,
			TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeElasticIp, Tags: tags}}})
	})
	if err != nil {
		s.Errors = append(s.Errors, "allocating an IP: "+err.Error())
		return nil
	}
	s.Allocated++
	s.NeedsHuman = append(s.NeedsHuman, fmt.Sprintf("allocated new IP %s for %s: give it to your partners", aws.ToString(out.PublicIp), subnet))
	return &address{allocationID: aws.ToString(out.AllocationId), publicIP: aws.ToString(out.PublicIp), subnetTag: subnet}
}

func (g *Guardian) eniHasIP(ctx context.Context, id string, s *Summary) bool {
	out, err := call(ctx, g, s, func() (*ec2.DescribeNetworkInterfacesOutput, error) {
		return g.ec2.DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{NetworkInterfaceIds: []string{id}})
	})
	return err == nil && len(out.NetworkInterfaces) == 1 && out.NetworkInterfaces[0].Association != nil
}

// verify reads back the end state: association is eventually consistent and
// other runs may act at the same time, so counts come from what EC2 says.
func (g *Guardian) verify(ctx context.Context, s *Summary) {
	enis, err := g.listENIs(ctx, s)
	if err != nil {
		s.Errors = append(s.Errors, "verifying: "+err.Error())
		return
	}
	without := 0
	for _, e := range enis {
		if e.status != "in-use" {
			continue
		}
		s.IPs[e.id] = e.publicIP
		if e.publicIP == "" {
			without++
		}
	}
	s.ENIsWithoutIP = without
}

func sortedAddrs(m map[string]*address) []*address {
	out := make([]*address, 0, len(m))
	for _, a := range m {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].allocationID < out[j].allocationID })
	return out
}

func sortedENIs(m map[string]*eni) []*eni {
	out := make([]*eni, 0, len(m))
	for _, e := range m {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].subnet != out[j].subnet {
			return out[i].subnet < out[j].subnet
		}
		return out[i].id < out[j].id
	})
	return out
}
