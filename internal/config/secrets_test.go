package config

import (
	"strings"
	"testing"
	"time"
)

func TestPartnerSecretsParse(t *testing.T) {
	y := `upstreams:
  pay:
    url: https://api.pay.example/v1
    inject_headers:
      authorization: "Basic ${secret:ssm:/outgate/pay/basic}"
      X-Api-Key: "${secret:secretsmanager:pay/keys#api_key}"
    client_cert: "${secret:file:/etc/outgate/pay.crt}"
    client_key: "${secret:env:PAY_KEY}"
clients:
  - name: c
    key_sha256: ` + hashA + `
    upstreams: [pay]
secrets:
  ttl: 2m
`
	c, err := Parse([]byte(y), "f.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p := c.Upstreams["pay"].Partner
	if strings.Join(p.Names(), ",") != "Authorization,X-Api-Key" || p.Cert.Name != "/etc/outgate/pay.crt" || p.Key.Source != "env" {
		t.Errorf("partner secrets = %+v", p)
	}
	var refs []string
	for _, r := range c.SecretRefs() {
		refs = append(refs, r.String())
	}
	if got := strings.Join(refs, " "); got != "${secret:ssm:/outgate/pay/basic} ${secret:secretsmanager:pay/keys#api_key} ${secret:file:/etc/outgate/pay.crt} ${secret:env:PAY_KEY}" {
		t.Errorf("SecretRefs = %s", got)
	}
	if c.Secrets.ResolvedTTL != 2*time.Minute {
		t.Errorf("ttl = %v", c.Secrets.ResolvedTTL)
	}
	c, err = Parse([]byte("clients: [{name: a, key_sha256: "+hashA+", hosts: [a.example]}]\n"), "f.yaml")
	if err != nil || c.Secrets.ResolvedTTL != 5*time.Minute || len(c.SecretRefs()) != 0 {
		t.Errorf("defaults: %v, %v", c, err)
	}
}

func TestPartnerSecretsErrors(t *testing.T) {
	y := `upstreams:
  pay:
    url: http://api.pay.example/v1
    forward_headers: [X-Api-Key]
    inject_headers:
      X_Token: "${secret:env:A}"
      Host: "${secret:env:A}"
      Outgate-Key: "${secret:env:A}"
      X-Api-Key: "${secret:env:A}"
      X-Fixed: "literal"
      X-Typo: "${env:A}"
      X-Src: "${secret:vault:a}"
    client_cert: "${secret:file:/c.pem}"
    client_key: "/k.pem"
  other:
    url: https://x.example
    client_cert: "${secret:file:/c.pem}"
clients:
  - name: c
    key_sha256: ` + hashA + `
    upstreams: [pay, other]
secrets:
  ttl: 1s
`
	_, err := Parse([]byte(y), "f.yaml")
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{
		`f.yaml:6:7: upstreams.pay.inject_headers.X_Token#key: "X_Token" has '_'`,
		`f.yaml:7:7: upstreams.pay.inject_headers.Host#key: Host cannot be injected`,
		`f.yaml:8:7: upstreams.pay.inject_headers.Outgate-Key#key: Outgate-Key cannot be injected`,
		`f.yaml:9:7: upstreams.pay.inject_headers.X-Api-Key#key: X-Api-Key is also in forward_headers`,
		`f.yaml:10:16: upstreams.pay.inject_headers.X-Fixed: has no ${secret:...} reference`,
		`f.yaml:11:15: upstreams.pay.inject_headers.X-Typo: "${env:A}": only ${secret:SOURCE:NAME}`,
		`f.yaml:12:14: upstreams.pay.inject_headers.X-Src: ${secret:vault:...}: unknown source`,
		`f.yaml:13:18: upstreams.pay.client_cert: a client certificate needs an https:// url`,
		`f.yaml:14:17: upstreams.pay.client_key: must be one ${secret:SOURCE:NAME} reference`,
		`f.yaml:16:5: upstreams.other: client_cert and client_key go together`,
		`f.yaml:23:8: secrets.ttl: must be between 10s and 24h`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
}

// TestInjectHeadersOverPlainHTTPWarns: inject_headers on an http:// url
// send the partner's credentials in clear text over the network; the
// config stays valid (a partner may have no https), with a warning at the
// key. A loopback partner has no network in between.
func TestInjectHeadersOverPlainHTTPWarns(t *testing.T) {
	y := `upstreams:
  plain:
    url: http://api.pay.example/v1
    inject_headers: {X-Api-Key: "${secret:env:K}"}
  local:
    url: http://127.0.0.1:8080
    inject_headers: {X-Api-Key: "${secret:env:K}"}
  tls:
    url: https://api.pay.example/v1
    inject_headers: {X-Api-Key: "${secret:env:K}"}
clients:
  - {name: c, key_sha256: ` + hashA + `, upstreams: [plain, local, tls]}
network: {allow_cidrs: [127.0.0.0/8]}
`
	c, err := Parse([]byte(y), "f.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range c.Warnings {
		if strings.Contains(w.Msg, "unencrypted") {
			got = append(got, c.Warning(w))
		}
	}
	want := "f.yaml:4:21: warning: upstreams.plain.inject_headers: the url is http://"
	if len(got) != 1 || !strings.HasPrefix(got[0], want) {
		t.Errorf("warnings %q, want one starting %q", got, want)
	}
}
