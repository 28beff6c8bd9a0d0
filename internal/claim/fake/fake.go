// Package fake is an in-memory EC2 behind claim.EC2, for what moto cannot
// show: instances in the transitional states (moto stops and terminates at
// once, so "stopping" and "shutting-down" never appear) and an IP still
// associated with an instance EC2 no longer describes.
package fake

import (
	"context"
	"fmt"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
)

// Address is one Elastic IP.
type Address struct {
	AllocationID, PublicIP string
	Tags                   map[string]string
	InstanceID, ENI        string
}

// Instance is one instance.
type Instance struct {
	State string
	Tags  map[string]string
}

// EC2 holds addresses and instances; Associations counts AssociateAddress calls.
type EC2 struct {
	mu           sync.Mutex
	Addresses    []*Address
	Instances    map[string]*Instance
	Associations int
	// DescribeErr, when set, is DescribeAddresses' answer (an API failure).
	DescribeErr error
	// RaceTo, when set, makes AssociateAddress answer success while the
	// IP goes to this instance instead: a concurrent association that EC2
	// let win (its API is eventually consistent; both callers hear yes).
	RaceTo string
}

// DescribeAddresses supports the tag:KEY filters the claim uses.
func (f *EC2) DescribeAddresses(_ context.Context, in *ec2.DescribeAddressesInput, _ ...func(*ec2.Options)) (*ec2.DescribeAddressesOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.DescribeErr != nil {
		return nil, f.DescribeErr
	}
	out := &ec2.DescribeAddressesOutput{}
next:
	for _, a := range f.Addresses {
		for _, flt := range in.Filters {
			name := aws.ToString(flt.Name)
			if len(name) < 4 || name[:4] != "tag:" || len(flt.Values) != 1 || a.Tags[name[4:]] != flt.Values[0] {
				continue next
			}
		}
		ea := ec2types.Address{AllocationId: aws.String(a.AllocationID), PublicIp: aws.String(a.PublicIP)}
		if a.InstanceID != "" {
			ea.InstanceId = aws.String(a.InstanceID)
		}
		if a.ENI != "" {
			ea.NetworkInterfaceId = aws.String(a.ENI)
		}
		out.Addresses = append(out.Addresses, ea)
	}
	return out, nil
}

func notFound(id string) error {
	return &smithy.GenericAPIError{Code: "InvalidInstanceID.NotFound", Message: fmt.Sprintf("The instance ID '%s' does not exist", id)}
}

// DescribeInstances answers NotFound for an unknown id, as EC2 does.
func (f *EC2) DescribeInstances(_ context.Context, in *ec2.DescribeInstancesInput, _ ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var r ec2types.Reservation
	for _, id := range in.InstanceIds {
		i, ok := f.Instances[id]
		if !ok {
			return nil, notFound(id)
		}
		ei := ec2types.Instance{InstanceId: aws.String(id), State: &ec2types.InstanceState{Name: ec2types.InstanceStateName(i.State)}}
		for k, v := range i.Tags {
			ei.Tags = append(ei.Tags, ec2types.Tag{Key: aws.String(k), Value: aws.String(v)})
		}
		r.Instances = append(r.Instances, ei)
	}
	return &ec2.DescribeInstancesOutput{Reservations: []ec2types.Reservation{r}}, nil
}

// AssociateAddress refuses an associated IP without AllowReassociation,
// as EC2 does (Resource.AlreadyAssociated).
func (f *EC2) AssociateAddress(_ context.Context, in *ec2.AssociateAddressInput, _ ...func(*ec2.Options)) (*ec2.AssociateAddressOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Associations++
	for _, a := range f.Addresses {
		if a.AllocationID != aws.ToString(in.AllocationId) {
			continue
		}
		if (a.InstanceID != "" || a.ENI != "") && !aws.ToBool(in.AllowReassociation) {
			return nil, &smithy.GenericAPIError{Code: "Resource.AlreadyAssociated", Message: "already associated"}
		}
		a.InstanceID = aws.ToString(in.InstanceId)
		if f.RaceTo != "" {
			a.InstanceID = f.RaceTo
		}
		a.ENI = "eni-of-" + a.InstanceID
		return &ec2.AssociateAddressOutput{AssociationId: aws.String("eipassoc-1")}, nil
	}
	return nil, &smithy.GenericAPIError{Code: "InvalidAllocationID.NotFound"}
}
