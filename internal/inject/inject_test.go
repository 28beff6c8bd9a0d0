package inject_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/outgate/outgate/internal/config"
	"github.com/outgate/outgate/internal/inject"
	"github.com/outgate/outgate/internal/secrets"
	"github.com/outgate/outgate/internal/testutil"
)

const hash = "4114018d8cd26ba6803ca87c7af85acf158babbb93938fc8cfb37f2f63990429"

func load(t *testing.T, upstream string) (*inject.Creds, error) {
	t.Helper()
	cfg, err := config.Parse([]byte(fmt.Sprintf("upstreams:\n  pay:\n%s\nclients: [{name: c, key_sha256: %s, upstreams: [pay]}]\n", upstream, hash)), "f.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return inject.Load(context.Background(), cfg, secrets.Sources{}, nil, nil)
}

// TestLoadRefusesUnusableValues: a value no header can carry (a line break
// would split the request) or a certificate that does not match its key
// fails the load, naming the references and showing no value.
func TestLoadRefusesUnusableValues(t *testing.T) {
	t.Setenv("OUTGATE_T_CRLF", "abc\r\nX-Evil: SECRETPART")
	t.Setenv("OUTGATE_T_SPACE", " SECRETPAD ")
	_, err := load(t, `    url: https://api.pay.example
    inject_headers: {X-Api-Key: "${secret:env:OUTGATE_T_CRLF}", X-Token: "t ${secret:env:OUTGATE_T_SPACE}"}`)
	if err == nil || !strings.Contains(err.Error(), "inject_headers.X-Api-Key: a value from ${secret:env:OUTGATE_T_CRLF} has a line break") ||
		!strings.Contains(err.Error(), "${secret:env:OUTGATE_T_SPACE}") || strings.Contains(err.Error(), "SECRET") {
		t.Errorf("load: %v", err)
	}

	ca := testutil.NewClientCA(t)
	cert1, _ := ca.Issue(t, "one")
	_, key2 := ca.Issue(t, "two")
	t.Setenv("OUTGATE_T_CERT", cert1)
	t.Setenv("OUTGATE_T_KEY", key2)
	_, err = load(t, `    url: https://api.pay.example
    client_cert: "${secret:env:OUTGATE_T_CERT}"
    client_key: "${secret:env:OUTGATE_T_KEY}"`)
	if err == nil || !strings.Contains(err.Error(), "client_cert ${secret:env:OUTGATE_T_CERT} and client_key ${secret:env:OUTGATE_T_KEY} are not a PEM certificate and its private key") || strings.Contains(err.Error(), "PRIVATE KEY-") {
		t.Errorf("mismatched pair: %v", err)
	}
}

// TestApplyReplacesEverySpelling: the client's copies go in any case and
// with '_' for '-'; other headers stay.
func TestApplyReplacesEverySpelling(t *testing.T) {
	t.Setenv("OUTGATE_T_KEY", "k1")
	creds, err := load(t, `    url: https://api.pay.example
    inject_headers: {X-Api-Key: "${secret:env:OUTGATE_T_KEY}"}`)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{"X-Api-Key": {"a"}, "x-api-key": {"b"}, "X_API_KEY": {"c"}, "x_Api-key": {"d"}, "X-Api-Keys": {"e"}}
	creds.For("pay").Apply(h)
	if len(h) != 2 || h["X-Api-Key"][0] != "k1" || len(h["X-Api-Key"]) != 1 || h["X-Api-Keys"][0] != "e" {
		t.Errorf("after Apply: %v", h)
	}
	if creds.For("nope") != nil {
		t.Error("an upstream without secrets got credentials")
	}
}

// TestCertFollowsRefresh: after the secrets refresh with a new certificate,
// Cert returns it under a new ID in the same slot (so egress replaces the
// upstream's connections), and the same ID while nothing changed.
func TestCertFollowsRefresh(t *testing.T) {
	ca := testutil.NewClientCA(t)
	cert, key := ca.Issue(t, "one")
	t.Setenv("OUTGATE_T_CERT", cert)
	t.Setenv("OUTGATE_T_KEY", key)
	creds, err := load(t, `    url: https://api.pay.example
    client_cert: "${secret:env:OUTGATE_T_CERT}"
    client_key: "${secret:env:OUTGATE_T_KEY}"`)
	if err != nil {
		t.Fatal(err)
	}
	up := creds.For("pay")
	first := up.Cert()
	if first == nil || first.Slot != "pay" || !strings.HasPrefix(first.ID, "pay/") || up.Cert() != first {
		t.Fatalf("cert %+v", first)
	}
	if err := creds.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if again := up.Cert(); again.ID != first.ID {
		t.Errorf("the same certificate got a new ID: %s, %s", first.ID, again.ID)
	}
	cert, key = ca.Issue(t, "two")
	t.Setenv("OUTGATE_T_CERT", cert)
	t.Setenv("OUTGATE_T_KEY", key)
	if err := creds.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if next := up.Cert(); next.ID == first.ID || next.Slot != "pay" || next.Cert.Leaf == nil && len(next.Cert.Certificate) == 0 {
		t.Errorf("after rotation: %+v (was %s)", next, first.ID)
	}
}

// TestRefreshRacesRequests: requests applying the credentials while the
// secrets refresh (run with -race) each get one consistent generation of
// values, never a header built from two, and a certificate whose ID
// matches the generation it was built from; a refresh that fails in the
// middle leaves the last good generation in use.
func TestRefreshRacesRequests(t *testing.T) {
	ca := testutil.NewClientCA(t)
	type gen struct{ a, b, cert, key string }
	gens := make([]gen, 4)
	for i := range gens {
		c, k := ca.Issue(t, fmt.Sprintf("gen-%d", i))
		gens[i] = gen{fmt.Sprintf("user%d", i), fmt.Sprintf("pass%d", i), c, k}
	}
	var mu sync.Mutex
	cur, broken := 0, false
	src := secrets.Sources{LookupEnv: func(name string) (string, bool) {
		mu.Lock()
		defer mu.Unlock()
		if broken {
			return "", false
		}
		g := gens[cur]
		return map[string]string{"A": g.a, "B": g.b, "CERT": g.cert, "KEY": g.key}[name], true
	}}
	cfg, err := config.Parse([]byte(fmt.Sprintf(`upstreams:
  pay:
    url: https://api.pay.example
    inject_headers: {Authorization: "Basic ${secret:env:A}:${secret:env:B}"}
    client_cert: "${secret:env:CERT}"
    client_key: "${secret:env:KEY}"
clients: [{name: c, key_sha256: %s, upstreams: [pay]}]
`, hash)), "f.yaml")
	if err != nil {
		t.Fatal(err)
	}
	creds, err := inject.Load(context.Background(), cfg, src, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	up := creds.For("pay")
	valid := map[string]bool{}
	for i := range gens {
		valid[fmt.Sprintf("Basic user%d:pass%d", i, i)] = true
	}
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	stop := make(chan struct{})
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100000; i++ { // bounded; ends at stop
				select {
				case <-stop:
					return
				default:
				}
				h := http.Header{"Authorization": {"Bearer client"}}
				up.Apply(h)
				if v := h["Authorization"]; len(v) != 1 || !valid[v[0]] {
					select {
					case errs <- fmt.Sprintf("Authorization %q", v):
					default:
					}
				}
				if c := up.Cert(); c == nil || c.Cert == nil || !strings.HasPrefix(c.ID, "pay/") {
					select {
					case errs <- fmt.Sprintf("cert %+v", c):
					default:
					}
				}
			}
		}()
	}
	ids := map[string]bool{up.Cert().ID: true}
	for round := 1; round < 40; round++ {
		mu.Lock()
		cur, broken = round%len(gens), round%5 == 0
		mu.Unlock()
		err := creds.Refresh(context.Background())
		if broken != (err != nil) {
			t.Errorf("round %d: broken %v, refresh error %v", round, broken, err)
		}
		ids[up.Cert().ID] = true
	}
	close(stop)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if len(ids) != len(gens) {
		t.Errorf("%d certificate IDs for %d certificates", len(ids), len(gens))
	}
	// A refresh that fails keeps the last good generation (round 39's).
	mu.Lock()
	broken = true
	mu.Unlock()
	if creds.Refresh(context.Background()) == nil {
		t.Fatal("a refresh without values succeeded")
	}
	h := http.Header{}
	up.Apply(h)
	if want := fmt.Sprintf("Basic user%d:pass%d", 39%len(gens), 39%len(gens)); h.Get("Authorization") != want {
		t.Errorf("after a failed refresh: %q, want %q", h.Get("Authorization"), want)
	}
}
