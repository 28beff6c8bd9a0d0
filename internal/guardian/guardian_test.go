package guardian

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/outgate/outgate/internal/attached"
	"github.com/outgate/outgate/internal/guardian/fakeaws"
)

// These scenarios run against the in-memory simulator because moto cannot
// create Lambda ENIs or drive their lifecycle; moto_test.go runs the same
// code over the real EC2 wire protocol.

const (
	sg      = "sg-0outgate"
	subnetA = "subnet-0aaa"
	subnetB = "subnet-0bbb"
	fn      = "outgate-relay"
	depl    = "prod"
)

type world struct {
	t     *testing.T
	cloud *fakeaws.Cloud
	g     *Guardian
	pool  []string
}

func newWorld(t *testing.T, poolSize int, subnets ...string) *world {
	c := fakeaws.New()
	w := &world{t: t, cloud: c}
	for i := 0; i < poolSize; i++ {
		w.pool = append(w.pool, c.Allocate(map[string]string{TagDeployment: depl}))
	}
	g, err := New(Config{Deployment: depl, SecurityGroupID: sg, SubnetIDs: subnets, RelayFunction: fn, PageSize: 2}, c, c)
	if err != nil {
		t.Fatal(err)
	}
	g.sleep = func(context.Context, time.Duration) error { return nil }
	g.now = func() time.Time { return time.Date(2026, 11, 23, 10, 30, 0, 0, time.UTC) } // not a keepalive minute
	w.g = g
	return w
}

// run makes one pass, checks the invariants, and checks that a second pass
// finds nothing left to do (convergence within one run).
func (w *world) run() Summary {
	w.t.Helper()
	s := w.g.Run(context.Background())
	if len(s.Errors) > 0 {
		w.t.Fatalf("run errors: %v", s.Errors)
	}
	w.invariants()
	again := w.g.Run(context.Background())
	if again.Associations != 0 || again.Disassociations != 0 || again.Allocated != 0 {
		w.t.Fatalf("a second run still changed things: %+v (first: %+v)", again, s)
	}
	return s
}

func (w *world) invariants() {
	w.t.Helper()
	enis, addrs := w.cloud.Snapshot()
	byAlloc := map[string]fakeaws.Address{}
	for _, a := range addrs {
		byAlloc[a.AllocationID] = a
	}
	for _, id := range w.pool {
		if _, ok := byAlloc[id]; !ok {
			w.t.Fatalf("pool IP %s was released or lost", id)
		}
	}
	holders := map[string]string{}
	for _, e := range enis {
		if e.AllocationID == "" {
			continue
		}
		if other, dup := holders[e.AllocationID]; dup {
			w.t.Fatalf("IP %s is on both %s and %s", e.AllocationID, other, e.ID)
		}
		holders[e.AllocationID] = e.ID
		if a := byAlloc[e.AllocationID]; a.ENI != e.ID {
			w.t.Fatalf("ENI %s and IP %s disagree about their association", e.ID, e.AllocationID)
		}
	}
}

// ipOf returns the public IP on the in-use lambda ENI of a subnet (the one
// with the lowest id if there are several).
func (w *world) ipOf(subnet string) string {
	enis, addrs := w.cloud.Snapshot()
	for _, e := range enis {
		if e.Subnet == subnet && e.Status == "in-use" && e.Type == "lambda" && e.AllocationID != "" {
			for _, a := range addrs {
				if a.AllocationID == e.AllocationID {
					return a.PublicIP
				}
			}
		}
	}
	return ""
}

func TestFreshDeploy(t *testing.T) {
	w := newWorld(t, 1, subnetA)
	w.cloud.Deploy(fn, []string{subnetA}, []string{sg})
	s := w.g.Run(context.Background())
	if s.ENIsPending != 1 || s.Associations != 0 {
		t.Fatalf("pending ENI: %+v", s)
	}
	w.cloud.Activate()
	s = w.run()
	if s.Associations != 1 || s.ENIsWithoutIP != 0 || s.PoolFree != 0 || w.ipOf(subnetA) == "" {
		t.Fatalf("after activation: %+v", s)
	}
	_, addrs := w.cloud.Snapshot()
	if addrs[0].Tags[TagSubnet] != subnetA {
		t.Errorf("the IP does not remember its subnet: %v", addrs[0].Tags)
	}
}

func TestReplacementKeepsTheSameIP(t *testing.T) {
	for _, deleteFirst := range []bool{false, true} {
		for _, asInterface := range []bool{false, true} {
			w := newWorld(t, 2, subnetA, subnetB)
			w.cloud.Deploy(fn, []string{subnetA, subnetB}, []string{sg})
			w.cloud.Activate()
			w.run()
			ipA, ipB := w.ipOf(subnetA), w.ipOf(subnetB)
			if ipA == "" || ipB == "" || ipA == ipB {
				t.Fatalf("two AZs: %q %q", ipA, ipB)
			}
			// Lambda replaces both ENIs (a configuration update); the
			// retiring ones may show interface-type "interface".
			w.cloud.ReplaceENI(w.enisIn(subnetA, "in-use")[0], asInterface)
			w.cloud.ReplaceENI(w.enisIn(subnetB, "in-use")[0], asInterface)
			if deleteFirst {
				w.cloud.DeleteAvailable() // the old ENIs are already gone
			}
			w.cloud.Activate()
			s := w.run()
			if w.ipOf(subnetA) != ipA || w.ipOf(subnetB) != ipB {
				t.Fatalf("deleteFirst=%v asInterface=%v: IPs moved: A %s->%s, B %s->%s (%+v)", deleteFirst, asInterface, ipA, w.ipOf(subnetA), ipB, w.ipOf(subnetB), s)
			}
			if !deleteFirst && (s.Disassociations != 2 || len(s.NeedsHuman) != 0) {
				t.Errorf("asInterface=%v: the IPs should have been taken back from the retiring ENIs, not reported as outside: %+v", asInterface, s)
			}
		}
	}
}

func TestIdleReclaimAndRestore(t *testing.T) {
	w := newWorld(t, 1, subnetA)
	w.cloud.Deploy(fn, []string{subnetA}, []string{sg})
	w.cloud.Activate()
	w.run()
	ip := w.ipOf(subnetA)
	w.cloud.Reclaim(fn)
	w.cloud.DeleteAvailable()
	// The guardian sees the function Inactive and wakes it at once.
	s := w.g.Run(context.Background())
	if !s.KeepaliveSent || !strings.HasPrefix(s.FunctionState, "Inactive") || s.PoolFree != 1 {
		t.Fatalf("inactive function: %+v", s)
	}
	w.cloud.Activate()
	w.run()
	if w.ipOf(subnetA) != ip {
		t.Fatalf("after restore the IP is %q, want %q", w.ipOf(subnetA), ip)
	}
}

func TestSecondENIPast65000Connections(t *testing.T) {
	w := newWorld(t, 2, subnetA)
	w.cloud.Deploy(fn, []string{subnetA}, []string{sg})
	w.cloud.Activate()
	w.run()
	w.cloud.AddConnections(subnetA, []string{sg}, fakeaws.ConnectionsPerENI+10)
	w.cloud.Activate()
	s := w.run()
	if s.Associations != 1 || s.ENIsWithoutIP != 0 || len(s.IPs) != 2 {
		t.Fatalf("second ENI: %+v", s)
	}
}

func TestPoolTooSmall(t *testing.T) {
	w := newWorld(t, 1, subnetA)
	w.cloud.Deploy(fn, []string{subnetA}, []string{sg})
	w.cloud.AddConnections(subnetA, []string{sg}, fakeaws.ConnectionsPerENI+1)
	w.cloud.Activate()
	s := w.run()
	if s.ENIsWithoutIP != 1 || s.Allocated != 0 || len(s.NeedsHuman) == 0 || !strings.Contains(s.NeedsHuman[0], "pool is too small") {
		t.Fatalf("pool too small: %+v", s)
	}
	if w.cloud.Calls["AllocateAddress"] != 0 {
		t.Fatal("allocated an IP although the deployment does not allow it")
	}
	// When the deployment allows it, a new IP is allocated, tagged and reported.
	w.g.cfg.AllowAllocate = true
	s = w.g.Run(context.Background())
	if s.Allocated != 1 || s.ENIsWithoutIP != 0 || !strings.Contains(strings.Join(s.NeedsHuman, "\n"), "give it to your partners") {
		t.Fatalf("allowed allocation: %+v", s)
	}
	w.invariants()
}

func TestConcurrentRunsNeverDoubleAssociate(t *testing.T) {
	w := newWorld(t, 4, subnetA, subnetB)
	w.cloud.Deploy(fn, []string{subnetA, subnetB}, []string{sg})
	w.cloud.AddConnections(subnetA, []string{sg}, fakeaws.ConnectionsPerENI+1)
	w.cloud.Activate()
	var wg sync.WaitGroup
	sums := make([]Summary, 6)
	for i := range sums {
		wg.Add(1)
		go func() { defer wg.Done(); sums[i] = w.g.Run(context.Background()) }()
	}
	wg.Wait()
	total := 0
	for _, s := range sums {
		total += s.Associations
		if len(s.Errors) > 0 {
			t.Errorf("concurrent run errors: %v", s.Errors)
		}
	}
	w.invariants()
	// AssociateAddress is idempotent, so two runs that pick the same IP for
	// the same ENI both succeed: the count may exceed 3, the state may not.
	if total < 3 {
		t.Errorf("%d associations in all for 3 ENIs", total)
	}
	enis, addrs := w.cloud.Snapshot()
	held := 0
	for _, e := range enis {
		if e.Status == "in-use" && e.AllocationID == "" {
			t.Errorf("ENI %s has no IP after concurrent runs", e.ID)
		}
	}
	for _, a := range addrs {
		if a.ENI != "" {
			held++
		}
	}
	if held != 3 {
		t.Errorf("%d pool IPs are held for 3 ENIs; the 4th must stay free", held)
	}
	if s := w.run(); s.ENIsWithoutIP != 0 || s.PoolFree != 1 {
		t.Errorf("after concurrent runs: %+v", s)
	}
}

func TestHandAssociationsAndForeignResources(t *testing.T) {
	w := newWorld(t, 1, subnetA, subnetB)
	w.cloud.Deploy(fn, []string{subnetA, subnetB}, []string{sg})
	w.cloud.Activate()
	enis, _ := w.cloud.Snapshot()
	// A human attached an IP that is not in the pool to the ENI in subnet B,
	// and pool IP w.pool[0] to the ENI in subnet A.
	mine := w.cloud.Allocate(map[string]string{"team": "payments"})
	var eniA, eniB string
	for _, e := range enis {
		if e.Subnet == subnetA {
			eniA = e.ID
		} else {
			eniB = e.ID
		}
	}
	w.cloud.AssociateByHand(w.pool[0], eniA)
	w.cloud.AssociateByHand(mine, eniB)
	// Other people's things: an ENI of another security group in our subnet,
	// and a free IP of another deployment.
	other := w.cloud.AddENI(subnetA, []string{"sg-0other"}, "lambda", "in-use", "their-function")
	w.cloud.Allocate(map[string]string{TagDeployment: "staging"})

	s := w.run()
	if s.Associations != 0 || s.ENIsWithoutIP != 0 {
		t.Fatalf("hand associations: %+v", s)
	}
	if !strings.Contains(strings.Join(s.NeedsHuman, "\n"), "not in the pool") {
		t.Errorf("the foreign IP on %s is not reported: %v", eniB, s.NeedsHuman)
	}
	enis, addrs := w.cloud.Snapshot()
	for _, e := range enis {
		if e.ID == other.ID && e.AllocationID != "" {
			t.Error("the guardian gave an IP to another security group's ENI")
		}
	}
	for _, a := range addrs {
		if a.Tags[TagDeployment] == "staging" && a.AssociationID != "" {
			t.Error("the guardian used another deployment's IP")
		}
		if a.AllocationID == mine && a.ENI != eniB {
			t.Error("the guardian moved an IP it does not own")
		}
	}
}

func TestThrottlingIsRetriedWithinTheRun(t *testing.T) {
	w := newWorld(t, 2, subnetA, subnetB)
	w.cloud.Deploy(fn, []string{subnetA, subnetB}, []string{sg})
	w.cloud.Activate()
	w.cloud.ThrottleNext("DescribeNetworkInterfaces", 2)
	w.cloud.ThrottleNext("AssociateAddress", 3)
	s := w.run()
	if s.Associations != 2 || s.Retries != 5 {
		t.Fatalf("throttled run: %+v", s)
	}
	// Throttling past MaxAttempts is reported, and the next run converges.
	w2 := newWorld(t, 1, subnetA)
	w2.cloud.Deploy(fn, []string{subnetA}, []string{sg})
	w2.cloud.Activate()
	w2.cloud.ThrottleNext("AssociateAddress", 10)
	s = w2.g.Run(context.Background())
	if len(s.Errors) != 1 || !strings.Contains(s.Errors[0], "RequestLimitExceeded") || s.ENIsWithoutIP != 1 {
		t.Fatalf("persistent throttling: %+v", s)
	}
	w2.cloud.ThrottleNext("AssociateAddress", -5) // whatever is left clears
	if s := w2.run(); s.Associations != 1 {
		t.Fatalf("next run: %+v", s)
	}
}

func TestPagination(t *testing.T) {
	// PageSize is 2; five subnets make five ENIs over three pages.
	subnets := []string{"subnet-1", "subnet-2", "subnet-3", "subnet-4", "subnet-5"}
	w := newWorld(t, 5, subnets...)
	w.cloud.Deploy(fn, subnets, []string{sg})
	w.cloud.Activate()
	s := w.run()
	if s.ENIsSeen != 5 || s.Associations != 5 {
		t.Fatalf("paginated discovery: %+v", s)
	}
}

func TestKeepaliveSchedule(t *testing.T) {
	w := newWorld(t, 1, subnetA)
	w.cloud.Deploy(fn, []string{subnetA}, []string{sg})
	w.cloud.Activate()
	w.g.now = func() time.Time { return time.Date(2026, 11, 23, 11, 0, 20, 0, time.UTC) }
	s := w.g.Run(context.Background())
	if !s.KeepaliveSent || s.FunctionState != "Active" || len(w.cloud.Invokes[fn]) != 1 || w.cloud.Invokes[fn][0] != KeepalivePayload {
		t.Fatalf("keepalive at the top of the hour: %+v, invokes %v", s, w.cloud.Invokes)
	}
	w.g.now = func() time.Time { return time.Date(2026, 11, 23, 11, 1, 20, 0, time.UTC) }
	if s := w.g.Run(context.Background()); s.KeepaliveSent {
		t.Fatal("keepalive sent off schedule while the function is Active")
	}
}

func TestNewValidates(t *testing.T) {
	c := fakeaws.New()
	for _, cfg := range []Config{{}, {SecurityGroupID: sg}, {SecurityGroupID: sg, SubnetIDs: []string{subnetA}}} {
		if _, err := New(cfg, c, c); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
	if _, err := New(Config{Deployment: depl, SecurityGroupID: sg, SubnetIDs: []string{subnetA}, RelayFunction: fn}, c, nil); err == nil {
		t.Error("a relay function without a Lambda client was accepted")
	}
}

// enisIn returns the ids of the simulated Lambda ENIs of a subnet with the
// given status, in id order.
func (w *world) enisIn(subnet, status string) []string {
	enis, _ := w.cloud.Snapshot()
	var out []string
	for _, e := range enis {
		if e.Subnet == subnet && e.Status == status && e.Lambda {
			out = append(out, e.ID)
		}
	}
	return out
}

// TestNoWedgeWhenAnExtraENITakesAReplacementsIP is issue #12's wedge: two
// subnets, two IPs; B's ENI is being replaced (the new one still pending)
// while an extra ENI appears in A. The extra ENI may borrow B's free IP, but
// must not re-tag it to A; when the extra ENI goes away, B's new ENI must
// get that IP, not stay without one while it sits free.
func TestNoWedgeWhenAnExtraENITakesAReplacementsIP(t *testing.T) {
	w := newWorld(t, 2, subnetA, subnetB)
	w.cloud.Deploy(fn, []string{subnetA, subnetB}, []string{sg})
	w.cloud.Activate()
	w.run()
	ipB := w.ipOf(subnetB)
	oldB := w.enisIn(subnetB, "in-use")[0]
	newB := w.cloud.ReplaceENI(oldB, false) // pending
	w.cloud.AddConnections(subnetA, []string{sg}, fakeaws.ConnectionsPerENI+1)
	extraA := w.enisIn(subnetA, "pending")[0]
	w.cloud.ActivateENI(extraA) // in use before B's replacement
	s := w.g.Run(context.Background())
	if len(s.Errors) > 0 {
		t.Fatalf("run errors: %v", s.Errors)
	}
	w.invariants()
	_, addrs := w.cloud.Snapshot()
	for _, a := range addrs {
		if a.PublicIP == ipB && a.Tags[TagSubnet] != subnetB {
			t.Errorf("B's IP was re-tagged %q while subnet A has its own IP", a.Tags[TagSubnet])
		}
	}
	// The extra ENI goes away; B's replacement comes up.
	w.cloud.RetireENI(extraA, false)
	w.cloud.DeleteAvailable()
	w.cloud.Activate()
	s = w.run()
	if s.ENIsWithoutIP != 0 || w.ipOf(subnetB) != ipB {
		t.Fatalf("B's ENI %s is left on %q (want %s) while the pool has a free IP: %+v", newB, w.ipOf(subnetB), ipB, s)
	}
}

// TestErrorsNeverLookHealthy: every failure of a run is in Errors, makes
// Err non-nil (the invocation fails) and GuardianErrors > 0, and never
// leaves a "0 ENIs without IP" that reads as healthy.
func TestErrorsNeverLookHealthy(t *testing.T) {
	setup := func() *world {
		w := newWorld(t, 1, subnetA)
		w.cloud.Deploy(fn, []string{subnetA}, []string{sg})
		w.cloud.Activate()
		return w
	}
	check := func(name string, s Summary, wantWithout int) {
		t.Helper()
		if len(s.Errors) == 0 || s.Err() == nil {
			t.Errorf("%s: the failure is not reported: %+v", name, s)
		}
		r := report(s)
		if !strings.Contains(r, `"GuardianErrors":`) || strings.Contains(r, `"GuardianErrors":0`) || !strings.Contains(r, `"level":"ERROR"`) {
			t.Errorf("%s: the report hides the failure:\n%s", name, r)
		}
		switch {
		case wantWithout < 0 && (!s.ENIsUnknown || strings.Contains(r, `"EnisWithoutIp"`)):
			t.Errorf("%s: ENIs unknown, but EnisWithoutIp is reported:\n%s", name, r)
		case wantWithout >= 0 && s.ENIsWithoutIP != wantWithout:
			t.Errorf("%s: %d ENIs without IP reported, want %d: %+v", name, s.ENIsWithoutIP, wantWithout, s)
		}
	}

	w := setup()
	w.cloud.FailNext("DescribeNetworkInterfaces", "UnauthorizedOperation", 1)
	check("listing ENIs", w.g.Run(context.Background()), -1)

	w = setup()
	w.cloud.FailNext("DescribeAddresses", "UnauthorizedOperation", 1)
	check("listing the pool", w.g.Run(context.Background()), 1)

	w = setup()
	w.cloud.FailNext("AssociateAddress", "UnauthorizedOperation", 1)
	check("associating", w.g.Run(context.Background()), 1)

	w = setup()
	w.cloud.FailNext("CreateTags", "UnauthorizedOperation", 1)
	s := w.g.Run(context.Background())
	check("tagging", s, 0)

	// An explicit allocation id that no longer exists is reported, but the
	// tagged pool still serves.
	w = setup()
	w.g.cfg.AllocationIDs = []string{"eipalloc-0released"}
	s = w.g.Run(context.Background())
	check("a configured allocation id", s, 0)
	if s.Associations != 1 {
		t.Errorf("a bad configured id stopped the tagged pool from serving: %+v", s)
	}
	if s := w.g.Run(context.Background()); s.Associations != 0 || s.ENIsWithoutIP != 0 {
		t.Errorf("next run: %+v", s)
	}
}

// TestENIsThatMerelyIncludeTheGroupAreNotOurs: the group-id filter matches
// every ENI whose groups include outgate's. Another function's Lambda ENI
// with outgate's group and one of its own, or an ordinary ENI with exactly
// outgate's group, is not the relay's: it gets no pool IP.
func TestENIsThatMerelyIncludeTheGroupAreNotOurs(t *testing.T) {
	w := newWorld(t, 3, subnetA)
	w.cloud.Deploy(fn, []string{subnetA}, []string{sg})
	w.cloud.Activate()
	superset := w.cloud.AddENI(subnetA, []string{sg, "sg-0theirs"}, "lambda", "in-use", "their-function")
	plain := w.cloud.AddENI(subnetA, []string{sg}, "interface", "in-use", "")
	s := w.run()
	if s.Associations != 1 || s.ENIsSeen != 1 {
		t.Fatalf("only the relay's ENI is the deployment's: %+v", s)
	}
	enis, _ := w.cloud.Snapshot()
	for _, e := range enis {
		if (e.ID == superset.ID || e.ID == plain.ID) && e.AllocationID != "" {
			t.Errorf("pool IP %s went to %s (groups %v, type %s), which is not the relay's", e.AllocationID, e.ID, e.Groups, e.Type)
		}
	}
}

// TestSpareServesAnExtraENI: a spare (tagged for the deployment, for no
// subnet) goes to an extra ENI without a human, stays untagged (its subnet
// already has its IP), and is free for the next extra ENI anywhere once
// that one goes away.
func TestSpareServesAnExtraENI(t *testing.T) {
	w := newWorld(t, 2, subnetA, subnetB)
	spare := w.cloud.Allocate(map[string]string{TagDeployment: depl})
	w.pool = append(w.pool, spare)
	w.cloud.Deploy(fn, []string{subnetA, subnetB}, []string{sg})
	w.cloud.Activate()
	w.run()
	ipA, ipB := w.ipOf(subnetA), w.ipOf(subnetB)
	w.cloud.AddConnections(subnetB, []string{sg}, fakeaws.ConnectionsPerENI+1)
	w.cloud.Activate()
	s := w.run()
	if s.ENIsWithoutIP != 0 || len(s.NeedsHuman) != 0 || s.Associations != 1 {
		t.Fatalf("the extra ENI did not get the spare by itself: %+v", s)
	}
	enis, addrs := w.cloud.Snapshot()
	var extra string
	for _, e := range enis {
		if e.Subnet == subnetB && e.AllocationID == spare {
			extra = e.ID
		}
	}
	for _, a := range addrs {
		if a.AllocationID == spare && a.Tags[TagSubnet] != "" {
			t.Errorf("the spare was tagged for %s, which has its own IP", a.Tags[TagSubnet])
		}
	}
	if extra == "" || w.ipOf(subnetA) != ipA || w.ipOf(subnetB) != ipB {
		t.Fatalf("spare on %q; A %s->%s, B %s->%s", extra, ipA, w.ipOf(subnetA), ipB, w.ipOf(subnetB))
	}
	// The extra ENI retires; a later extra ENI in A gets the same spare.
	w.cloud.RetireENI(extra, true)
	w.cloud.DeleteAvailable()
	w.run()
	w.cloud.AddConnections(subnetA, []string{sg}, fakeaws.ConnectionsPerENI+1)
	w.cloud.Activate()
	if s := w.run(); s.ENIsWithoutIP != 0 || s.Associations != 1 {
		t.Fatalf("the spare did not serve the next extra ENI: %+v", s)
	}
}

// TestAnIPAttachedDuringTheRunIsKept: a human (or an overlapping run)
// attaches an IP after the guardian listed the ENIs. If EC2 lets an
// association replace an ENI's EIP (as it documents for instances), a
// guardian acting on its stale listing would swap that IP out; it looks
// again first and leaves it.
func TestAnIPAttachedDuringTheRunIsKept(t *testing.T) {
	w := newWorld(t, 1, subnetA)
	w.cloud.ENIReplacesEIP = true
	w.cloud.Deploy(fn, []string{subnetA}, []string{sg})
	w.cloud.Activate()
	eni := w.enisIn(subnetA, "in-use")[0]
	mine := w.cloud.Allocate(map[string]string{"team": "payments"})
	done := false
	w.cloud.BeforeCall = func(op string) {
		if op == "DescribeAddresses" && !done {
			done = true
			w.cloud.AssociateByHand(mine, eni)
		}
	}
	s := w.g.Run(context.Background())
	enis, _ := w.cloud.Snapshot()
	for _, e := range enis {
		if e.ID == eni && e.AllocationID != mine {
			t.Fatalf("the IP attached during the run was swapped for %s: %+v", e.AllocationID, s)
		}
	}
}

// TestAllocationIDsOnlyAddToThePool is issue #12's item 5: the template
// passes the per-AZ allocation ids, and that list used to be the whole
// pool, so an IP tagged later for the deployment (what the guardian tells
// humans to add) was never used. The list now only adds to the tagged set.
func TestAllocationIDsOnlyAddToThePool(t *testing.T) {
	w := newWorld(t, 1, subnetA)
	w.g.cfg.AllocationIDs = []string{w.pool[0]}
	w.cloud.Deploy(fn, []string{subnetA}, []string{sg})
	w.cloud.AddConnections(subnetA, []string{sg}, fakeaws.ConnectionsPerENI+1)
	w.cloud.Activate()
	if s := w.g.Run(context.Background()); s.ENIsWithoutIP != 1 {
		t.Fatalf("two ENIs, one IP: %+v", s)
	}
	// A human follows the advice and tags one more IP; an untagged IP in
	// the account is not the deployment's.
	w.cloud.Allocate(map[string]string{"team": "payments"})
	w.pool = append(w.pool, w.cloud.Allocate(map[string]string{TagDeployment: depl}))
	s := w.run()
	if s.ENIsWithoutIP != 0 || s.PoolSize != 2 || s.Associations != 1 {
		t.Fatalf("the tagged IP was not used: %+v", s)
	}
}

// TestRetiringENIInASubnetTheRelayLeft: the relay moves from subnet A to
// subnet C (a configuration update). The old ENI in A still holds the pool
// IP while Lambda retires it, but the guardian now lists only C: it finds
// the IP's ENI by id, sees it is the relay's and retiring, and moves the IP
// to C's new ENI instead of calling it "outside this deployment".
func TestRetiringENIInASubnetTheRelayLeft(t *testing.T) {
	const subnetC = "subnet-0ccc"
	for _, asInterface := range []bool{false, true} {
		w := newWorld(t, 1, subnetA)
		w.cloud.Deploy(fn, []string{subnetA}, []string{sg})
		w.cloud.Activate()
		w.run()
		ip := w.ipOf(subnetA)
		old := w.enisIn(subnetA, "in-use")[0]
		w.cloud.Deploy(fn, []string{subnetC}, []string{sg}) // A's ENI goes available
		if asInterface {
			w.cloud.RetireENI(old, true)
		}
		w.cloud.Activate()
		w.g.cfg.SubnetIDs = []string{subnetC} // the guardian is updated with the relay
		s := w.run()
		if w.ipOf(subnetC) != ip || s.Disassociations != 1 || len(s.NeedsHuman) != 0 {
			t.Fatalf("asInterface=%v: C's ENI is on %q, want %s: %+v", asInterface, w.ipOf(subnetC), ip, s)
		}
	}
}

// TestAttachedFunctionDriftIsReported: a function tagged for the
// deployment shares the relay's ENIs; its own deploy drops the VPC config
// (or adds a security group) and the next run reports it, by name and
// what differs, with the metric the drift alarm reads. Functions that are
// untagged, tagged for another deployment, or deleted are not counted, and
// a failed listing is an error with the metric left out, not a healthy 0.
// The simulator stands in for the Tagging API and Lambda (moto_test.go and
// internal/deploy's moto tests run the same check over the wire).
func TestAttachedFunctionDriftIsReported(t *testing.T) {
	w := newWorld(t, 2, subnetA, subnetB)
	w.cloud.Deploy(fn, []string{subnetA, subnetB}, []string{sg})
	w.cloud.Deploy("sms", []string{subnetA, subnetB}, []string{sg})
	w.cloud.TagFunction("sms", map[string]string{attached.Tag: depl})
	w.cloud.Deploy("other-team", nil, nil)
	w.cloud.Deploy("staging-fn", nil, nil)
	w.cloud.TagFunction("staging-fn", map[string]string{attached.Tag: "staging"})
	w.cloud.Activate()
	if err := w.g.CheckAttached(w.cloud); err != nil {
		t.Fatal(err)
	}

	s := w.run()
	if s.AttachedFunctions != 1 || len(s.DriftedFunctions) != 0 || !strings.Contains(report(s), `"AttachedFunctionsDrifted":0`) {
		t.Fatalf("attached and in place: %+v\n%s", s, report(s))
	}

	// sms's own deploy, whose code does not mention the VPC.
	w.cloud.Deploy("sms", nil, nil)
	w.cloud.Deploy("sms2", []string{subnetA}, []string{sg, "sg-0mine"})
	w.cloud.TagFunction("sms2", map[string]string{attached.Tag: depl})
	w.cloud.Activate()
	s = w.run()
	r := report(s)
	if s.AttachedFunctions != 2 || len(s.DriftedFunctions) != 2 || !strings.Contains(r, `"AttachedFunctionsDrifted":2`) || !strings.Contains(r, `"level":"ERROR"`) {
		t.Fatalf("drifted: %+v\n%s", s, r)
	}
	if !strings.HasPrefix(s.DriftedFunctions[0], "sms: no VPC config") || !strings.Contains(s.DriftedFunctions[1], "sms2: security groups "+sg+",sg-0mine, want exactly "+sg) {
		t.Errorf("what differs: %q", s.DriftedFunctions)
	}
	if !containsAll(strings.Join(s.NeedsHuman, "\n"), "function sms no longer leaves through deployment prod", "outgate attach --name prod --print FORMAT") {
		t.Errorf("needs human: %q", s.NeedsHuman)
	}

	// Deleted, but still in the tag index: skipped.
	w.cloud.DeleteFunction("sms2")
	if s = w.run(); s.AttachedFunctions != 1 || len(s.DriftedFunctions) != 1 {
		t.Errorf("after sms2 was deleted: %+v", s)
	}

	// The listing fails (say, tag:GetResources missing from the role).
	w.cloud.FailNext("GetResources", "AccessDeniedException", 1)
	s = w.g.Run(context.Background())
	r = report(s)
	if s.Err() == nil || s.AttachedChecked || strings.Contains(r, "AttachedFunctionsDrifted") || strings.Contains(r, `"GuardianErrors":0`) {
		t.Errorf("a failed listing looks healthy: %+v\n%s", s, r)
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
