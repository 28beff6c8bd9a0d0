package secrets_test

import (
	"strings"
	"testing"

	"github.com/outgate/outgate/internal/secrets"
)

// FuzzParseTemplate: any operator input parses or fails without a panic,
// and what parses names only references that print back and parse again.
func FuzzParseTemplate(f *testing.F) {
	for _, s := range []string{"Basic ${secret:env:A}", "${secret:ssm:/a/b}x${secret:secretsmanager:n#k}", "${", "${secret:", "${secret:file:/x}}", "$${secret:env:A}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tm, err := secrets.ParseTemplate(s)
		if err != nil {
			return
		}
		for _, r := range tm.Refs() {
			again, err := secrets.ParseWhole(r.String())
			if err != nil || again != r {
				t.Fatalf("%q: reference %s does not parse back: %v", s, r, err)
			}
		}
		v := secrets.Values{}
		for _, r := range tm.Refs() {
			v[r] = ""
		}
		out, err := tm.Expand(v)
		if err != nil || strings.Contains(out, "${secret:") {
			t.Fatalf("%q expands to %q, %v", s, out, err)
		}
	})
}
