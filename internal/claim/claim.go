// Package claim decides whether an instance of a deployment in instance mode
// may serve: it claims the Elastic IP tagged for its subnet (taking it only
// from nothing, or from a stopped or terminated instance of the same
// deployment, never from anything else), judges its egress IP against the
// deployment's IPs, and asks Auto Scaling to replace it when it cannot
// serve from the right address for too long.
//
// The AWS calls go through the narrow interfaces of sdk.go; the decision
// itself (Decide) is a pure function, so every branch of the rule has a
// table test.
package claim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/outgate/outgate/internal/ctxutil"
	"github.com/outgate/outgate/internal/guardian"
)

// Action is what the claim rule says to do with the pool IP.
type Action int

const (
	// Wait: do not touch the IP now; try again later (Reason says why).
	Wait Action = iota
	// Associate the IP with this instance.
	Associate
	// Done: the IP is already this instance's.
	Done
)

func (a Action) String() string {
	return [...]string{"wait", "associate", "done"}[a]
}

// Verdict is the rule's answer for one look at the pool IP.
type Verdict struct {
	Action Action
	// Reassociate: the IP is held by a stopped or terminated instance of
	// the same deployment, so it is taken with AllowReassociation.
	Reassociate bool
	Reason      string
}

// Holder is what the pool IP is associated with, as far as the rule needs.
type Holder struct {
	// InstanceID and NetworkInterfaceID as DescribeAddresses reports them:
	// both empty means unassociated; an instance's IP has both.
	InstanceID         string
	NetworkInterfaceID string
	// Found: DescribeInstances returned InstanceID (then State and
	// Deployment are its state name and outgate:deployment tag).
	Found      bool
	State      string
	Deployment string
}

// gone are the instance states that can no longer serve from the IP.
var gone = map[string]bool{"stopping": true, "stopped": true, "shutting-down": true, "terminated": true}

// Decide is the claim rule for the IP tagged for my subnet.
func Decide(me, deployment string, h Holder) Verdict {
	switch {
	case h.InstanceID == "" && h.NetworkInterfaceID == "":
		return Verdict{Action: Associate, Reason: "the IP is unassociated"}
	case h.InstanceID == me:
		return Verdict{Action: Done, Reason: "the IP is already this instance's"}
	case h.InstanceID == "":
		return Verdict{Action: Wait, Reason: fmt.Sprintf("the IP is on network interface %s, not an instance; it is never taken from one", h.NetworkInterfaceID)}
	case !h.Found:
		return Verdict{Action: Wait, Reason: fmt.Sprintf("the IP is on instance %s, which cannot be described; it is not taken without knowing whose it is", h.InstanceID)}
	case h.Deployment != deployment:
		return Verdict{Action: Wait, Reason: fmt.Sprintf("the IP is on instance %s of another deployment (%q); it is never taken from one", h.InstanceID, h.Deployment)}
	case !gone[h.State]:
		return Verdict{Action: Wait, Reason: fmt.Sprintf("the IP is on instance %s of this deployment, which is %s; it is taken only once that one stops or terminates", h.InstanceID, h.State)}
	default:
		return Verdict{Action: Associate, Reassociate: true, Reason: fmt.Sprintf("the IP is on instance %s of this deployment, which is %s", h.InstanceID, h.State)}
	}
}

// Claimer claims one instance's pool IP.
type Claimer struct {
	EC2        EC2
	Deployment string
	InstanceID string
	SubnetID   string
	Log        *slog.Logger
	// MaxAttempts bounds the looks at the IP (default 60); the backoff
	// between them starts at FirstDelay (default 1s), doubling up to
	// MaxDelay (default 15s): about 14 minutes in all, past the 10 minutes
	// after which the instance has itself replaced anyway.
	MaxAttempts int
	FirstDelay  time.Duration
	MaxDelay    time.Duration
	// Sleep waits between attempts (ctxutil.Sleep; tests count instead).
	Sleep func(context.Context, time.Duration) error
}

// Claimed is the pool IP this instance now holds.
type Claimed struct {
	AllocationID string
	PublicIP     string
}

// ErrNotClaimed is returned (wrapped, with the last reason) when every
// attempt was told to wait.
var ErrNotClaimed = errors.New("the pool IP was not claimed")

// Claim looks at the pool IP and acts on the rule until the IP is this
// instance's, the attempts run out, or ctx ends. Each wait is logged with
// its reason.
func (c *Claimer) Claim(ctx context.Context) (Claimed, error) {
	attempts, delay, maxDelay := c.MaxAttempts, c.FirstDelay, c.MaxDelay
	if attempts <= 0 {
		attempts = 60
	}
	if delay <= 0 {
		delay = time.Second
	}
	if maxDelay <= 0 {
		maxDelay = 15 * time.Second
	}
	sleep := c.Sleep
	if sleep == nil {
		sleep = ctxutil.Sleep
	}
	log := c.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var last error
	for attempt := 1; attempt <= attempts; attempt++ {
		got, err := c.once(ctx)
		if err == nil {
			log.Info("pool IP claimed", "public_ip", got.PublicIP, "allocation_id", got.AllocationID, "subnet", c.SubnetID, "attempt", attempt)
			return got, nil
		}
		last = err
		if ctx.Err() != nil {
			break
		}
		level := slog.LevelWarn
		if errors.Is(err, errUnconfirmed) {
			level = slog.LevelInfo // the expected look after an association
		}
		log.Log(ctx, level, "pool IP not claimed yet; retrying", "reason", err.Error(), "subnet", c.SubnetID, "attempt", attempt, "of", attempts, "retry_in", delay.String())
		if attempt == attempts {
			break
		}
		if err := sleep(ctx, delay); err != nil {
			break
		}
		delay = min(2*delay, maxDelay)
	}
	return Claimed{}, fmt.Errorf("%w for subnet %s: %w", ErrNotClaimed, c.SubnetID, last)
}

// once is one look at the pool IP and the action the rule says.
func (c *Claimer) once(ctx context.Context) (Claimed, error) {
	out, err := c.EC2.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{Filters: []ec2types.Filter{
		{Name: aws.String("tag:" + guardian.TagDeployment), Values: []string{c.Deployment}},
		{Name: aws.String("tag:" + guardian.TagSubnet), Values: []string{c.SubnetID}},
	}})
	if err != nil {
		return Claimed{}, fmt.Errorf("describing the pool IP: %w", err)
	}
	switch n := len(out.Addresses); {
	case n == 0:
		return Claimed{}, fmt.Errorf("no IP is tagged %s=%s and %s=%s", guardian.TagDeployment, c.Deployment, guardian.TagSubnet, c.SubnetID)
	case n > 1:
		// Two IPs for one subnet is a mistake in the tags; taking either
		// could take the one a partner does not know.
		return Claimed{}, fmt.Errorf("%d IPs are tagged for subnet %s; exactly one must be", n, c.SubnetID)
	}
	a := out.Addresses[0]
	got := Claimed{AllocationID: aws.ToString(a.AllocationId), PublicIP: aws.ToString(a.PublicIp)}
	h := Holder{InstanceID: aws.ToString(a.InstanceId), NetworkInterfaceID: aws.ToString(a.NetworkInterfaceId)}
	if h.InstanceID != "" && h.InstanceID != c.InstanceID {
		if err := c.describeHolder(ctx, &h); err != nil {
			return Claimed{}, err
		}
	}
	v := Decide(c.InstanceID, c.Deployment, h)
	switch v.Action {
	case Done:
		return got, nil
	case Wait:
		return Claimed{}, errors.New(v.Reason)
	}
	_, err = c.EC2.AssociateAddress(ctx, &ec2.AssociateAddressInput{
		AllocationId:       a.AllocationId,
		InstanceId:         aws.String(c.InstanceID),
		AllowReassociation: aws.Bool(v.Reassociate),
	})
	if err != nil {
		// Someone else may have associated it since the look (then
		// AllowReassociation false refuses): the next look decides again.
		return Claimed{}, fmt.Errorf("associating the pool IP (%s): %w", v.Reason, err)
	}
	// A successful AssociateAddress is not yet the IP: the EC2 API is
	// eventually consistent, and two instances associating at once can
	// both be told yes ("Eventual consistency in the Amazon EC2 API",
	// docs.aws.amazon.com/ec2/latest/devguide/eventual-consistency.html:
	// confirm the state with the Describe call, backing off). The IP is
	// this instance's only once a look shows it here (Done).
	return Claimed{}, fmt.Errorf("%w (%s)", errUnconfirmed, v.Reason)
}

// errUnconfirmed: associated, and waiting for DescribeAddresses to show it.
var errUnconfirmed = errors.New("associated the pool IP; the next look confirms it is this instance's")

// describeHolder fills h with the holding instance's state and deployment
// tag. An instance EC2 no longer knows stays !Found.
func (c *Claimer) describeHolder(ctx context.Context, h *Holder) error {
	out, err := c.EC2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{h.InstanceID}})
	if err != nil {
		if apiCode(err) == "InvalidInstanceID.NotFound" {
			return nil
		}
		return fmt.Errorf("describing instance %s, which holds the pool IP: %w", h.InstanceID, err)
	}
	for _, r := range out.Reservations {
		for _, in := range r.Instances {
			if aws.ToString(in.InstanceId) != h.InstanceID {
				continue
			}
			h.Found = true
			if in.State != nil {
				h.State = string(in.State.Name)
			}
			for _, t := range in.Tags {
				if aws.ToString(t.Key) == guardian.TagDeployment {
					h.Deployment = aws.ToString(t.Value)
				}
			}
		}
	}
	return nil
}
