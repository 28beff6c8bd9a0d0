package config

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/outgate/outgate/internal/testutil"
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
    forward_headers: [x-forwarded-for, X-API-KEY]
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
	if strings.Join(up.ForwardHeaders, ",") != "X-Forwarded-For,X-Api-Key" {
		t.Errorf("forward_headers = %q, want canonical names", up.ForwardHeaders)
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
	if r.AuthTimeout != 10*time.Second || r.WriteIdleTimeout != 30*time.Second || r.MaxConnectionsPerIP != 0 {
		t.Errorf("connection rules = %v, %v, %d; want the defaults 10s, 30s and 0 (derived from max_connections)", r.AuthTimeout, r.WriteIdleTimeout, r.MaxConnectionsPerIP)
	}
	if c.ProxyTLS.Enabled() {
		t.Error("proxy_tls is on without being configured")
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
		{"same listener twice", base("listen: 127.0.0.1:8080\nadmin_listen: 127.0.0.1:8080\n"), []string{`admin_listen: 127.0.0.1:8080 is already used by listen`}},
		{"admin on the shared listener", base("listen: 127.0.0.1:8080\nproxy_listen: 127.0.0.1:8080\nadmin_listen: 127.0.0.1:8080\n"), []string{`admin_listen: 127.0.0.1:8080 is already used by listen`}},
		{"shared listener, proxy_tls alone", base("listen: 127.0.0.1:8443\nproxy_listen: 127.0.0.1:8443\nproxy_tls: {cert_file: c.pem, key_file: k.pem}\n"), []string{
			`f.yaml:10:12: proxy_tls: proxy_listen is listen (one listener for relay and proxy), which serves tls's certificate`}},
		{"shared listener, another proxy_tls", base("listen: 127.0.0.1:8443\nproxy_listen: 127.0.0.1:8443\ntls: {cert_file: a.pem, key_file: a.key}\nproxy_tls: {cert_file: b.pem, key_file: b.key}\n"), []string{
			`proxy_tls: proxy_listen is listen`}},
		{"type mismatch", base("limits:\n  burst: many\n"), []string{`f.yaml:9:3: expected a number, got a string "many"`}},
		// The key over-indented on line 7 is reported there, at its text,
		// not at the start of the mapping it broke (7:1 before).
		{"over-indented key", "upstreams:\n  partner:\n    url: https://api.partner.example\nclients:\n  - name: billing\n    upstreams: [partner]\n      key_sha256: " + hashA + "\n",
			[]string{`f.yaml:7:7: this line's indentation does not line up with the keys above it`}},
		// The same key with room to be taken for a value's continuation.
		{"over-indented after a scalar", "upstreams:\n  partner:\n    url: https://api.partner.example\nclients:\n  - name: billing\n      key_sha256: " + hashA + "\n    upstreams: [partner]\n",
			[]string{`f.yaml:6:7: a key here is indented deeper than the key above it`}},
		{"under-indented url", "upstreams:\n  partner:\n  url: https://api.partner.example\nclients:\n  - name: billing\n    key_sha256: " + hashA + "\n    upstreams: [partner]\n",
			[]string{`f.yaml:3:8: upstreams.url: must be a mapping of keys`, `got the value "https://api.partner.example": is "url:" meant to be indented under the entry above it?`}},
		{"list where a mapping goes", base("limits: [1, 2]\n"), []string{`f.yaml:8:9: limits: must be a mapping of keys (key: value lines indented under it), got a list`}},
		{"tab", base("limits:\n\tburst: 1\n"), []string{`f.yaml:9:1: a tab: YAML indents with spaces only`}},
		{"two documents", base("---\nlisten: x\n"), []string{"only one YAML document"}},
		{"bad log level", base("log:\n  level: loud\n"), []string{`log.level: must be one of`}},
		{"limit range", base("limits:\n  burst: 0\n  requests_per_second: -1\n"), []string{`limits.burst: must be from 1`, `limits.requests_per_second: must be more than 0`}},
		{"connection rules", base("limits:\n  auth_timeout: 10\n  write_idle_timeout: 0s\n  max_connections_per_ip: 0\n"), []string{
			`limits.auth_timeout: "10" needs a unit`, `limits.write_idle_timeout: "0s" must be more than zero`,
			`f.yaml:11:27: limits.max_connections_per_ip: must be from 1 to 1000000`}},
		{"proxy_tls without proxy_listen", base("proxy_tls: {cert_file: c.pem, key_file: k.pem}\n"), []string{
			`proxy_tls: is for the proxy listener`, `proxy_tls.cert_file: cannot load`}},
		{"proxy_tls half", base("proxy_listen: 127.0.0.1:3128\nproxy_tls: {cert_file: c.pem}\n"), []string{`proxy_tls: cert_file and key_file go together`}},
		{"ca file missing", base("network:\n  ca_files: [nope.pem]\n"), []string{`network.ca_files[0]: cannot read`}},
		{"allow_cidrs halves of everything", base("network:\n  allow_cidrs: [0.0.0.0/1, 128.0.0.0/1]\n"), []string{
			`f.yaml:9:16: network.allow_cidrs: together these entries let through 3702258432 public IPv4`}},
		{"allow_cidrs quarters", base("network:\n  allow_cidrs: [0.0.0.0/2, 64.0.0.0/2, 128.0.0.0/2, 192.0.0.0/2]\n"), []string{`network.allow_cidrs: together`}},
		{"allow_cidrs IPv4 as IPv6", base("network:\n  allow_cidrs: [\"::ffff:0:0/96\"]\n"), []string{`network.allow_cidrs: together`}},
		{"allow_cidrs NAT64", base("network:\n  allow_cidrs: [\"64:ff9b::/96\"]\n"), []string{`network.allow_cidrs: together`}},
		{"allow_cidrs local-use NAT64", base("network:\n  allow_cidrs: [\"64:ff9b:1::/48\"]\n"), []string{`network.allow_cidrs: together`}},
		{"allow_cidrs IPv6 halves", base("network:\n  allow_cidrs: [\"::/1\", \"8000::/1\"]\n"), []string{`network.allow_cidrs: together`}},
		{"allow_cidrs two /8s", base("network:\n  allow_cidrs: [8.0.0.0/8, 9.0.0.0/8]\n"), []string{`network.allow_cidrs: together these entries let through 33554432 public IPv4`}},
		{"forward_headers", "upstreams:\n  p:\n    url: https://x.example\n    forward_headers: [X-Forwarded-For, x-forwarded-for, Authorization, Outgate-Key, \"Bad Name\", Connection, X_Forwarded_For]\n" +
			"clients:\n  - name: c\n    key_sha256: " + hashA + "\n    upstreams: [p]\n", []string{
			`f.yaml:4:40: upstreams.p.forward_headers[1]: X-Forwarded-For is listed twice`,
			`upstreams.p.forward_headers[2]: "Authorization" is forwarded anyway or never`,
			`upstreams.p.forward_headers[3]: "Outgate-Key" is forwarded anyway or never`,
			`upstreams.p.forward_headers[4]: "Bad Name" is not a header name`,
			`upstreams.p.forward_headers[5]: "Connection" is forwarded anyway or never`,
			`upstreams.p.forward_headers[6]: "X_Forwarded_For" has '_'`}},
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
			// Users write YAML, not Go: no Go type name in any message.
			if goType.MatchString(err.Error()) {
				t.Errorf("error names a Go type:\n%s", err)
			}
		})
	}
}

var goType = regexp.MustCompile(`\bconfig\.[A-Z]|\[\]string|map\[string\]|!!(str|int|map|seq)`)

// TestSharedListener: proxy_listen equal to listen is one listener for both
// (not "already used"), with tls's certificate, which proxy_tls may repeat;
// two ":0" addresses stay two listeners on two free ports.
func TestSharedListener(t *testing.T) {
	dir := t.TempDir()
	cert, key := testutil.SelfSigned(t, "gw.example")
	head := "clients:\n  - name: c\n    key_sha256: " + hashA + "\n    hosts: [a.example]\n"
	for _, tt := range []struct {
		extra  string
		shared bool
	}{
		{"listen: 127.0.0.1:8443\nproxy_listen: 127.0.0.1:8443\n", true},
		{"listen: 127.0.0.1:8443\nproxy_listen: 127.0.0.1:8443\ntls: {cert_file: " + cert + ", key_file: " + key + "}\n", true},
		{"listen: 127.0.0.1:8443\nproxy_listen: 127.0.0.1:8443\ntls: {cert_file: " + cert + ", key_file: " + key + "}\nproxy_tls: {cert_file: " + cert + ", key_file: " + key + "}\n", true},
		{"listen: 127.0.0.1:0\nproxy_listen: 127.0.0.1:0\n", false},
		{"listen: 127.0.0.1:8080\nproxy_listen: 127.0.0.1:3128\n", false},
	} {
		c, err := Parse([]byte(head+tt.extra), filepath.Join(dir, "f.yaml"))
		if err != nil {
			t.Errorf("%q: %v", tt.extra, err)
			continue
		}
		if c.SharedListener() != tt.shared {
			t.Errorf("%q: SharedListener = %v, want %v", tt.extra, c.SharedListener(), tt.shared)
		}
	}
}

// TestAllowCIDRsWithinBounds: private ranges of any size, and public ones up
// to a /8 in all (overlaps counted once), are fine.
func TestAllowCIDRsWithinBounds(t *testing.T) {
	for _, list := range []string{
		"[10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 100.64.0.0/10, fc00::/7]",
		"[8.0.0.0/8]",
		"[8.0.0.0/8, 8.8.0.0/16, 8.8.8.8/32]",
		"[\"2600::/8\"]",
	} {
		yaml := "clients:\n  - name: c\n    key_sha256: " + hashA + "\n    hosts: [a.example]\nnetwork:\n  allow_cidrs: " + list + "\n"
		if _, err := Parse([]byte(yaml), "f.yaml"); err != nil {
			t.Errorf("allow_cidrs %s: %v", list, err)
		}
	}
}

// TestWarnings: loopback and cloud metadata destinations are allowed (tests
// and local partners need them) but reported, at their place in the file.
func TestWarnings(t *testing.T) {
	yaml := `upstreams:
  meta: {url: "http://169.254.169.254/latest"}
  gcp: {url: "http://metadata.google.internal/computeMetadata/v1"}
  local: {url: "http://localhost:8080"}
  mapped: {url: "http://[::ffff:127.0.0.1]:8080"}
  fine: {url: "https://api.partner.example"}
clients:
  - name: c
    key_sha256: ` + hashA + `
    upstreams: [meta, gcp, local, mapped, fine]
    hosts: ["*.google.internal", "100.100.100.200", "[fd00:ec2::254]:80", "api.partner.example", "*.dev.localhost"]
network:
  allow_cidrs: [127.0.0.0/8, 169.254.0.0/16, 10.0.0.0/8]
`
	c, err := Parse([]byte(yaml), "f.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range c.Warnings {
		got = append(got, c.Warning(w))
	}
	want := []string{
		`f.yaml:2:15: warning: upstreams.meta.url: 169.254.169.254 is cloud metadata (AWS, GCP, Azure)`,
		`f.yaml:3:14: warning: upstreams.gcp.url: metadata.google.internal is cloud metadata (GCP)`,
		`f.yaml:4:16: warning: upstreams.local.url: localhost is loopback`,
		`f.yaml:5:17: warning: upstreams.mapped.url: ::ffff:127.0.0.1 is IPv4-mapped embedding 127.0.0.1 (loopback)`,
		`f.yaml:11:13: warning: clients[0].hosts[0]: *.google.internal:443 covers metadata.google.internal (cloud metadata (GCP))`,
		`f.yaml:11:34: warning: clients[0].hosts[1]: 100.100.100.200:443 covers 100.100.100.200 (cloud metadata (Alibaba))`,
		`f.yaml:11:53: warning: clients[0].hosts[2]: [fd00:ec2::254]:80 covers fd00:ec2::254 (cloud metadata (AWS IPv6))`,
		`f.yaml:11:98: warning: clients[0].hosts[4]: *.dev.localhost:443 covers a.dev.localhost (loopback)`,
		`f.yaml:13:17: warning: network.allow_cidrs[0]: 127.0.0.0/8 lets requests reach 127.0.0.0 (loopback)`,
		`f.yaml:13:30: warning: network.allow_cidrs[1]: 169.254.0.0/16 lets requests reach 169.254.169.254 (cloud metadata (AWS, GCP, Azure))`,
	}
	if len(got) != len(want) {
		t.Fatalf("warnings:\n%s\nwant %d", strings.Join(got, "\n"), len(want))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("warning %d:\n got %s\nwant %s...", i, got[i], want[i])
		}
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
	f.Add([]byte("network: {allow_cidrs: [0.0.0.0/1, \"::ffff:0:0/97\", \"2002:808::/33\", \"64:ff9b::/95\", 169.254.0.0/16]}\n"))
	f.Add([]byte("upstreams: {m: {url: \"http://[::ffff:169.254.169.254]\", forward_headers: [x-forwarded-for, via, \"\"]}}\nclients: [{name: a, key_sha256: " + hashA + ", upstreams: [m], hosts: [\"*.localhost\", \"*.goog\"]}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, err := Parse(data, "fuzz.yaml")
		if err != nil && !strings.HasPrefix(err.Error(), "fuzz.yaml") {
			t.Fatalf("error without source: %v", err)
		}
	})
}

func TestPerIPConns(t *testing.T) {
	for _, tc := range []struct{ max, want int }{{9456, 4728}, {384, 192}, {50, 25}, {1, 1}} {
		if got := PerIPConns(tc.max); got != tc.want {
			t.Errorf("PerIPConns(%d) = %d, want %d", tc.max, got, tc.want)
		}
	}
}
