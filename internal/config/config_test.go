package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const hashA = "4114018d8cd26ba6803ca87c7af85acf158babbb93938fc8cfb37f2f63990429"
const hashB = "a3c024f01cccb3b63457d848b0d2f89c1f744a3d3e0e7e2ae3c4a7b19a2b4c5d"

const good = `
listen: 127.0.0.1:8080
proxy_listen: 127.0.0.1:3128
upstreams:
  partner:
    url: https://api.partner.example/v2/
    timeout: 5s
    allow_body_on: [DELETE]
clients:
  - name: billing
    key_sha256: ` + hashA + `
    upstreams: [partner]
    hosts: ["api.partner.example:443", "*.pay.example"]
    limits: {requests_per_second: 5, max_tunnels: 3}
  - name: sms
    key_sha256: [` + hashB + `]
    hosts: [sms.example:8443]
network:
  allow_cidrs: [127.0.0.0/8]
limits:
  max_body: 1MiB
  tunnel_idle_timeout: 1m
`

func TestParseGood(t *testing.T) {
	c, err := Parse([]byte(good), "good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	up := c.Upstreams["partner"]
	if up.Parsed.String() != "https://api.partner.example/v2" || up.HeaderTimeout != 5*time.Second {
		t.Errorf("upstream = %s, %v", up.Parsed, up.HeaderTimeout)
	}
	if !up.AllowsBodyOn("DELETE") || up.AllowsBodyOn("GET") {
		t.Errorf("allow_body_on = %v", up.AllowBodyOn)
	}
	r := c.Limits.Resolved
	if r.MaxBodyBytes != 1<<20 || r.TunnelIdleTimeout != time.Minute || r.DialTimeout != Defaults.DialTimeout {
		t.Errorf("limits = %+v", r)
	}
	billing := c.Client("billing")
	p := billing.Effective(r.PerClient)
	if p.RequestsPerSecond != 5 || p.MaxTunnels != 3 || p.Burst != Defaults.PerClient.Burst {
		t.Errorf("billing limits = %+v", p)
	}
	if len(billing.Patterns) != 2 || billing.Patterns[1].String() != "*.pay.example:443" {
		t.Errorf("patterns = %v", billing.Patterns)
	}
	if len(c.Client("sms").KeyHashes) != 1 || c.EgressCheckURL != DefaultEgressCheckURL {
		t.Errorf("sms = %+v, egress = %q", c.Client("sms"), c.EgressCheckURL)
	}
}

// TestParseErrors checks that each mistake is reported at its line and key.
func TestParseErrors(t *testing.T) {
	base := func(extra string) string {
		return "upstreams:\n  partner:\n    url: https://api.partner.example\n" +
			"clients:\n  - name: billing\n    key_sha256: " + hashA + "\n    upstreams: [partner]\n" + extra
	}
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{"empty", "", []string{"f.yaml: the file is empty"}},
		{"not a mapping", "- a\n- b\n", []string{"f.yaml:1:1: the config must be a mapping"}},
		{"syntax", "listen: [\n", []string{"f.yaml:"}},
		{"unknown top key", base("lisen: 1.2.3.4:5\n"), []string{`f.yaml:8:1: unknown key "lisen" (did you mean "listen"?)`}},
		{"unknown nested key", base("limits:\n  max_bodyy: 1MiB\n"), []string{`f.yaml:9:3: limits: unknown key "max_bodyy" (did you mean "max_body"?)`}},
		{"unknown client key", base("    keys: x\n"), []string{`f.yaml:8:5: clients[0]: unknown key "keys"`}},
		{"bad duration", base("limits:\n  dial_timeout: 10\n"), []string{`f.yaml:9:17: limits.dial_timeout: "10" needs a unit`}},
		{"bad duration word", base("limits:\n  idle_timeout: soon\n"), []string{`f.yaml:9:17: limits.idle_timeout: "soon" is not a duration`}},
		{"negative duration", base("limits:\n  idle_timeout: -1s\n"), []string{`limits.idle_timeout: "-1s" must be more than zero`}},
		{"bad size", base("limits:\n  max_body: 6 parsecs\n"), []string{`f.yaml:9:13: limits.max_body: "6 parsecs" has an unknown unit`}},
		{"zero connections", base("limits:\n  max_connections: 0\n"), []string{`f.yaml:9:20: limits.max_connections: must be from 1 to 1000000`}},
		{"zero size", base("limits:\n  max_body: 0\n"), []string{`limits.max_body: "0" must be more than zero`}},
		{"bad cidr", base("network:\n  allow_cidrs: [127.0.0.1/8, 10.0.0.1, nope, 0.0.0.0/0]\n"), []string{
			`f.yaml:9:17: network.allow_cidrs[0]: "127.0.0.1/8" has host bits set: did you mean 127.0.0.0/8?`,
			`network.allow_cidrs[1]: "10.0.0.1" is an address, not a CIDR: write 10.0.0.1/32`,
			`network.allow_cidrs[2]: "nope" is not a CIDR`,
			`network.allow_cidrs[3]: "0.0.0.0/0" would allow every address`}},
		{"duplicate client", base("  - name: billing\n    key_sha256: " + hashB + "\n    hosts: [a.example]\n"), []string{`f.yaml:8:11: clients[1].name: duplicate client name "billing" (also clients[0])`}},
		{"shared key", base("  - name: other\n    key_sha256: " + hashA + "\n    hosts: [a.example]\n"), []string{`clients[1].key_sha256: the same key hash is already used by client "billing"`}},
		{"no rights", base("  - name: idle\n    key_sha256: " + hashB + "\n"), []string{`f.yaml:8:5: clients[1]: client "idle" has no rights`}},
		{"unknown upstream", base("  - name: x\n    key_sha256: " + hashB + "\n    upstreams: [nope]\n"), []string{`f.yaml:10:17: clients[1].upstreams[0]: unknown upstream "nope"`}},
		{"key not hash", base("  - name: x\n    key_sha256: og_abc\n    hosts: [a.example]\n"), []string{`clients[1].key_sha256: this is a key, not its hash`}},
		{"short hash", base("  - name: x\n    key_sha256: abc\n    hosts: [a.example]\n"), []string{`clients[1].key_sha256: must be 64 hex digits`}},
		{"missing key", base("  - name: x\n    hosts: [a.example]\n"), []string{`clients[1].key_sha256: is required`}},
		{"bad host", base("  - name: x\n    key_sha256: " + hashB + "\n    hosts: [\"a.*.example\", \"h:99999\"]\n"), []string{
			`clients[1].hosts[0]: "a.*.example": only a leading`, `clients[1].hosts[1]: "h:99999"`}},
		{"bad client name", base("  - name: \"a:b\"\n    key_sha256: " + hashB + "\n    hosts: [a.example]\n"), []string{`clients[1].name: "a:b" must be`}},
		{"no clients", "upstreams: {}\n", []string{`f.yaml: clients: at least one client is required`}},
		{"bad upstream url", "upstreams:\n  p:\n    url: ftp://x\n  q:\n    url: /relative\n  r:\n    url: https://u:p@x.example\n  S:\n    url: https://x.example\n" +
			"clients:\n  - name: c\n    key_sha256: " + hashA + "\n    upstreams: [p]\n", []string{
			`f.yaml:3:10: upstreams.p.url: scheme must be https or http`,
			`f.yaml:5:10: upstreams.q.url: must be an absolute URL`,
			`f.yaml:7:10: upstreams.r.url: must not contain credentials`,
			`f.yaml:8:3: upstreams.S#key: upstream name "S"`}},
		{"bad allow_body_on", "upstreams:\n  p:\n    url: https://x.example\n    allow_body_on: [DELETE, POST, get, DELETE, TRACE]\n" +
			"clients:\n  - name: c\n    key_sha256: " + hashA + "\n    upstreams: [p]\n", []string{
			`f.yaml:4:29: upstreams.p.allow_body_on[1]: "POST": a request body can be allowed on GET, HEAD, OPTIONS, DELETE only`,
			`f.yaml:4:35: upstreams.p.allow_body_on[2]: "get"`,
			`f.yaml:4:40: upstreams.p.allow_body_on[3]: "DELETE" is listed twice`,
			`upstreams.p.allow_body_on[4]: "TRACE"`}},
		{"bad listen", base("listen: 8080\nproxy_listen: \"example.com:3128\"\n"), []string{
			`f.yaml:8:9: listen: must be host:port`, `f.yaml:9:15: proxy_listen: host must be an IP address`}},
		{"same listener twice", base("listen: 127.0.0.1:8080\nproxy_listen: 127.0.0.1:8080\n"), []string{`proxy_listen: 127.0.0.1:8080 is already used by listen`}},
		{"type mismatch", base("limits:\n  burst: many\n"), []string{`f.yaml:9:`, "cannot unmarshal"}},
		{"two documents", base("---\nlisten: x\n"), []string{"only one YAML document"}},
		{"bad log level", base("log:\n  level: loud\n"), []string{`log.level: must be one of`}},
		{"limit range", base("limits:\n  burst: 0\n  requests_per_second: -1\n"), []string{`limits.burst: must be from 1`, `limits.requests_per_second: must be more than 0`}},
		{"ca file missing", base("network:\n  ca_files: [nope.pem]\n"), []string{`network.ca_files[0]: cannot read`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml), "f.yaml")
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q:\n%s", w, err)
				}
			}
		})
	}
}

func TestLoadResolvesCAFilesNextToConfig(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ca.pem"), []byte("not pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := "clients:\n  - name: c\n    key_sha256: " + hashA + "\n    hosts: [a.example]\nnetwork:\n  ca_files: [ca.pem]\n"
	path := filepath.Join(dir, "outgate.yaml")
	os.WriteFile(path, []byte(cfg), 0o600)
	_, err := Load(path)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "ca.pem")+" has no PEM certificates") {
		t.Fatalf("err = %v, want the CA file found next to the config and rejected as not PEM", err)
	}
}

func TestSizes(t *testing.T) {
	for in, want := range map[string]int64{"1": 1, "6MiB": 6 << 20, "64 KiB": 64 << 10, "1MB": 1e6, "2gib": 2 << 30, "10B": 10} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "-1", "1.5MiB", "MiB", "99999999999999999999", "9999999999GiB"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) accepted", bad)
		}
	}
}

// FuzzParse: any input gives a config or an error, never a panic, and every
// problem carries the source name.
func FuzzParse(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte("listen: [\n"))
	f.Add([]byte("clients:\n  - &a {name: x}\n  - *a\n"))
	f.Add([]byte("limits: {max_body: 1GiB, burst: 3}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, err := Parse(data, "fuzz.yaml")
		if err != nil && !strings.HasPrefix(err.Error(), "fuzz.yaml") {
			t.Fatalf("error without source: %v", err)
		}
	})
}
