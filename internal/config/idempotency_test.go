package config

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestIdempotencyDefaults(t *testing.T) {
	src := `
upstreams:
  bank: {url: "https://bank.example", idempotency: {}}
  sms:
    url: https://sms.example
    idempotency: {header: x-request-key, methods: [POST], ttl: 1h, required: true, max_stored_body: 1KiB}
  plain: {url: "https://plain.example"}
clients:
  - {name: a, key_sha256: ` + hashA + `, upstreams: [bank, sms, plain]}
`
	c, err := Parse([]byte(src), "/etc/outgate/outgate.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p := c.Upstreams["bank"].Idempotency.Policy
	if p.Header != "Idempotency-Key" || strings.Join(p.Methods, ",") != "POST,PUT,PATCH,DELETE" || p.TTL != 24*time.Hour || p.Required || p.MaxStoredBody != 256<<10 {
		t.Errorf("defaults = %+v", p)
	}
	p = c.Upstreams["sms"].Idempotency.Policy
	if p.Header != "X-Request-Key" || strings.Join(p.Methods, ",") != "POST" || p.TTL != time.Hour || !p.Required || p.MaxStoredBody != 1024 {
		t.Errorf("set = %+v", p)
	}
	if c.Upstreams["plain"].Idempotency != nil {
		t.Error("an upstream without idempotency got it")
	}
	if want := filepath.Join("/etc/outgate", DefaultIdempotencyFile); c.IdempotencyStore.Path != want || c.IdempotencyStore.MaxKeys != DefaultMaxKeysPerClient || c.IdempotencyStore.MaxBytes != 1<<30 {
		t.Errorf("store = %+v, want the file beside the config", c.IdempotencyStore)
	}
	if !c.UsesIdempotency() {
		t.Error("UsesIdempotency = false")
	}
}

func TestIdempotencyTTLOutlivesTheRequest(t *testing.T) {
	for ttl, want := range map[string]string{
		"30m": `o.yaml:5:24: upstreams.bank.idempotency.ttl: 30m0s is less than 1h`,
		"2h":  `o.yaml:5:24: upstreams.bank.idempotency.ttl: 2h0m0s does not outlive this upstream's timeout (1h30m0s) by an hour`,
	} {
		src := `upstreams:
  bank:
    url: https://bank.example
    timeout: 90m
    idempotency: {ttl: ` + ttl + `}
clients:
  - {name: a, key_sha256: ` + hashA + `, upstreams: [bank]}
`
		_, err := Parse([]byte(src), "o.yaml")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ttl %s: %v, want %s", ttl, err, want)
		}
	}
}

// The proxy, and the relay for an upstream without a timeout, wait for
// limits.response_header_timeout: a ttl must outlive that too, or a claim's
// lease (that wait plus five minutes) could end after its record expired.
func TestIdempotencyTTLOutlivesTheGlobalHeaderTimeout(t *testing.T) {
	for timeout, want := range map[string]string{
		"":            `o.yaml:5:24: upstreams.bank.idempotency.ttl: 2h0m0s does not outlive limits.response_header_timeout (1h30m0s) by 35 minutes`,
		"timeout: 5m": `o.yaml:5:24: upstreams.bank.idempotency.ttl: 2h0m0s does not outlive limits.response_header_timeout (1h30m0s) by 35 minutes`,
	} {
		src := `upstreams:
  bank:
    url: https://bank.example
    ` + timeout + `
    idempotency: {ttl: 2h}
limits: {response_header_timeout: 90m}
clients:
  - {name: a, key_sha256: ` + hashA + `, upstreams: [bank]}
`
		_, err := Parse([]byte(src), "o.yaml")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("with %q: %v, want %s", timeout, err, want)
		}
	}
	ok := `upstreams:
  bank: {url: https://bank.example, idempotency: {ttl: 2h}}
limits: {response_header_timeout: 85m}
clients:
  - {name: a, key_sha256: ` + hashA + `, upstreams: [bank]}
`
	if _, err := Parse([]byte(ok), "o.yaml"); err != nil {
		t.Errorf("ttl 2h past an 85m header timeout: %v", err)
	}
}

func TestIdempotencyErrors(t *testing.T) {
	src := `upstreams:
  bank:
    url: https://bank.example
    idempotency:
      header: Outgate-Key
      methods: [POST, GET, POST]
      ttl: 24
      max_stored_body: 7MiB
      requird: true
idempotency_store: {path: x.db, dynamodb_table: "t!", max_keys_per_client: 0, max_stored_bytes_per_client: lots}
clients:
  - {name: a, key_sha256: ` + hashA + `, upstreams: [bank]}
`
	_, err := Parse([]byte(src), "o.yaml")
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		`o.yaml:9:7: upstreams.bank.idempotency: unknown key "requird" (did you mean "required"?)`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
	src = strings.Replace(src, "      requird: true\n", "", 1)
	_, err = Parse([]byte(src), "o.yaml")
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		`o.yaml:5:15: upstreams.bank.idempotency.header: "Outgate-Key" is a header outgate removes`,
		`o.yaml:6:23: upstreams.bank.idempotency.methods[1]: "GET": idempotency keys cover POST, PUT, PATCH, DELETE`,
		`o.yaml:6:28: upstreams.bank.idempotency.methods[2]: "POST" is listed twice`,
		`o.yaml:7:12: upstreams.bank.idempotency.ttl: "24" needs a unit`,
		`o.yaml:8:24: upstreams.bank.idempotency.max_stored_body: at most 6MiB`,
		`o.yaml:9:20: idempotency_store: path (embedded store) and dynamodb_table are exclusive`,
		`o.yaml:9:49: idempotency_store.dynamodb_table: "t!" must be`,
		`o.yaml:9:76: idempotency_store.max_keys_per_client: must be from 1`,
		`o.yaml:9:108: idempotency_store.max_stored_bytes_per_client: "lots" is not a size`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
}
