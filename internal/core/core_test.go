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
	cfg, err := config.Parse([]byte(`
upstreams: {pay: {url: "https://api.partner.example"}}
clients:
  - name: billing
    key_sha256: `+hash+`
    upstreams: [pay]
    hosts: ["api.partner.example:443", "*.pay.example"]
    limits: {requests_per_second: 1000000, burst: 1000000}
`), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(cfg, Deps{})
	if err != nil {
		t.Fatal(err)
	}
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
