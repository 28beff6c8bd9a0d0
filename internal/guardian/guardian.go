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
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/outgate/outgate/internal/attached"
	"github.com/outgate/outgate/internal/ctxutil"
)

// Tags on the deployment's Elastic IPs.
const (
	TagDeployment = "outgate:deployment" // pool membership
	TagSubnet     = "outgate:subnet"     // the subnet this IP serves (stable mapping)
)

// Config says which ENIs and which IPs belong to the deployment.
type Config struct {
	Deployment string // value of TagDeployment on the pool's IPs
	// SecurityGroupID is the relay's only security group: a Lambda ENI is
	// the deployment's when its security-group set is exactly this one.
	SecurityGroupID string
	SubnetIDs       []string // the deployment's subnets
	// AllocationIDs are added to the pool, which is always every IP tagged
	// outgate:deployment=Deployment: a list never shrinks the pool, so an
	// IP tagged later (a spare, or one a human adds) is used at once.
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

// LambdaENIDescription starts the description Lambda writes on its
// Hyperplane ENIs ("AWS Lambda VPC ENI-<function>-<uuid>"). Together with
// the exact security-group set it tells the relay's ENIs from any other
// interface that merely includes the relay's group.
const LambdaENIDescription = "AWS Lambda VPC ENI-"

// Guardian reconciles one deployment.
type Guardian struct {
	cfg     Config
	ec2     EC2
	lambda  Lambda
	tagging Tagging // nil: attached functions are not checked
	now     func() time.Time
	sleep   func(context.Context, time.Duration) error
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

// CheckAttached makes every run check the functions attached to the
// deployment (tagged outgate:attached=<deployment>): any whose VPC config
// no longer matches the deployment's subnets and security group is
// reported (DriftedFunctions, metric AttachedFunctionsDrifted). It reads
// them with the Lambda client given to New.
func (g *Guardian) CheckAttached(t Tagging) error {
	if g.lambda == nil {
		return fmt.Errorf("guardian: checking attached functions needs a Lambda client")
	}
	g.tagging = t
	return nil
}

// Summary is what one run saw and did; it is logged as one JSON line.
type Summary struct {
	Deployment    string `json:"deployment"`
	ENIsSeen      int    `json:"enis_seen"`
	ENIsPending   int    `json:"enis_pending"`
	ENIsRetiring  int    `json:"enis_retiring"`
	ENIsWithoutIP int    `json:"enis_without_ip"`
	// ENIsUnknown is set when the ENIs could not be listed: then nothing
	// is known about them, and ENIsWithoutIP (0) must not read as healthy.
	ENIsUnknown     bool     `json:"enis_unknown,omitempty"`
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
	// AttachedChecked is set when the run checked the attached functions
	// and could list them; only then is AttachedFunctionsDrifted reported
	// (a failed listing is an error, not a healthy 0).
	AttachedChecked   bool     `json:"attached_checked,omitempty"`
	AttachedFunctions int      `json:"attached_functions,omitempty"`
	DriftedFunctions  []string `json:"drifted_functions,omitempty"` // "name: what differs"
}

// Err is nil for a clean run, else one error naming every failure, so the
// guardian's invocation fails (and Lambda counts an error) whenever the run
// could not do or check its work.
func (s Summary) Err() error {
	if len(s.Errors) == 0 {
		return nil
	}
	return fmt.Errorf("guardian run for %s: %s", s.Deployment, strings.Join(s.Errors, "; "))
}

type eni struct {
	id, subnet, privateIP, status, typ string
	publicIP, allocationID             string // from its association, if any
}

type address struct {
	allocationID, publicIP, associationID string
	eniID, instanceID, subnetTag          string
}

// Run makes one pass. Partial failures are retried inside the run and
// whatever is left is in the summary's Errors (see Summary.Err); the next
// run converges.
func (g *Guardian) Run(ctx context.Context) Summary {
	s := Summary{Deployment: g.cfg.Deployment, IPs: map[string]string{}}
	enis, err := g.listENIs(ctx, &s)
	if err != nil {
		s.Errors = append(s.Errors, "listing ENIs: "+err.Error())
		s.ENIsUnknown = true
		g.finish(ctx, &s)
		return s
	}
	pool, err := g.listPool(ctx, &s)
	if err != nil {
		s.Errors = append(s.Errors, "listing the IP pool: "+err.Error())
	}
	if pool == nil {
		// Nothing can be attached, but what the ENIs carry is known:
		// report the ones without an IP rather than a healthy 0.
		g.count(enis, &s)
		g.finish(ctx, &s)
		return s
	}
	g.reconcile(ctx, enis, pool, &s)
	g.verify(ctx, &s)
	g.finish(ctx, &s)
	return s
}

// finish ends every run, whatever failed before: the keepalive, and the
// attached functions' check.
func (g *Guardian) finish(ctx context.Context, s *Summary) {
	g.keepalive(ctx, s)
	g.checkAttached(ctx, s)
}

// checkAttached reports the attached functions whose VPC config drifted
// from the deployment's (a deploy of their own that dropped it).
func (g *Guardian) checkAttached(ctx context.Context, s *Summary) {
	if g.tagging == nil || g.cfg.Deployment == "" {
		return
	}
	fns, err := attached.Check(ctx, g.tagging, g.lambda, attached.Want{Deployment: g.cfg.Deployment, Subnets: g.cfg.SubnetIDs, SecurityGroup: g.cfg.SecurityGroupID})
	if err != nil {
		s.Errors = append(s.Errors, "checking the attached functions: "+err.Error())
	}
	if fns == nil && err != nil {
		return
	}
	s.AttachedChecked = true
	s.AttachedFunctions = len(fns)
	for _, f := range fns {
		if f.State != attached.Drifted {
			continue
		}
		s.DriftedFunctions = append(s.DriftedFunctions, f.Name+": "+strings.Join(f.Differs, "; "))
		s.NeedsHuman = append(s.NeedsHuman, fmt.Sprintf("function %s no longer leaves through deployment %s (%s): put the VPC config in its own code (`outgate attach --name %s --print FORMAT`), or run `outgate attach --name %s --function %s` again",
			f.Name, g.cfg.Deployment, strings.Join(f.Differs, "; "), g.cfg.Deployment, g.cfg.Deployment, f.Name))
	}
}

// serving reports whether traffic leaves through e: an in-use ENI of the
// live interface type. Lambda's retiring ENIs have been reported to show
// interface-type "interface" instead of "lambda"; they serve nothing.
func (g *Guardian) serving(e *eni) bool {
	return e.status == "in-use" && e.typ == g.cfg.InterfaceType
}

// retiring reports whether Lambda is done with e: "available" (about to be
// deleted) or no longer of the live interface type.
func (g *Guardian) retiring(e *eni) bool {
	return e.status == "available" || e.typ != g.cfg.InterfaceType
}

// count fills the ENI counts of s from a listing alone.
func (g *Guardian) count(enis map[string]*eni, s *Summary) {
	s.ENIsSeen = len(enis)
	for _, e := range enis {
		switch {
		case g.serving(e):
			s.IPs[e.id] = e.publicIP
			if e.publicIP == "" {
				s.ENIsWithoutIP++
			}
		case g.retiring(e):
			s.ENIsRetiring++
		default:
			s.ENIsPending++
		}
	}
}

// ours reports whether a listed interface is one of the relay's Lambda
// ENIs. The group-id filter matches every interface whose groups include
// the relay's; only an exact set (the relay has this one group) and
// Lambda's description make it the relay's, so another function's ENI in
// the same subnet that also carries outgate's group never gets a pool IP.
func (g *Guardian) ours(n ec2types.NetworkInterface) bool {
	if len(n.Groups) != 1 || aws.ToString(n.Groups[0].GroupId) != g.cfg.SecurityGroupID {
		return false
	}
	return strings.HasPrefix(aws.ToString(n.Description), LambdaENIDescription)
}

func (g *Guardian) listENIs(ctx context.Context, s *Summary) (map[string]*eni, error) {
	types := []string{g.cfg.InterfaceType}
	if g.cfg.InterfaceType != "interface" {
		types = append(types, "interface") // retiring Lambda ENIs, so their IPs are taken back
	}
	in := &ec2.DescribeNetworkInterfacesInput{
		Filters: []ec2types.Filter{
			{Name: aws.String("interface-type"), Values: types},
			{Name: aws.String("group-id"), Values: []string{g.cfg.SecurityGroupID}},
			{Name: aws.String("subnet-id"), Values: g.cfg.SubnetIDs},
		},
		MaxResults: aws.Int32(g.cfg.PageSize),
	}
	out := map[string]*eni{}
	// The SDK's paginator carries the tokens; a failed page leaves it where
	// it was, so call may ask for the same page again.
	pages := ec2.NewDescribeNetworkInterfacesPaginator(g.ec2, in)
	// Bounded: 10,000 pages of PageSize is far beyond any account's ENIs;
	// a NextToken that never ends is an error, not a hang.
	for i := 0; pages.HasMorePages(); i++ {
		if i == 10000 {
			return nil, fmt.Errorf("DescribeNetworkInterfaces kept paginating")
		}
		page, err := call(ctx, g, s, func() (*ec2.DescribeNetworkInterfacesOutput, error) { return pages.NextPage(ctx) })
		if err != nil {
			return nil, err
		}
		for _, n := range page.NetworkInterfaces {
			if !g.ours(n) {
				continue
			}
			e := &eni{id: aws.ToString(n.NetworkInterfaceId), subnet: aws.ToString(n.SubnetId),
				privateIP: aws.ToString(n.PrivateIpAddress), status: string(n.Status), typ: string(n.InterfaceType)}
			if a := n.Association; a != nil {
				e.publicIP, e.allocationID = aws.ToString(a.PublicIp), aws.ToString(a.AllocationId)
			}
			out[e.id] = e
		}
	}
	return out, nil
}

// listPool returns every IP tagged for the deployment, plus the configured
// allocation ids. A failure of the second lookup (an id was released, say)
// is returned with the tagged pool, so one bad id never stops the run.
func (g *Guardian) listPool(ctx context.Context, s *Summary) (map[string]*address, error) {
	pool := map[string]*address{}
	add := func(as []ec2types.Address) {
		for _, a := range as {
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
	}
	if g.cfg.Deployment != "" {
		out, err := call(ctx, g, s, func() (*ec2.DescribeAddressesOutput, error) {
			return g.ec2.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{Filters: []ec2types.Filter{
				{Name: aws.String("tag:" + TagDeployment), Values: []string{g.cfg.Deployment}}}})
		})
		if err != nil {
			return nil, err
		}
		add(out.Addresses)
	}
	var extraErr error
	if len(g.cfg.AllocationIDs) > 0 {
		out, err := call(ctx, g, s, func() (*ec2.DescribeAddressesOutput, error) {
			return g.ec2.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{AllocationIds: g.cfg.AllocationIDs})
		})
		if err != nil {
			extraErr = fmt.Errorf("the configured allocation ids %s: %w", strings.Join(g.cfg.AllocationIDs, ","), err)
			if g.cfg.Deployment == "" {
				return nil, extraErr
			}
		} else {
			add(out.Addresses)
		}
	}
	s.PoolSize = len(pool)
	return pool, extraErr
}

// plan is the state attach chooses from: the free IPs, and per subnet the
// tagged IPs and the ENIs still waiting for one.
type plan struct {
	free    map[string]*address
	tagged  map[string]int // subnet -> pool IPs tagged for it (free or held)
	needing map[string]int // subnet -> serving ENIs without an IP, not yet served
	pending map[string]int // subnet -> pending ENIs without an IP (they will need one)
	subnets map[string]bool
}

// reconcile gives every serving ENI an IP from the pool.
func (g *Guardian) reconcile(ctx context.Context, enis map[string]*eni, pool map[string]*address, s *Summary) {
	g.count(enis, s)
	s.ENIsWithoutIP = 0 // attach counts the ones it cannot serve; verify reads back the truth
	p := &plan{free: map[string]*address{}, tagged: map[string]int{}, needing: map[string]int{}, pending: map[string]int{}, subnets: map[string]bool{}}
	for _, sub := range g.cfg.SubnetIDs {
		p.subnets[sub] = true
	}
	for _, a := range pool {
		if a.subnetTag != "" {
			p.tagged[a.subnetTag]++
		}
	}
	elsewhere := g.retiringElsewhere(ctx, enis, pool, s)
	hasIP := map[string]bool{}
	for _, a := range sortedAddrs(pool) {
		e := enis[a.eniID]
		if e == nil {
			e = elsewhere[a.eniID]
		}
		switch {
		case a.associationID == "":
			p.free[a.allocationID] = a
		case e != nil && g.retiring(e):
			// On one of our ENIs that Lambda is retiring: take the IP back
			// for the replacement.
			if g.disassociate(ctx, a, s) {
				p.free[a.allocationID] = a
			}
		case e != nil:
			// Serving (or still coming up): it keeps its IP. The IP learns
			// the ENI's subnet only if that subnet has no IP of its own,
			// so a borrowed IP keeps pointing home.
			hasIP[e.id] = true
			g.maybeTag(ctx, a, e.subnet, p, s)
		default:
			s.NeedsHuman = append(s.NeedsHuman, fmt.Sprintf("pool IP %s (%s) is associated with %s%s, outside this deployment; outgate leaves it alone",
				a.publicIP, a.allocationID, a.eniID, a.instanceID))
		}
	}
	var needers []*eni
	for _, e := range sortedENIs(enis) {
		switch {
		case hasIP[e.id]:
		case e.publicIP != "":
			// An IP that is not in the pool (attached by hand): kept.
			hasIP[e.id] = true
			if g.serving(e) {
				s.NeedsHuman = append(s.NeedsHuman, fmt.Sprintf("ENI %s has IP %s (%s), which is not in the pool; outgate leaves it, but add it to the pool if partners allowlist it",
					e.id, e.publicIP, e.allocationID))
			}
		case g.serving(e):
			needers = append(needers, e)
			p.needing[e.subnet]++
		case !g.retiring(e):
			p.pending[e.subnet]++
		}
	}
	// ENIs whose subnet has a free IP tagged for it go first, so that no
	// other ENI takes that IP while its own subnet waits.
	sort.SliceStable(needers, func(i, j int) bool {
		return p.hasOwnFree(needers[i].subnet) && !p.hasOwnFree(needers[j].subnet)
	})
	for _, e := range needers {
		p.needing[e.subnet]--
		g.attach(ctx, e, p, s)
	}
	s.PoolFree = len(p.free)
}

// retiringElsewhere finds, by id, the relay's retiring ENIs that hold a
// pool IP but that the listing's filters missed (a subnet the relay has
// just left): a pool IP on one is the deployment's to take back, not
// "outside this deployment" for the 20-35 minutes before Lambda deletes it.
// Only retiring ENIs are returned; on an error the IPs are reported as
// outside, as before, and the next run looks again.
func (g *Guardian) retiringElsewhere(ctx context.Context, enis map[string]*eni, pool map[string]*address, s *Summary) map[string]*eni {
	var ids []string
	for _, a := range sortedAddrs(pool) {
		if a.associationID != "" && a.eniID != "" && enis[a.eniID] == nil {
			ids = append(ids, a.eniID)
		}
	}
	out := map[string]*eni{}
	if len(ids) == 0 {
		return out
	}
	// A filter, not NetworkInterfaceIds: one id that is already gone must
	// not fail the lookup of the others.
	page, err := call(ctx, g, s, func() (*ec2.DescribeNetworkInterfacesOutput, error) {
		return g.ec2.DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{
			Filters: []ec2types.Filter{{Name: aws.String("network-interface-id"), Values: ids}}})
	})
	if err != nil {
		s.Errors = append(s.Errors, "looking up the ENIs holding pool IPs: "+err.Error())
		return out
	}
	for _, n := range page.NetworkInterfaces {
		e := &eni{id: aws.ToString(n.NetworkInterfaceId), subnet: aws.ToString(n.SubnetId), status: string(n.Status), typ: string(n.InterfaceType)}
		if g.ours(n) && g.retiring(e) {
			out[e.id] = e
		}
	}
	return out
}

func (p *plan) hasOwnFree(subnet string) bool {
	for _, a := range p.free {
		if a.subnetTag == subnet {
			return true
		}
	}
	return false
}

// attach gives e an IP (see pick), trying the next one if another run took
// the first meanwhile.
func (g *Guardian) attach(ctx context.Context, e *eni, p *plan, s *Summary) {
	// Look again just before: an overlapping run (or a human) may have
	// given it an IP since the listing, and whether EC2 refuses a second
	// EIP on an ENI's private IP or silently swaps the first out is not
	// documented. One Describe per association narrows that window.
	if g.eniHasIP(ctx, e.id, s) {
		return
	}
	for range len(p.free) + 2 { // each pass uses up one free IP (or allocates one)
		a := pick(p, e.subnet)
		if a == nil && g.cfg.AllowAllocate {
			a = g.allocate(ctx, e.subnet, p, s)
		}
		if a == nil {
			s.ENIsWithoutIP++
			s.NeedsHuman = append(s.NeedsHuman, fmt.Sprintf("ENI %s in %s has no static IP: the pool is too small; add an Elastic IP tagged %s=%s (and give it to your partners), or run `outgate up --spare-ips N`",
				e.id, e.subnet, TagDeployment, g.cfg.Deployment))
			return
		}
		delete(p.free, a.allocationID)
		err := g.associate(ctx, a, e, s)
		switch code(err) {
		case "":
			s.Associations++
			g.maybeTag(ctx, a, e.subnet, p, s)
			return
		case "Resource.AlreadyAssociated":
			// Another run got there first: with the IP (try the next one)
			// or with this ENI (then it is done). Verification tells.
			if g.eniHasIP(ctx, e.id, s) {
				return
			}
			continue
		case "InvalidNetworkInterfaceID.NotFound":
			p.free[a.allocationID] = a // the ENI went away meanwhile
			return
		default:
			p.free[a.allocationID] = a
			s.ENIsWithoutIP++
			s.Errors = append(s.Errors, fmt.Sprintf("associating %s with %s: %v", a.allocationID, e.id, err))
			return
		}
	}
	s.ENIsWithoutIP++
	s.Errors = append(s.Errors, fmt.Sprintf("ENI %s: every free IP was taken by another run meanwhile", e.id))
}

// pick chooses a free IP for an ENI in subnet. The subnet tag is a
// preference, never a reason to leave an ENI without an IP while one is
// free. In order: an IP tagged for this subnet; an untagged one (a spare)
// or one tagged for a subnet outside the deployment; one tagged for a
// subnet with no ENI waiting; one kept for a subnet whose ENI is still
// pending; and last, one whose subnet has an ENI waiting too (that ENI then
// gets the next choice). Ties go to the lowest allocation id.
func pick(p *plan, subnet string) *address {
	rank := func(a *address) int {
		switch t := a.subnetTag; {
		case t == subnet:
			return 0
		case t == "" || !p.subnets[t]:
			return 1
		case p.needing[t] == 0 && p.pending[t] == 0:
			return 2
		case p.needing[t] == 0:
			return 3
		}
		return 4
	}
	var best *address
	for _, a := range sortedAddrs(p.free) {
		if best == nil || rank(a) < rank(best) {
			best = a
		}
	}
	return best
}

// maybeTag records that a serves subnet, unless subnet already has an IP
// tagged for it or a is tagged for another of the deployment's subnets: one
// subnet, one tagged IP, and a borrowed IP keeps pointing home.
func (g *Guardian) maybeTag(ctx context.Context, a *address, subnet string, p *plan, s *Summary) {
	if a.subnetTag == subnet || p.tagged[subnet] > 0 || (a.subnetTag != "" && p.subnets[a.subnetTag]) {
		return
	}
	old := a.subnetTag
	if !g.tagSubnet(ctx, a, subnet, s) {
		return
	}
	if old != "" {
		p.tagged[old]--
	}
	p.tagged[subnet]++
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

func (g *Guardian) tagSubnet(ctx context.Context, a *address, subnet string, s *Summary) bool {
	_, err := call(ctx, g, s, func() (*ec2.CreateTagsOutput, error) {
		return g.ec2.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{a.allocationID},
			Tags: []ec2types.Tag{{Key: aws.String(TagSubnet), Value: aws.String(subnet)}}})
	})
	if err != nil {
		s.Errors = append(s.Errors, fmt.Sprintf("tagging %s with its subnet: %v", a.allocationID, err))
		return false
	}
	a.subnetTag = subnet
	return true
}

func (g *Guardian) allocate(ctx context.Context, subnet string, p *plan, s *Summary) *address {
	tags := []ec2types.Tag{{Key: aws.String(TagDeployment), Value: aws.String(g.cfg.Deployment)}}
	if p.tagged[subnet] == 0 {
		tags = append(tags, ec2types.Tag{Key: aws.String(TagSubnet), Value: aws.String(subnet)})
	} else {
		subnet = "" // the subnet has its IP already; this one stays a spare
	}
	out, err := call(ctx, g, s, func() (*ec2.AllocateAddressOutput, error) {
		return g.ec2.AllocateAddress(ctx, &ec2.AllocateAddressInput{Domain: ec2types.DomainTypeVpc,
			TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeElasticIp, Tags: tags}}})
	})
	if err != nil {
		s.Errors = append(s.Errors, "allocating an IP: "+err.Error())
		return nil
	}
	s.Allocated++
	s.PoolSize++
	if subnet != "" {
		p.tagged[subnet]++
	}
	s.NeedsHuman = append(s.NeedsHuman, fmt.Sprintf("allocated new IP %s: give it to your partners", aws.ToString(out.PublicIp)))
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
	s.IPs = map[string]string{}
	for _, e := range enis {
		if !g.serving(e) {
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
