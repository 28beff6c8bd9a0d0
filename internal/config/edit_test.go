package config

import (
	"strings"
	"testing"
)

func TestAddAndRemoveKeyHash(t *testing.T) {
	src := "# payments gateway\nclients:\n  - name: billing # the billing service\n    key_sha256: " + hashA + "\n    hosts: [api.example]\n"
	out, err := AddKeyHash([]byte(src), "gw.yaml", "billing", hashB)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse(out, "gw.yaml")
	if err != nil || len(c.Client("billing").KeyHashes) != 2 {
		t.Fatalf("after add: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "# payments gateway") || !strings.Contains(string(out), "# the billing service") {
		t.Errorf("comments lost:\n%s", out)
	}
	out2, err := RemoveKeyHash(out, "gw.yaml", "billing", hashA)
	if err != nil {
		t.Fatal(err)
	}
	c, _ = Parse(out2, "gw.yaml")
	if len(c.Client("billing").KeyHashes) != 1 || !strings.Contains(string(out2), hashB) || strings.Contains(string(out2), hashA) {
		t.Errorf("after remove:\n%s", out2)
	}
	if _, err := RemoveKeyHash(out2, "gw.yaml", "billing", hashB); err == nil || !strings.Contains(err.Error(), "only this key") {
		t.Errorf("removing the last key: %v", err)
	}
	if _, err := AddKeyHash([]byte(src), "gw.yaml", "nobody", hashB); err == nil || !strings.Contains(err.Error(), `no client named "nobody"`) {
		t.Errorf("unknown client: %v", err)
	}
	if _, err := AddKeyHash([]byte(src), "gw.yaml", "billing", hashA); err == nil || !strings.Contains(err.Error(), "already used") {
		t.Errorf("a duplicate hash must fail validation: %v", err)
	}
}
