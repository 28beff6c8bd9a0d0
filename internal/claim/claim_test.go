package claim

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/outgate/outgate/internal/claim/fake"
	"github.com/outgate/outgate/internal/guardian"
)

// TestDecide: every branch of the claim rule.
func TestDecide(t *testing.T) {
	const me, dep = "i-me", "pay"
	other := func(state, deployment string) Holder {
		return Holder{InstanceID: "i-other", NetworkInterfaceID: "eni-other", Found: true, State: state, Deployment: deployment}
	}
	cases := []struct {
		name   string
		h      Holder
		action Action
		reas   bool
	}{
		{"unassociated", Holder{}, Associate, false},
		{"already mine", Holder{InstanceID: me, NetworkInterfaceID: "eni-me"}, Done, false},
		{"an ENI without instance", Holder{NetworkInterfaceID: "eni-x"}, Wait, false},
		{"an instance EC2 does not know", Holder{InstanceID: "i-gone", NetworkInterfaceID: "eni-gone"}, Wait, false},
		{"running, same deployment", other("running", dep), Wait, false},
		{"pending, same deployment", other("pending", dep), Wait, false},
		{"stopping, same deployment", other("stopping", dep), Associate, true},
		{"stopped, same deployment", other("stopped", dep), Associate, true},
		{"shutting-down, same deployment", other("shutting-down", dep), Associate, true},
		{"terminated, same deployment", other("terminated", dep), Associate, true},
		{"terminated, another deployment", other("terminated", "staging"), Wait, false},
		{"stopped, untagged", other("stopped", ""), Wait, false},
		{"running, another deployment", other("running", "staging"), Wait, false},
	}
	for _, c := range cases {
		v := Decide(me, dep, c.h)
		if v.Action != c.action || v.Reassociate != c.reas || v.Reason == "" {
			t.Errorf("%s: %+v, want %v reassociate=%v", c.name, v, c.action, c.reas)
		}
	}
}

// TestClaimTransitionalStates runs the Claimer over the in-memory fake for
// what moto cannot show (states it skips, an instance it forgets).
func TestClaimTransitionalStates(t *testing.T) {
	for _, c := range []struct {
		state string
		take  bool
	}{{"shutting-down", true}, {"stopping", true}, {"pending", false}, {"", false}} {
		f := &fake.EC2{Instances: map[string]*fake.Instance{"i-me": {State: "pending", Tags: map[string]string{guardian.TagDeployment: "pay"}}}}
		a := &fake.Address{AllocationID: "eipalloc-1", PublicIP: "203.0.113.10", InstanceID: "i-old", ENI: "eni-old",
			Tags: map[string]string{guardian.TagDeployment: "pay", guardian.TagSubnet: "subnet-a"}}
		f.Addresses = []*fake.Address{a}
		if c.state != "" { // "" : EC2 no longer knows the old instance
			f.Instances["i-old"] = &fake.Instance{State: c.state, Tags: map[string]string{guardian.TagDeployment: "pay"}}
		}
		looks := 0
		cl := &Claimer{EC2: f, Deployment: "pay", InstanceID: "i-me", SubnetID: "subnet-a", MaxAttempts: 4,
			Sleep: func(context.Context, time.Duration) error { looks++; return nil }}
		got, err := cl.Claim(context.Background())
		if c.take {
			if err != nil || a.InstanceID != "i-me" || got.PublicIP != "203.0.113.10" {
				t.Errorf("%s: %v, holder %s", c.state, err, a.InstanceID)
			}
			continue
		}
		if !errors.Is(err, ErrNotClaimed) || a.InstanceID != "i-old" || f.Associations != 0 || looks != 3 {
			t.Errorf("%q: %v, holder %s, %d associations, %d waits", c.state, err, a.InstanceID, f.Associations, looks)
		}
	}
}

// TestClaimStopsWithContext: a cancelled boot stops retrying at once.
func TestClaimStopsWithContext(t *testing.T) {
	f := &fake.EC2{}
	ctx, cancel := context.WithCancel(context.Background())
	cl := &Claimer{EC2: f, Deployment: "pay", InstanceID: "i-me", SubnetID: "subnet-a", MaxAttempts: 1000,
		Sleep: func(ctx context.Context, _ time.Duration) error { cancel(); return ctx.Err() }}
	_, err := cl.Claim(ctx)
	if !errors.Is(err, ErrNotClaimed) || !strings.Contains(err.Error(), "no IP is tagged") {
		t.Fatalf("err = %v", err)
	}
}

// TestHealth: replaced after 10 minutes never ready, or 5 minutes after
// having been ready; a ready check resets the count.
func TestHealth(t *testing.T) {
	boot := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	at := func(m int) time.Time { return boot.Add(time.Duration(m) * time.Minute) }
	type obs struct {
		min     int
		ready   bool
		replace bool
	}
	cases := map[string][]obs{
		"never ready":             {{1, false, false}, {9, false, false}, {10, false, true}},
		"ready late enough":       {{1, false, false}, {9, true, false}, {11, false, false}, {15, false, false}, {16, false, true}},
		"lost then back":          {{1, true, false}, {2, false, false}, {6, false, false}, {7, true, false}, {11, false, false}, {15, false, false}, {16, false, true}},
		"ready all along":         {{1, true, false}, {30, true, false}},
		"not ready right at boot": {{0, false, false}, {10, false, true}},
	}
	for name, seq := range cases {
		h := NewHealth(boot)
		for _, o := range seq {
			if got := h.Observe(at(o.min), o.ready); got != o.replace {
				t.Errorf("%s: at %d min ready=%v: replace=%v, want %v", name, o.min, o.ready, got, o.replace)
			}
		}
	}
}

// TestEgressSurvivesAnEC2Blip: once the deployment's IPs have been read, a
// failed read is judged against them (a proven egress stays open, a wrong
// one stays wrong); before any read, it is never ready. (The fake, since
// moto cannot be made to fail one call.)
func TestEgressSurvivesAnEC2Blip(t *testing.T) {
	f := &fake.EC2{Addresses: []*fake.Address{{AllocationID: "eipalloc-1", PublicIP: "203.0.113.10", Tags: map[string]string{guardian.TagDeployment: "pay"}}}}
	answer := netip.MustParseAddr("203.0.113.10")
	eg := &Egress{EC2: f, Deployment: "pay", EgressIP: func(context.Context) (netip.Addr, error) { return answer, nil }}
	f.DescribeErr = errors.New("RequestLimitExceeded")
	if c := eg.Check(context.Background()); c.Ready || c.Wrong {
		t.Fatalf("before any read: %+v", c)
	}
	f.DescribeErr = nil
	if c := eg.Check(context.Background()); !c.Ready {
		t.Fatalf("read: %+v", c)
	}
	f.DescribeErr = errors.New("RequestLimitExceeded")
	if c := eg.Check(context.Background()); !c.Ready {
		t.Fatalf("blip after a read: %+v", c)
	}
	answer = netip.MustParseAddr("198.51.100.7")
	if c := eg.Check(context.Background()); c.Ready || !c.Wrong {
		t.Fatalf("wrong IP during a blip: %+v", c)
	}
}

// TestClaimConfirmsTheAssociation: AssociateAddress answering success is
// not taken as the IP. When a concurrent association won (EC2's API is
// eventually consistent and both callers hear yes: "Eventual consistency
// in the Amazon EC2 API"), the next look shows the other instance, which
// is running, and the claim waits instead of reporting an IP it does not
// hold. (The fake, since moto cannot lose a race.)
func TestClaimConfirmsTheAssociation(t *testing.T) {
	f := &fake.EC2{RaceTo: "i-rival", Instances: map[string]*fake.Instance{
		"i-rival": {State: "running", Tags: map[string]string{guardian.TagDeployment: "pay"}}}}
	a := &fake.Address{AllocationID: "eipalloc-1", PublicIP: "203.0.113.10",
		Tags: map[string]string{guardian.TagDeployment: "pay", guardian.TagSubnet: "subnet-a"}}
	f.Addresses = []*fake.Address{a}
	cl := &Claimer{EC2: f, Deployment: "pay", InstanceID: "i-me", SubnetID: "subnet-a", MaxAttempts: 3,
		Sleep: func(context.Context, time.Duration) error { return nil }}
	got, err := cl.Claim(context.Background())
	if !errors.Is(err, ErrNotClaimed) || got.PublicIP != "" || !strings.Contains(err.Error(), "i-rival") {
		t.Fatalf("claimed %+v, err %v: an association another instance won was taken as this one's", got, err)
	}
	if f.Associations != 1 {
		t.Fatalf("%d associations: the IP was taken from the running rival", f.Associations)
	}
	// Without a race the same claim holds the IP after its confirming look.
	f.RaceTo, a.InstanceID, a.ENI = "", "", ""
	if got, err := cl.Claim(context.Background()); err != nil || got.PublicIP != "203.0.113.10" || a.InstanceID != "i-me" {
		t.Fatalf("claim without a race: %+v, %v", got, err)
	}
}

// TestEgressToleratesTheSwitch: right after the claim, calls may still
// leave from the address the instance launched with (the association
// reaches the network after AssociateAddress answers). Until the egress
// is first verified that answer is not ready but not a wrong IP (no
// EgressWrongIP alarm on every boot); once verified, or for any other
// address, a wrong answer is wrong at once.
func TestEgressToleratesTheSwitch(t *testing.T) {
	f := &fake.EC2{Addresses: []*fake.Address{{AllocationID: "eipalloc-1", PublicIP: "203.0.113.10", Tags: map[string]string{guardian.TagDeployment: "pay"}}}}
	launched := netip.MustParseAddr("198.51.100.20")
	answer := launched
	eg := &Egress{EC2: f, Deployment: "pay", Launched: launched, EgressIP: func(context.Context) (netip.Addr, error) { return answer, nil }}
	if c := eg.Check(context.Background()); c.Ready || c.Wrong || !strings.Contains(c.Reason, "not reached the network yet") {
		t.Fatalf("launch address before the switch: %+v", c)
	}
	answer = netip.MustParseAddr("198.51.100.7")
	if c := eg.Check(context.Background()); c.Ready || !c.Wrong {
		t.Fatalf("an address that is neither the launch one nor the deployment's: %+v", c)
	}
	answer = netip.MustParseAddr("203.0.113.10")
	if c := eg.Check(context.Background()); !c.Ready {
		t.Fatalf("the pool IP: %+v", c)
	}
	answer = launched
	if c := eg.Check(context.Background()); c.Ready || !c.Wrong {
		t.Fatalf("the launch address after having been verified: %+v", c)
	}
}
