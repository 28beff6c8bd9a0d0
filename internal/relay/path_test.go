package relay

import (
	"strings"
	"testing"
)

func TestSplitPath(t *testing.T) {
	tests := []struct {
		in, name, rest string
		ok             bool
	}{
		{"/partner/v1/pay", "partner", "/v1/pay", true},
		{"/partner", "partner", "", true},
		{"/partner/", "partner", "/", true},
		{"/partner/a%2Fb/c", "partner", "/a%2Fb/c", true}, // encoded slash kept as sent
		{"/partner/a%20b", "partner", "/a%20b", true},
		{"/partner/..", "", "", false},
		{"/partner/a/../b", "", "", false},
		{"/partner/%2e%2e/admin", "", "", false},
		{"/partner/%2E/x", "", "", false},
		{"/partner/a%2F..%2Fadmin", "", "", false},
		{"/partner/a%5C..%5Cadmin", "", "", false},
		{"/partner/%zz", "", "", false},
		{"/", "", "", false},
		{"", "", "", false},
		{"//x", "", "", false},
		{"/p%61rtner/x", "", "", false},
		{"/partner/...", "partner", "/...", true}, // three dots is a name, not a dot segment
	}
	for _, tt := range tests {
		name, rest, err := SplitPath(tt.in)
		if (err == nil) != tt.ok || name != tt.name || rest != tt.rest {
			t.Errorf("SplitPath(%q) = %q, %q, %v; want %q, %q, ok=%v", tt.in, name, rest, err, tt.name, tt.rest, tt.ok)
		}
	}
}

func FuzzSplitPath(f *testing.F) {
	for _, s := range []string{"/partner/v1/pay?x", "/p/%2e%2e", "/p/a%2F..%2Fb", "/", "/_outgate/health"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		name, rest, err := SplitPath(s)
		if err != nil {
			return
		}
		if name == "" || strings.Contains(name, "/") || (rest != "" && rest[0] != '/') {
			t.Fatalf("SplitPath(%q) = %q, %q", s, name, rest)
		}
		for _, seg := range strings.Split(rest, "/") {
			if seg == "." || seg == ".." {
				t.Fatalf("SplitPath(%q) let a dot segment through: %q", s, rest)
			}
		}
	})
}
