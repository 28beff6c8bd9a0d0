package proxy

import (
	"encoding/base64"
	"testing"
)

func TestParseBasic(t *testing.T) {
	enc := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	tests := []struct {
		h, name, key string
		ok           bool
	}{
		{"Basic " + enc("billing:og_k"), "billing", "og_k", true},
		{"basic " + enc("billing:og_k"), "billing", "og_k", true},
		{"Basic " + enc("billing:og:k"), "billing", "og:k", true},
		{"Basic " + enc("billing:"), "", "", false},
		{"Basic " + enc(":og_k"), "", "", false},
		{"Basic " + enc("billing"), "", "", false},
		{"Bearer " + enc("billing:og_k"), "", "", false},
		{"Basic !!!", "", "", false},
		{"", "", "", false},
	}
	for _, tt := range tests {
		n, k, ok := ParseBasic(tt.h)
		if ok != tt.ok || n != tt.name || k != tt.key {
			t.Errorf("ParseBasic(%q) = %q, %q, %v", tt.h, n, k, ok)
		}
	}
}

func FuzzParseBasic(f *testing.F) {
	f.Add("Basic YmlsbGluZzpvZ19r")
	f.Add("basic Og==")
	f.Fuzz(func(t *testing.T, h string) {
		n, k, ok := ParseBasic(h)
		if ok && (n == "" || k == "") {
			t.Fatalf("accepted empty credentials from %q", h)
		}
	})
}
