package guardian

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/outgate/outgate/internal/guardian/fakeaws"
)

// TestRandomizedInterleavings drives the simulator through seeded random
// histories: ENIs created, replaced, retired (as "lambda" or "interface"),
// deleted, extra ENIs past 65,000 connections, pool IPs added (spares or
// tagged) and released by a human, foreign ENIs that include outgate's
// group, and a second guardian run overlapping the first. AWS events and
// the second run fire between any two API calls of a run (fakeaws's
// BeforeCall hook), so the interleavings are as fine as the API allows.
// Half the seeds let an association replace an ENI's EIP (as EC2 documents
// for instances) instead of refusing it.
//
// After every run: no pool IP is lost, no IP is on two ENIs, no pool IP is
// on an ENI that is not the relay's. Once AWS is quiet, two runs are enough
// for every in-use ENI to have an IP when the pool has enough, with no
// errors, and a third run changes nothing.
//
// A failing seed prints itself; replay it with
// GUARDIAN_SEED=<seed> go test -run TestRandomizedInterleavings ./internal/guardian/
func TestRandomizedInterleavings(t *testing.T) {
	seeds := make([]uint64, 0, 500)
	if v := os.Getenv("GUARDIAN_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("GUARDIAN_SEED=%q: %v", v, err)
		}
		seeds = append(seeds, n)
	} else {
		for i := range uint64(500) {
			seeds = append(seeds, i+1)
		}
	}
	for _, seed := range seeds {
		if msg := randomHistory(seed); msg != "" {
			t.Fatalf("seed %d: %s\nreplay: GUARDIAN_SEED=%d go test -count=1 -run TestRandomizedInterleavings ./internal/guardian/", seed, msg, seed)
		}
	}
}

type history struct {
	rng     *rand.Rand
	cloud   *fakeaws.Cloud
	g       *Guardian
	subnets []string
	pool    map[string]bool // allocation ids the pool must still hold
	trace   []string
	depth   int // > 0 while an event or a nested run is in progress
}

func (h *history) log(format string, args ...any) {
	h.trace = append(h.trace, fmt.Sprintf(format, args...))
}

// relayENIs returns the relay's ENIs (the ones the guardian must serve) by status.
func (h *history) relayENIs(status string) []fakeaws.ENI {
	enis, _ := h.cloud.Snapshot()
	var out []fakeaws.ENI
	for _, e := range enis {
		if e.Lambda && e.Type == "lambda" && strings.Join(e.Groups, ",") == sg && e.Status == status {
			out = append(out, e)
		}
	}
	return out
}

// event makes AWS (or a human, or an overlapping run) change one thing.
func (h *history) event() {
	h.depth++
	defer func() { h.depth-- }()
	r := h.rng
	sub := h.subnets[r.IntN(len(h.subnets))]
	switch r.IntN(10) {
	case 0:
		h.log("activate all")
		h.cloud.Activate()
	case 1:
		if p := h.relayENIs("pending"); len(p) > 0 {
			e := p[r.IntN(len(p))]
			h.log("activate %s", e.ID)
			h.cloud.ActivateENI(e.ID)
		}
	case 2:
		h.log("extra ENI in %s", sub)
		h.cloud.AddConnections(sub, []string{sg}, fakeaws.ConnectionsPerENI+1)
	case 3:
		if u := h.relayENIs("in-use"); len(u) > 0 {
			e, asIf := u[r.IntN(len(u))], r.IntN(2) == 0
			h.log("replace %s (as interface: %v) -> %s", e.ID, asIf, h.cloud.ReplaceENI(e.ID, asIf))
		}
	case 4:
		if u := h.relayENIs("in-use"); len(u) > 0 {
			e, asIf := u[r.IntN(len(u))], r.IntN(2) == 0
			h.log("retire %s (as interface: %v)", e.ID, asIf)
			h.cloud.RetireENI(e.ID, asIf)
		}
	case 5:
		h.log("delete available ENIs")
		h.cloud.DeleteAvailable()
	case 6:
		tags := map[string]string{TagDeployment: depl}
		if r.IntN(3) == 0 {
			tags[TagSubnet] = sub
		}
		id := h.cloud.Allocate(tags)
		h.pool[id] = true
		h.log("add pool IP %s %v", id, tags)
	case 7:
		_, addrs := h.cloud.Snapshot()
		for _, a := range addrs {
			if h.pool[a.AllocationID] && a.AssociationID == "" && h.cloud.Release(a.AllocationID) {
				delete(h.pool, a.AllocationID)
				h.log("human releases free pool IP %s", a.AllocationID)
				break
			}
		}
	case 8:
		// Another function's ENI whose groups include outgate's.
		h.log("foreign ENI in %s", sub)
		h.cloud.AddENI(sub, []string{sg, "sg-0theirs"}, "lambda", "in-use", "their-function")
	case 9:
		if h.depth == 1 {
			h.log("overlapping run starts")
			s := h.g.Run(context.Background())
			h.log("overlapping run ends: %d associations, errors %v", s.Associations, s.Errors)
		}
	}
}

// invariants holds at any moment between two API calls.
func (h *history) invariants() string {
	enis, addrs := h.cloud.Snapshot()
	byAlloc := map[string]fakeaws.Address{}
	for _, a := range addrs {
		byAlloc[a.AllocationID] = a
	}
	for id := range h.pool {
		if _, ok := byAlloc[id]; !ok {
			return fmt.Sprintf("pool IP %s was released or lost", id)
		}
	}
	holders := map[string]string{}
	for _, e := range enis {
		if e.AllocationID == "" {
			continue
		}
		if other, dup := holders[e.AllocationID]; dup {
			return fmt.Sprintf("IP %s is on both %s and %s", e.AllocationID, other, e.ID)
		}
		holders[e.AllocationID] = e.ID
		if byAlloc[e.AllocationID].ENI != e.ID {
			return fmt.Sprintf("ENI %s and IP %s disagree about their association", e.ID, e.AllocationID)
		}
		if h.pool[e.AllocationID] && (!e.Lambda || strings.Join(e.Groups, ",") != sg) {
			return fmt.Sprintf("pool IP %s is on %s (groups %v), which is not the relay's", e.AllocationID, e.ID, e.Groups)
		}
	}
	return ""
}

func randomHistory(seed uint64) string {
	c := fakeaws.New()
	h := &history{rng: rand.New(rand.NewPCG(seed, 0x6f757467)), cloud: c, pool: map[string]bool{}}
	r := h.rng
	h.subnets = []string{subnetA, subnetB, "subnet-0ccc"}[:2+r.IntN(2)]
	for range 1 + r.IntN(4) {
		h.pool[c.Allocate(map[string]string{TagDeployment: depl})] = true
	}
	g, err := New(Config{Deployment: depl, SecurityGroupID: sg, SubnetIDs: h.subnets, RelayFunction: fn, PageSize: 2}, c, c)
	if err != nil {
		return err.Error()
	}
	g.sleep = func(context.Context, time.Duration) error { return nil }
	g.now = func() time.Time { return time.Date(2026, 11, 23, 10, 30, 0, 0, time.UTC) }
	h.g = g
	// Half the histories take the other reading of associating an EIP to
	// an ENI that has one (it replaces the old EIP instead of failing).
	c.ENIReplacesEIP = seed%2 == 0
	h.log("ENI replaces its EIP on association: %v", c.ENIReplacesEIP)
	c.Deploy(fn, h.subnets, []string{sg})
	c.Activate()
	fail := func(msg string) string {
		return msg + "\nhistory:\n  " + strings.Join(h.trace, "\n  ")
	}
	c.BeforeCall = func(op string) {
		if h.depth < 2 && r.IntN(8) == 0 {
			h.event()
		}
	}
	for step := range 3 + r.IntN(10) {
		for range r.IntN(4) {
			h.event()
		}
		s := g.Run(context.Background())
		h.log("run %d: %d associations, %d disassociations, %d without IP, errors %v", step, s.Associations, s.Disassociations, s.ENIsWithoutIP, s.Errors)
		if msg := h.invariants(); msg != "" {
			return fail(msg)
		}
	}
	// AWS goes quiet.
	c.BeforeCall = nil
	c.Activate()
	h.log("quiet")
	var s Summary
	for i := range 2 {
		s = g.Run(context.Background())
		h.log("quiet run %d: %d associations, %d disassociations, %d without IP, errors %v", i, s.Associations, s.Disassociations, s.ENIsWithoutIP, s.Errors)
		if msg := h.invariants(); msg != "" {
			return fail(msg)
		}
	}
	if len(s.Errors) > 0 {
		return fail(fmt.Sprintf("errors once AWS is quiet: %v", s.Errors))
	}
	serving := h.relayENIs("in-use")
	if len(serving) <= len(h.pool) {
		for _, e := range serving {
			if e.AllocationID == "" {
				return fail(fmt.Sprintf("ENI %s has no IP after two quiet runs, with %d pool IPs for %d ENIs", e.ID, len(h.pool), len(serving)))
			}
		}
		if s.ENIsWithoutIP != 0 {
			return fail(fmt.Sprintf("the summary reports %d ENIs without IP: %+v", s.ENIsWithoutIP, s))
		}
	} else if s.ENIsWithoutIP != len(serving)-len(h.pool) {
		return fail(fmt.Sprintf("%d ENIs for %d pool IPs, but %d reported without IP", len(serving), len(h.pool), s.ENIsWithoutIP))
	}
	if again := g.Run(context.Background()); again.Associations+again.Disassociations+again.Allocated != 0 {
		return fail(fmt.Sprintf("a third quiet run still changed things: %+v", again))
	}
	return ""
}
