package core

import (
	"testing"

	"github.com/outgate/outgate/internal/config"
	"github.com/outgate/outgate/internal/keys"
)

// The policy check runs on every request: authenticate, route or host
// rights, rate and concurrency budgets. It must not allocate.
func TestPolicyCheckDoesNotAllocate(t *testing.T) {
	key, hash := keys.New()
	c := compile(t, `
upstreams: {pay: {url: "https://api.partner.example"}}
clients:
  - name: billing
    key_sha256: `+hash+`
    upstreams: [pay]
    hosts: ["api.partner.example:443", "*.pay.example"]
    limits: {requests_per_second: 1000000, burst: 1000000}
`)
	n := testing.AllocsPerRun(1000, func() {
		cl := c.ByKey(key)
		if cl == nil || !cl.MayUseUpstream("pay") || !cl.MayReach("eu.pay.example", 443) || cl.MayReach("evil.example", 443) {
			t.Fatal("wrong decision")
		}
		if basic := c.ByBasic("billing", key); basic != cl {
			t.Fatal("Basic credentials not accepted")
		}
		release, e := cl.Admit()
		if e != nil {
			t.Fatal(e)
		}
		release()
		release, e = cl.AdmitTunnel()
		if e != nil {
			t.Fatal(e)
		}
		release()
	})
	if n != 0 {
		t.Errorf("the policy check allocates %v times per request", n)
	}
}

// A reload keeps the budgets of a client whose limits did not change: an
// emptied rate bucket stays empty and requests in flight still count; a
// client with new limits starts afresh.
func TestInheritKeepsUnchangedBudgets(t *testing.T) {
	_, hashA := keys.New()
	_, hashB := keys.New()
	build := func(rpsB string) *Core {
		return compile(t, `
clients:
  - {name: a, key_sha256: `+hashA+`, hosts: [a.example], limits: {requests_per_second: 1, burst: 1, max_concurrent: 1}}
  - {name: b, key_sha256: `+hashB+`, hosts: [b.example], limits: {requests_per_second: `+rpsB+`, burst: 1}}
`)
	}
	old := build("1")
	release, e := old.byName["a"].Admit() // a's one token and one slot are in use
	if e != nil {
		t.Fatal(e)
	}
	if _, e := old.byName["b"].Admit(); e != nil {
		t.Fatal(e)
	}
	next := build("2") // b's rate changes, a's limits do not
	next.Inherit(old)
	if _, e := next.byName["a"].Admit(); e == nil || e.Code != "rate_limited" {
		t.Errorf("a after the reload: %v, want rate_limited (the bucket must not refill)", e)
	}
	if next.byName["a"].Requests.InUse() != 1 {
		t.Errorf("a's request in flight no longer counts after the reload")
	}
	release()
	if next.byName["a"].Requests.InUse() != 0 {
		t.Errorf("releasing on the old config does not free the slot on the new one")
	}
	if _, e := next.byName["b"].Admit(); e != nil {
		t.Errorf("b has new limits and must start with a full bucket: %v", e)
	}
}

// compile parses a config and builds its Core.
func compile(t *testing.T, yaml string) *Core {
	t.Helper()
	cfg, err := config.Parse([]byte(yaml), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(cfg, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
