package claim

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/outgate/outgate/internal/guardian"
)

// DeploymentIPs are the public IPs tagged outgate:deployment=deployment:
// the addresses partners allowlist, and so the only ones an instance may
// serve from.
func DeploymentIPs(ctx context.Context, api EC2, deployment string) (map[netip.Addr]bool, error) {
	out, err := api.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{Filters: []ec2types.Filter{
		{Name: aws.String("tag:" + guardian.TagDeployment), Values: []string{deployment}},
	}})
	if err != nil {
		return nil, fmt.Errorf("describing the deployment's IPs: %w", err)
	}
	ips := map[netip.Addr]bool{}
	for _, a := range out.Addresses {
		if ip, err := netip.ParseAddr(aws.ToString(a.PublicIp)); err == nil {
			ips[ip.Unmap()] = true
		}
	}
	return ips, nil
}

// Egress judges the instance's egress IP.
type Egress struct {
	EC2        EC2
	Deployment string
	// EgressIP asks egress_check_url through the gateway's own way out
	// (the address policy and timeouts of client traffic).
	EgressIP func(context.Context) (netip.Addr, error)

	// Launched is the public IPv4 address the instance had before its
	// claim (IMDS public-ipv4; invalid if it had none). Associating an
	// Elastic IP releases that address, but the switch reaches the network
	// a moment after AssociateAddress answers, and AWS states no bound.
	// So until the egress is first verified, an answer equal to Launched
	// is "not yet": not ready, and not counted as a wrong IP (the
	// EgressWrongIP alarm is for calls leaving from a wrong address, and
	// none has been served). An instance that never switches is replaced
	// after the boot grace like any other that is never ready.
	Launched netip.Addr

	// known is the deployment's IPs as last read: a failed read (an EC2
	// API blip) is judged against them rather than closing the gate on a
	// proven egress. Never used before a first successful read.
	known map[netip.Addr]bool
	// verified: some check has been ready since boot.
	verified bool
}

// Check is one egress verdict.
type Check struct {
	EgressIP netip.Addr // invalid when the check did not answer
	Ready    bool
	// Wrong: the check answered an IP that is not one of the
	// deployment's (the EgressWrongIP metric counts these).
	Wrong  bool
	Reason string
}

// Check asks the egress IP and compares it with the deployment's IPs now
// (read each time: an IP added or released is seen at the next check).
// One caller at a time (the agent's loop).
func (e *Egress) Check(ctx context.Context) Check {
	ip, err := e.EgressIP(ctx)
	if err != nil {
		return Check{Reason: "the egress check failed: " + err.Error()}
	}
	ip = ip.Unmap()
	ips, err := DeploymentIPs(ctx, e.EC2, e.Deployment)
	switch {
	case err == nil:
		e.known = ips
	case e.known == nil:
		return Check{EgressIP: ip, Reason: err.Error()}
	default:
		ips = e.known // judged against the last list read
	}
	if !ips[ip] && !e.verified && e.Launched.IsValid() && ip == e.Launched.Unmap() {
		return Check{EgressIP: ip, Reason: fmt.Sprintf("calls still leave from %s, the address the instance launched with: the pool IP's association has not reached the network yet", ip)}
	}
	if !ips[ip] {
		return Check{EgressIP: ip, Wrong: true, Reason: fmt.Sprintf("calls leave from %s, which is not one of the deployment's %d IPs", ip, len(ips))}
	}
	e.verified = true
	return Check{EgressIP: ip, Ready: true, Reason: "calls leave from " + ip.String() + ", one of the deployment's IPs"}
}

// Health decides when an instance that is not ready has itself replaced:
// BootGrace after boot if it was never ready (claiming the IP and the
// first check take a minute or two), LostGrace after it stopped being
// ready. Not safe for concurrent use: one loop observes.
type Health struct {
	Boot      time.Time
	BootGrace time.Duration // 10 minutes
	LostGrace time.Duration // 5 minutes

	everReady bool
	ready     bool
	since     time.Time // when the current not-ready stretch began
}

// NewHealth starts the clock at boot with the design's grace periods.
func NewHealth(boot time.Time) *Health {
	return &Health{Boot: boot, BootGrace: 10 * time.Minute, LostGrace: 5 * time.Minute}
}

// Observe records one verdict at now and reports whether the instance has
// been unready too long and must be replaced.
func (h *Health) Observe(now time.Time, ready bool) (replace bool) {
	if ready {
		h.everReady, h.ready = true, true
		return false
	}
	if h.ready || h.since.IsZero() {
		h.since = now
	}
	h.ready = false
	if !h.everReady {
		return now.Sub(h.Boot) >= h.BootGrace
	}
	return now.Sub(h.since) >= h.LostGrace
}

// ReportUnhealthy tells the instance's Auto Scaling group to replace it,
// without the group's health-check grace period (the instance has already
// waited its own).
func ReportUnhealthy(ctx context.Context, api AutoScaling, instanceID string) error {
	_, err := api.SetInstanceHealth(ctx, &autoscaling.SetInstanceHealthInput{
		InstanceId:               aws.String(instanceID),
		HealthStatus:             aws.String("Unhealthy"),
		ShouldRespectGracePeriod: aws.Bool(false),
	})
	if err != nil {
		return fmt.Errorf("reporting instance %s unhealthy to its Auto Scaling group: %w", instanceID, err)
	}
	return nil
}
