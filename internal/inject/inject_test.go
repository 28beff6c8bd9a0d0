package inject_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
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
