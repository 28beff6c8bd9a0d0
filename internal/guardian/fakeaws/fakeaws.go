// Package fakeaws simulates, in memory, the parts of EC2 and Lambda the
// guardian depends on, including the Lambda Hyperplane ENI lifecycle that
// moto cannot reproduce (moto makes no `lambda` ENIs). Behaviour follows
// AWS's documentation and field reports; where a behaviour is not confirmed
// (UNVERIFIED), the simulator picks the stricter reading and says so at the spot.
//
// It implements guardian.EC2, guardian.Lambda and guardian.Tagging, in the style of
// karpenter-provider-aws's pkg/fake.
package fakeaws

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/aws-sdk-go-v2/service/resourcegroupstaggingapi"
	tagtypes "github.com/aws/aws-sdk-go-v2/service/resourcegroupstaggingapi/types"
	"github.com/aws/smithy-go"
)

// ConnectionsPerENI is how many connections one Hyperplane ENI carries
// before Lambda adds another (AWS Lambda developer guide).
const ConnectionsPerENI = 65000

// ENI is a simulated network interface.
type ENI struct {
	ID, Subnet, PrivateIP, Status string
	Type                          string   // "lambda" or "interface"
	Groups                        []string // sorted security group ids
	Connections                   int
	AllocationID                  string // the EIP on its primary private IP, if any
	// Description is what Lambda writes on its ENIs: "AWS Lambda VPC
	// ENI-<function>-<uuid>", naming the function that made it (shared
	// ENIs serve every function with the same subnet and groups).
	Description string
	// Lambda is true for ENIs Lambda made, whatever Type now says (a
	// retiring one may show "interface").
	Lambda bool
}

// Address is a simulated Elastic IP.
type Address struct {
	AllocationID, PublicIP, AssociationID, ENI, InstanceID string
	Tags                                                   map[string]string
}

type function struct {
	subnets, groups []string
	state           lambdatypes.State
	reason          lambdatypes.StateReasonCode
	tags            map[string]string
}

// Cloud is one simulated account and region.
type Cloud struct {
	mu        sync.Mutex
	enis      map[string]*ENI
	addrs     map[string]*Address
	functions map[string]*function
	gone      []string // ARNs of deleted functions the tag index still lists
	seq       int
	throttle  map[string]int
	fail      map[string][]string // op -> error codes for its next calls
	// Calls counts API calls by operation name.
	Calls map[string]int
	// Invokes records every Invoke payload by function name.
	Invokes map[string][]string
	// ENIReplacesEIP makes AssociateAddress behave for an ENI as EC2
	// documents it for an instance: an ENI private IP that already has an
	// EIP silently drops it for the new one (AllowReassociation guards only
	// the address side). Which reading holds for ENIs is UNVERIFIED; the
	// default is the refusal.
	ENIReplacesEIP bool
	// BeforeCall, if set, runs at the start of every API call, outside the
	// lock: the randomized tests use it to make AWS change (or a second
	// guardian run act) between any two calls of a run.
	BeforeCall func(op string)
}

// New returns an empty cloud.
func New() *Cloud {
	return &Cloud{enis: map[string]*ENI{}, addrs: map[string]*Address{}, functions: map[string]*function{},
		throttle: map[string]int{}, fail: map[string][]string{}, Calls: map[string]int{}, Invokes: map[string][]string{}}
}

func apiErr(code, format string, args ...any) error {
	return &smithy.GenericAPIError{Code: code, Message: fmt.Sprintf(format, args...), Fault: smithy.FaultClient}
}

func (c *Cloud) next(prefix string) string {
	c.seq++
	return fmt.Sprintf("%s-%017x", prefix, c.seq)
}

// before runs the BeforeCall hook; every API method calls it before it locks.
func (c *Cloud) before(op string) {
	if c.BeforeCall != nil {
		c.BeforeCall(op)
	}
}

// enter counts a call and fails it if throttling was asked for.
func (c *Cloud) enter(op string) error {
	c.Calls[op]++
	if c.throttle[op] > 0 {
		c.throttle[op]--
		return apiErr("RequestLimitExceeded", "Request limit exceeded.")
	}
	if f := c.fail[op]; len(f) > 0 {
		c.fail[op] = f[1:]
		return apiErr(f[0], "simulated failure of %s", op)
	}
	return nil
}

// FailNext makes the next n calls of op fail with the given error code
// (e.g. UnauthorizedOperation, when a policy lacks an action).
func (c *Cloud) FailNext(op, code string, n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for range n {
		c.fail[op] = append(c.fail[op], code)
	}
}

// ThrottleNext makes the next n calls of op fail with RequestLimitExceeded.
func (c *Cloud) ThrottleNext(op string, n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.throttle[op] += n
}

// --- the Lambda side of the lifecycle -----------------------------------

func groupKey(groups []string) string {
	g := append([]string(nil), groups...)
	sort.Strings(g)
	return strings.Join(g, ",")
}

// Deploy creates or updates a function with a VPC config. Lambda makes one
// ENI per (security-group set x subnet) that does not exist yet, shared by
// every function with the same pair; new ENIs start "pending" (a
// Lambda-specific pending phase is UNVERIFIED: the simulator has one, which
// is the harder case for the guardian). ENIs of the old config that no
// function uses any more go "available" (about to be deleted).
func (c *Cloud) Deploy(name string, subnets, groups []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var tags map[string]string
	if f := c.functions[name]; f != nil {
		tags = f.tags // a deploy keeps the function's tags unless it changes them
	}
	c.functions[name] = &function{subnets: subnets, groups: groups, state: lambdatypes.StatePending, reason: lambdatypes.StateReasonCodeCreating, tags: tags}
	for _, s := range subnets {
		if c.findENI(s, groups, false) == nil {
			c.newENI(s, groups, name)
		}
	}
	c.retireUnused()
}

func (c *Cloud) newENI(subnet string, groups []string, function string) *ENI {
	c.seq++
	e := &ENI{ID: fmt.Sprintf("eni-%017x", c.seq), Subnet: subnet, Type: "lambda", Status: "pending", Lambda: true,
		Groups: strings.Split(groupKey(groups), ","), PrivateIP: fmt.Sprintf("10.0.%d.%d", c.seq/250, c.seq%250+1),
		Description: fmt.Sprintf("AWS Lambda VPC ENI-%s-%08x-0b5c-4d2e-9f00-%012x", function, c.seq, c.seq)}
	c.enis[e.ID] = e
	return e
}

// functionOf names a function using the (groups x subnet) pair, for the
// description of an ENI Lambda adds to it.
func (c *Cloud) functionOf(subnet string, groups []string) string {
	names := make([]string, 0, len(c.functions))
	for n, f := range c.functions {
		if groupKey(f.groups) == groupKey(groups) && contains(f.subnets, subnet) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	if len(names) == 0 {
		return "unknown"
	}
	return names[0]
}

// findENI returns an ENI of the pair with room, if any.
func (c *Cloud) findENI(subnet string, groups []string, needRoom bool) *ENI {
	key := groupKey(groups)
	for _, e := range c.sortedENIs() {
		if e.Type == "lambda" && e.Subnet == subnet && strings.Join(e.Groups, ",") == key && e.Status != "available" {
			if !needRoom || e.Connections < ConnectionsPerENI {
				return e
			}
		}
	}
	return nil
}

func (c *Cloud) retireUnused() {
	for _, e := range c.enis {
		if e.Type != "lambda" || e.Status == "available" {
			continue
		}
		used := false
		for _, f := range c.functions {
			if groupKey(f.groups) == strings.Join(e.Groups, ",") && contains(f.subnets, e.Subnet) {
				used = true
			}
		}
		if !used {
			e.Status = "available"
		}
	}
}

// Activate finishes pending ENIs ("in-use") and makes functions Active.
func (c *Cloud) Activate() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.enis {
		if e.Status == "pending" {
			e.Status = "in-use"
		}
	}
	for _, f := range c.functions {
		f.state, f.reason = lambdatypes.StateActive, ""
	}
}

// ActivateENI finishes one pending ENI: Lambda brings ENIs up one by one.
func (c *Cloud) ActivateENI(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.enis[id]; e != nil && e.Status == "pending" {
		e.Status = "in-use"
	}
}

// AddConnections opens n connections through the (groups x subnet) pair;
// past ConnectionsPerENI per ENI Lambda adds another ENI (pending, no EIP).
func (c *Cloud) AddConnections(subnet string, groups []string, n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for n > 0 {
		e := c.findENI(subnet, groups, true)
		if e == nil {
			e = c.newENI(subnet, groups, c.functionOf(subnet, groups))
		}
		k := min(n, ConnectionsPerENI-e.Connections)
		e.Connections += k
		n -= k
	}
}

// Reclaim is Lambda's idle reclaim: the function goes Inactive (Idle) and
// its ENIs go "available".
func (c *Cloud) Reclaim(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f := c.functions[name]
	f.state, f.reason = lambdatypes.StateInactive, lambdatypes.StateReasonCodeIdle
	for _, e := range c.enis {
		if e.Type == "lambda" && strings.Join(e.Groups, ",") == groupKey(f.groups) && contains(f.subnets, e.Subnet) {
			e.Status = "available"
		}
	}
}

// DeleteAvailable deletes ENIs in "available" state, as Lambda does up to
// 20 minutes later. EC2 disassociates an EIP from a deleted ENI and keeps
// the EIP allocated (EIP fate on reclaim is UNVERIFIED; this is EC2's usual behaviour).
func (c *Cloud) DeleteAvailable() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, e := range c.enis {
		if e.Status != "available" || !e.Lambda {
			continue
		}
		if a := c.addrs[e.AllocationID]; a != nil {
			a.AssociationID, a.ENI = "", ""
		}
		delete(c.enis, id)
	}
}

// AddENI adds an ENI outside any simulated function, e.g. another team's.
// With typ "lambda" it carries a Lambda description for function; with any
// other type it has no description and is not Lambda's.
func (c *Cloud) AddENI(subnet string, groups []string, typ, status, function string) *ENI {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.newENI(subnet, groups, function)
	e.Type, e.Status = typ, status
	if typ != "lambda" {
		e.Description, e.Lambda = "", false
	}
	return e
}

// RetireENI is Lambda retiring one ENI (it no longer carries traffic, and
// is deleted by DeleteAvailable later). asInterface makes it show
// interface-type "interface", as retiring Lambda ENIs have been reported to
// after detachment (UNVERIFIED; the simulator covers both readings).
func (c *Cloud) RetireENI(id string, asInterface bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.enis[id]; e != nil {
		e.Status = "available"
		if asInterface {
			e.Type = "interface"
		}
	}
}

// ReplaceENI is Lambda replacing one ENI: the old one retires (see
// RetireENI) and a new one, with a new id and no IP, comes up pending in
// the same subnet with the same groups. It returns the new ENI's id.
func (c *Cloud) ReplaceENI(id string, asInterface bool) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.enis[id]
	if old == nil {
		return ""
	}
	old.Status = "available"
	if asInterface {
		old.Type = "interface"
	}
	return c.newENI(old.Subnet, old.Groups, c.functionOf(old.Subnet, old.Groups)).ID
}

// Release is a human releasing an Elastic IP; it refuses an associated one,
// as EC2 does for a VPC address in use.
func (c *Cloud) Release(allocationID string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	a := c.addrs[allocationID]
	if a == nil || a.AssociationID != "" {
		return false
	}
	delete(c.addrs, allocationID)
	return true
}

// Allocate adds an EIP with tags and returns its allocation id.
func (c *Cloud) Allocate(tags map[string]string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.allocate(tags).AllocationID
}

func (c *Cloud) allocate(tags map[string]string) *Address {
	c.seq++
	a := &Address{AllocationID: fmt.Sprintf("eipalloc-%017x", c.seq), PublicIP: fmt.Sprintf("198.51.100.%d", c.seq%250+1), Tags: map[string]string{}}
	for k, v := range tags {
		a.Tags[k] = v
	}
	c.addrs[a.AllocationID] = a
	return a
}

// AssociateByHand attaches an EIP outside the guardian (a human did it).
func (c *Cloud) AssociateByHand(allocationID, eniID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.associate(c.addrs[allocationID], c.enis[eniID])
}

func (c *Cloud) associate(a *Address, e *ENI) {
	a.AssociationID, a.ENI = c.next("eipassoc"), e.ID
	e.AllocationID = a.AllocationID
}

// Snapshot returns copies of every ENI and address, for assertions.
func (c *Cloud) Snapshot() ([]ENI, []Address) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var es []ENI
	for _, e := range c.sortedENIs() {
		es = append(es, *e)
	}
	var as []Address
	for _, a := range c.addrs {
		as = append(as, *a)
	}
	sort.Slice(as, func(i, j int) bool { return as[i].AllocationID < as[j].AllocationID })
	return es, as
}

func (c *Cloud) sortedENIs() []*ENI {
	out := make([]*ENI, 0, len(c.enis))
	for _, e := range c.enis {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// --- EC2 API ---------------------------------------------------------------

func filterValues(fs []ec2types.Filter, name string) ([]string, bool) {
	for _, f := range fs {
		if aws.ToString(f.Name) == name {
			return f.Values, true
		}
	}
	return nil, false
}

// DescribeNetworkInterfaces supports the filters interface-type, group-id,
// subnet-id, status and network-interface-id, NetworkInterfaceIds, and
// pagination.
func (c *Cloud) DescribeNetworkInterfaces(_ context.Context, in *ec2.DescribeNetworkInterfacesInput, _ ...func(*ec2.Options)) (*ec2.DescribeNetworkInterfacesOutput, error) {
	c.before("DescribeNetworkInterfaces")
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.enter("DescribeNetworkInterfaces"); err != nil {
		return nil, err
	}
	var match []*ENI
	for _, e := range c.sortedENIs() {
		if len(in.NetworkInterfaceIds) > 0 && !contains(in.NetworkInterfaceIds, e.ID) {
			continue
		}
		if v, ok := filterValues(in.Filters, "interface-type"); ok && !contains(v, e.Type) {
			continue
		}
		if v, ok := filterValues(in.Filters, "subnet-id"); ok && !contains(v, e.Subnet) {
			continue
		}
		if v, ok := filterValues(in.Filters, "status"); ok && !contains(v, e.Status) {
			continue
		}
		if v, ok := filterValues(in.Filters, "network-interface-id"); ok && !contains(v, e.ID) {
			continue
		}
		if v, ok := filterValues(in.Filters, "group-id"); ok {
			hit := false
			for _, g := range e.Groups {
				hit = hit || contains(v, g)
			}
			if !hit {
				continue
			}
		}
		match = append(match, e)
	}
	for _, id := range in.NetworkInterfaceIds {
		if c.enis[id] == nil {
			return nil, apiErr("InvalidNetworkInterfaceID.NotFound", "The networkInterface ID '%s' does not exist", id)
		}
	}
	// The token names the last ENI returned (ids sort), so a page stays
	// valid while ENIs come and go between calls, as EC2's tokens do.
	start := 0
	if t := aws.ToString(in.NextToken); t != "" {
		for start < len(match) && match[start].ID <= t {
			start++
		}
	}
	end := len(match)
	out := &ec2.DescribeNetworkInterfacesOutput{}
	if n := int(aws.ToInt32(in.MaxResults)); n > 0 && start+n < len(match) {
		end = start + n
		out.NextToken = aws.String(match[end-1].ID)
	}
	for _, e := range match[start:end] {
		ni := ec2types.NetworkInterface{NetworkInterfaceId: aws.String(e.ID), SubnetId: aws.String(e.Subnet),
			PrivateIpAddress: aws.String(e.PrivateIP), Status: ec2types.NetworkInterfaceStatus(e.Status),
			InterfaceType: ec2types.NetworkInterfaceType(e.Type), RequesterManaged: aws.Bool(false)}
		for _, g := range e.Groups {
			ni.Groups = append(ni.Groups, ec2types.GroupIdentifier{GroupId: aws.String(g)})
		}
		if e.Description != "" {
			ni.Description = aws.String(e.Description)
		}
		if e.Type == "lambda" {
			ni.Attachment = &ec2types.NetworkInterfaceAttachment{AttachmentId: aws.String("ela-attach-" + e.ID[4:]),
				InstanceOwnerId: aws.String("amazon-aws"), DeviceIndex: aws.Int32(1), Status: ec2types.AttachmentStatusAttached}
		}
		if a := c.addrs[e.AllocationID]; a != nil {
			ni.Association = &ec2types.NetworkInterfaceAssociation{AllocationId: aws.String(a.AllocationID),
				AssociationId: aws.String(a.AssociationID), PublicIp: aws.String(a.PublicIP)}
		}
		out.NetworkInterfaces = append(out.NetworkInterfaces, ni)
	}
	return out, nil
}

// DescribeAddresses supports AllocationIds and tag:KEY filters.
func (c *Cloud) DescribeAddresses(_ context.Context, in *ec2.DescribeAddressesInput, _ ...func(*ec2.Options)) (*ec2.DescribeAddressesOutput, error) {
	c.before("DescribeAddresses")
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.enter("DescribeAddresses"); err != nil {
		return nil, err
	}
	for _, id := range in.AllocationIds {
		if c.addrs[id] == nil {
			return nil, apiErr("InvalidAllocationID.NotFound", "The allocation ID '%s' does not exist", id)
		}
	}
	out := &ec2.DescribeAddressesOutput{}
	ids := make([]string, 0, len(c.addrs))
	for id := range c.addrs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
next:
	for _, id := range ids {
		a := c.addrs[id]
		if len(in.AllocationIds) > 0 && !contains(in.AllocationIds, id) {
			continue
		}
		for _, f := range in.Filters {
			if k, ok := strings.CutPrefix(aws.ToString(f.Name), "tag:"); ok && !contains(f.Values, a.Tags[k]) {
				continue next
			}
		}
		ad := ec2types.Address{AllocationId: aws.String(a.AllocationID), PublicIp: aws.String(a.PublicIP), Domain: ec2types.DomainTypeVpc}
		if a.AssociationID != "" {
			ad.AssociationId, ad.NetworkInterfaceId = aws.String(a.AssociationID), aws.String(a.ENI)
			if a.InstanceID != "" {
				ad.InstanceId = aws.String(a.InstanceID)
			}
		}
		for k, v := range a.Tags {
			ad.Tags = append(ad.Tags, ec2types.Tag{Key: aws.String(k), Value: aws.String(v)})
		}
		out.Addresses = append(out.Addresses, ad)
	}
	return out, nil
}

// AssociateAddress follows the EC2 API reference: one association per EIP;
// with AllowReassociation false an associated EIP gives
// Resource.AlreadyAssociated. What happens when the target ENI's private IP
// already has another EIP is UNVERIFIED for ENIs: the simulator refuses it
// the same way unless AllowReassociation is true.
func (c *Cloud) AssociateAddress(_ context.Context, in *ec2.AssociateAddressInput, _ ...func(*ec2.Options)) (*ec2.AssociateAddressOutput, error) {
	c.before("AssociateAddress")
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.enter("AssociateAddress"); err != nil {
		return nil, err
	}
	a := c.addrs[aws.ToString(in.AllocationId)]
	if a == nil {
		return nil, apiErr("InvalidAllocationID.NotFound", "The allocation ID '%s' does not exist", aws.ToString(in.AllocationId))
	}
	e := c.enis[aws.ToString(in.NetworkInterfaceId)]
	if e == nil {
		return nil, apiErr("InvalidNetworkInterfaceID.NotFound", "The networkInterface ID '%s' does not exist", aws.ToString(in.NetworkInterfaceId))
	}
	if p := aws.ToString(in.PrivateIpAddress); p != "" && p != e.PrivateIP {
		return nil, apiErr("InvalidParameterValue", "private IP %s is not on %s", p, e.ID)
	}
	realloc := aws.ToBool(in.AllowReassociation)
	if a.AssociationID != "" && a.ENI != e.ID && !realloc {
		return nil, apiErr("Resource.AlreadyAssociated", "resource %s is already associated with associate-id %s", a.AllocationID, a.AssociationID)
	}
	if e.AllocationID != "" && e.AllocationID != a.AllocationID && !realloc && !c.ENIReplacesEIP {
		return nil, apiErr("Resource.AlreadyAssociated", "network interface %s already has address %s", e.ID, e.AllocationID)
	}
	if a.AssociationID != "" && a.ENI == e.ID {
		return &ec2.AssociateAddressOutput{AssociationId: aws.String(a.AssociationID)}, nil // idempotent
	}
	if old := c.enis[a.ENI]; old != nil {
		old.AllocationID = ""
	}
	if prev := c.addrs[e.AllocationID]; prev != nil {
		prev.AssociationID, prev.ENI = "", ""
	}
	c.associate(a, e)
	return &ec2.AssociateAddressOutput{AssociationId: aws.String(a.AssociationID)}, nil
}

// DisassociateAddress: a stale association id gives InvalidAssociationID.NotFound.
func (c *Cloud) DisassociateAddress(_ context.Context, in *ec2.DisassociateAddressInput, _ ...func(*ec2.Options)) (*ec2.DisassociateAddressOutput, error) {
	c.before("DisassociateAddress")
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.enter("DisassociateAddress"); err != nil {
		return nil, err
	}
	for _, a := range c.addrs {
		if a.AssociationID != "" && a.AssociationID == aws.ToString(in.AssociationId) {
			if e := c.enis[a.ENI]; e != nil {
				e.AllocationID = ""
			}
			a.AssociationID, a.ENI = "", ""
			return &ec2.DisassociateAddressOutput{}, nil
		}
	}
	return nil, apiErr("InvalidAssociationID.NotFound", "The association ID '%s' does not exist", aws.ToString(in.AssociationId))
}

// CreateTags tags EIPs.
func (c *Cloud) CreateTags(_ context.Context, in *ec2.CreateTagsInput, _ ...func(*ec2.Options)) (*ec2.CreateTagsOutput, error) {
	c.before("CreateTags")
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.enter("CreateTags"); err != nil {
		return nil, err
	}
	for _, id := range in.Resources {
		a := c.addrs[id]
		if a == nil {
			return nil, apiErr("InvalidAllocationID.NotFound", "The allocation ID '%s' does not exist", id)
		}
		for _, t := range in.Tags {
			a.Tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
		}
	}
	return &ec2.CreateTagsOutput{}, nil
}

// AllocateAddress allocates a VPC EIP with the requested tags.
func (c *Cloud) AllocateAddress(_ context.Context, in *ec2.AllocateAddressInput, _ ...func(*ec2.Options)) (*ec2.AllocateAddressOutput, error) {
	c.before("AllocateAddress")
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.enter("AllocateAddress"); err != nil {
		return nil, err
	}
	tags := map[string]string{}
	for _, ts := range in.TagSpecifications {
		for _, t := range ts.Tags {
			tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
		}
	}
	a := c.allocate(tags)
	return &ec2.AllocateAddressOutput{AllocationId: aws.String(a.AllocationID), PublicIp: aws.String(a.PublicIP), Domain: ec2types.DomainTypeVpc}, nil
}

// --- Lambda API -------------------------------------------------------------

// GetFunctionConfiguration returns the function's state.
func (c *Cloud) GetFunctionConfiguration(_ context.Context, in *lambda.GetFunctionConfigurationInput, _ ...func(*lambda.Options)) (*lambda.GetFunctionConfigurationOutput, error) {
	c.before("GetFunctionConfiguration")
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.enter("GetFunctionConfiguration"); err != nil {
		return nil, err
	}
	name := strings.TrimPrefix(aws.ToString(in.FunctionName), functionARNPrefix)
	f := c.functions[name]
	if f == nil {
		return nil, apiErr("ResourceNotFoundException", "Function not found: %s", aws.ToString(in.FunctionName))
	}
	out := &lambda.GetFunctionConfigurationOutput{FunctionName: aws.String(name), FunctionArn: aws.String(functionARNPrefix + name), State: f.state, StateReasonCode: f.reason}
	if len(f.subnets) > 0 {
		out.VpcConfig = &lambdatypes.VpcConfigResponse{SubnetIds: append([]string(nil), f.subnets...), SecurityGroupIds: append([]string(nil), f.groups...)}
	}
	return out, nil
}

// functionARNPrefix makes a simulated function's ARN from its name.
const functionARNPrefix = "arn:aws:lambda:us-east-1:123456789012:function:"

// TagFunction sets tags on a function, as `outgate attach` or the user's
// IaC does.
func (c *Cloud) TagFunction(name string, tags map[string]string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f := c.functions[name]
	if f.tags == nil {
		f.tags = map[string]string{}
	}
	for k, v := range tags {
		f.tags[k] = v
	}
}

// DeleteFunction removes a function. The tag index keeps listing it: the
// Resource Groups Tagging API's index is eventually consistent (how long
// it lags is UNVERIFIED; the simulator never catches up, the harder case).
func (c *Cloud) DeleteFunction(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gone = append(c.gone, functionARNPrefix+name)
	delete(c.functions, name)
}

// --- Resource Groups Tagging API ------------------------------------------

// GetResources lists the functions whose tags match every filter, sorted,
// ResourcesPerPage at a time (default 50), plus deleted functions the index
// has not caught up with.
func (c *Cloud) GetResources(_ context.Context, in *resourcegroupstaggingapi.GetResourcesInput, _ ...func(*resourcegroupstaggingapi.Options)) (*resourcegroupstaggingapi.GetResourcesOutput, error) {
	c.before("GetResources")
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.enter("GetResources"); err != nil {
		return nil, err
	}
	if len(in.ResourceTypeFilters) != 1 || in.ResourceTypeFilters[0] != "lambda:function" {
		return nil, apiErr("InvalidParameterException", "the simulator knows lambda:function only")
	}
	var arns []string
	for name, f := range c.functions {
		match := true
		for _, tf := range in.TagFilters {
			v, ok := f.tags[aws.ToString(tf.Key)]
			match = match && ok && (len(tf.Values) == 0 || contains(tf.Values, v))
		}
		if match {
			arns = append(arns, functionARNPrefix+name)
		}
	}
	arns = append(arns, c.gone...)
	sort.Strings(arns)
	per := int(aws.ToInt32(in.ResourcesPerPage))
	if per <= 0 {
		per = 50
	}
	start := 0
	if t := aws.ToString(in.PaginationToken); t != "" {
		fmt.Sscanf(t, "%d", &start)
	}
	out := &resourcegroupstaggingapi.GetResourcesOutput{PaginationToken: aws.String("")}
	for i := start; i < len(arns) && i < start+per; i++ {
		out.ResourceTagMappingList = append(out.ResourceTagMappingList, tagtypes.ResourceTagMapping{ResourceARN: aws.String(arns[i])})
	}
	if start+per < len(arns) {
		out.PaginationToken = aws.String(fmt.Sprint(start + per))
	}
	return out, nil
}

// Invoke records the payload. Invoking an Inactive function starts its
// restore: new ENIs (with new ids) come up "pending", as after an idle reclaim.
func (c *Cloud) Invoke(_ context.Context, in *lambda.InvokeInput, _ ...func(*lambda.Options)) (*lambda.InvokeOutput, error) {
	c.before("Invoke")
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.enter("Invoke"); err != nil {
		return nil, err
	}
	name := aws.ToString(in.FunctionName)
	f := c.functions[name]
	if f == nil {
		return nil, apiErr("ResourceNotFoundException", "Function not found: %s", name)
	}
	c.Invokes[name] = append(c.Invokes[name], string(in.Payload))
	if f.state == lambdatypes.StateInactive {
		f.state, f.reason = lambdatypes.StatePending, lambdatypes.StateReasonCodeRestoring
		for _, s := range f.subnets {
			if c.findENI(s, f.groups, false) == nil {
				c.newENI(s, f.groups, name)
			}
		}
	}
	return &lambda.InvokeOutput{StatusCode: 202}, nil
}
