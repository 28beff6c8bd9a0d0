package hostname

import (
	"strings"
	"testing"
)

func TestNormalize(t *testing.T) {
	tests := []struct {
		in, want string
		err      string
	}{
		{"api.partner.example", "api.partner.example", ""},
		{"API.Partner.Example.", "api.partner.example", ""},
		{"bücher.example", "xn--bcher-kva.example", ""},
		{"аpple.com", "xn--pple-43d.com", ""}, // Cyrillic а: a different name, not apple.com
		{"127.0.0.1", "127.0.0.1", ""},
		{"2001:DB8::1", "2001:db8::1", ""},
		{"::ffff:127.0.0.1", "::ffff:127.0.0.1", ""},
		{"", "", "empty"},
		{"fe80::1%eth0", "", "zone"},
		{"user@api.example", "", "contains"},
		{"api.example/x", "", "contains"},
		{"api example", "", "contains"},
		{"a..b", "", "label"},
		{"2130706433", "", "non-standard"},
		{"0177.0.0.1", "", "non-standard"},
		{"127.1", "", "non-standard"},
		{"0x7f.0.0.1", "", "non-standard"},
		{"0x7f000001", "", "non-standard"},
		{"1.2.3.0x10", "", "non-standard"},
		{strings.Repeat("a", 64) + ".example", "", ""},
	}
	for _, tt := range tests {
		got, err := Normalize(tt.in)
		if tt.err != "" || tt.want == "" {
			if err == nil {
				t.Errorf("Normalize(%q) = %q, want an error", tt.in, got)
			} else if !strings.Contains(err.Error(), tt.err) {
				t.Errorf("Normalize(%q) error %q, want it to mention %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Normalize(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestPatterns(t *testing.T) {
	tests := []struct {
		pattern string
		host    string
		port    uint16
		match   bool
	}{
		{"api.partner.example", "api.partner.example", 443, true},
		{"api.partner.example", "api.partner.example", 80, false},
		{"api.partner.example:8443", "api.partner.example", 8443, true},
		{"API.Partner.Example.", "api.partner.example", 443, true},
		{"*.pay.example", "a.pay.example", 443, true},
		{"*.pay.example", "a.b.pay.example", 443, true},
		{"*.pay.example", "pay.example", 443, false},
		{"*.pay.example", "evilpay.example", 443, false},
		{"*.pay.example", "pay.example.evil", 443, false},
		{"203.0.113.7:8443", "203.0.113.7", 8443, true},
		{"[2001:db8::1]:443", "2001:db8::1", 443, true},
		{"[2001:db8::1]", "2001:db8::1", 443, true},
		{"bücher.example", "xn--bcher-kva.example", 443, true},
	}
	for _, tt := range tests {
		p, err := ParsePattern(tt.pattern)
		if err != nil {
			t.Fatalf("ParsePattern(%q): %v", tt.pattern, err)
		}
		if got := p.Match(tt.host, tt.port); got != tt.match {
			t.Errorf("%q.Match(%s, %d) = %v, want %v", tt.pattern, tt.host, tt.port, got, tt.match)
		}
	}
	for _, bad := range []string{"", "*", "*.com", "a.*.example", "api.example:0", "api.example:65536", "api.example:http", "*.203.0.113.7", "2001:db8::1", "user@host:443", "api.example:080"} {
		if p, err := ParsePattern(bad); err == nil {
			t.Errorf("ParsePattern(%q) = %+v, want an error", bad, p)
		}
	}
}

func TestSplitTarget(t *testing.T) {
	tests := []struct {
		in   string
		def  uint16
		host string
		port uint16
		ok   bool
	}{
		{"api.example:443", 0, "api.example", 443, true},
		{"API.example.:8443", 0, "api.example", 8443, true},
		{"[::1]:443", 0, "::1", 443, true},
		{"api.example", 0, "", 0, false},
		{"api.example", 443, "api.example", 443, true},
		{"api.example:", 0, "", 0, false},
		{"api.example:-1", 0, "", 0, false},
		{"[fe80::1%25eth0]:443", 0, "", 0, false},
		{"a@b:443", 0, "", 0, false},
	}
	for _, tt := range tests {
		h, p, err := SplitTarget(tt.in, tt.def)
		if (err == nil) != tt.ok || h != tt.host || p != tt.port {
			t.Errorf("SplitTarget(%q, %d) = %q, %d, %v; want %q, %d, ok=%v", tt.in, tt.def, h, p, err, tt.host, tt.port, tt.ok)
		}
	}
}

// FuzzSplitTarget checks that parsing never panics and that whatever it
// accepts is canonical: parsing the joined result gives the same answer.
func FuzzSplitTarget(f *testing.F) {
	for _, s := range []string{"api.example:443", "[::1]:80", "bücher.example:1", "0x7f.1:80", "a..b:1", "[::ffff:1.2.3.4]:443", "*.x.y:443"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, p, err := SplitTarget(s, 0)
		if err != nil {
			return
		}
		h2, p2, err := SplitTarget(JoinTarget(h, p), 0)
		if err != nil || h2 != h || p2 != p {
			t.Fatalf("%q -> %q:%d, which re-parses to %q:%d, %v", s, h, p, h2, p2, err)
		}
		if n, err := Normalize(h); err != nil || n != h {
			t.Fatalf("normalized host %q is not stable: %q, %v", h, n, err)
		}
	})
}
