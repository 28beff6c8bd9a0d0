package relay

import (
	"net/url"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
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
		{"/partner/...", "partner", "/...", true},                 // three dots is a name, not a dot segment
		{"/partner/v1/a;b=1/c", "partner", "/v1/a;b=1/c", true},   // path parameters on names are fine
		{"/partner/..x;y", "partner", "/..x;y", true},             // a name starting with dots
		{"/partner/100%25", "partner", "/100%25", true},           // an encoded percent sign, once
		{"/partner/caf%C3%A9", "partner", "/caf%C3%A9", true},     // UTF-8
		{"/partner/%C0x", "partner", "/%C0x", true},               // Latin-1 capital A grave
		{"/partner/a%2C.b/%7E.", "partner", "/a%2C.b/%7E.", true}, // dots inside names
	}
	for _, tt := range tests {
		name, rest, err := SplitPath(tt.in)
		if (err == nil) != tt.ok || name != tt.name || rest != tt.rest {
			t.Errorf("SplitPath(%q) = %q, %q, %v; want %q, %q, ok=%v", tt.in, name, rest, err, tt.name, tt.rest, tt.ok)
		}
	}
}

// TestSplitPathRefusesDotSegmentsInAnySpelling: every spelling here is a
// "." or ".." to some server a partner may run, so each would climb out of
// the upstream's base path. Tomcat drops ";params" from each segment before
// resolving dots (so "..;" is ".."), IIS and some Tomcat and Spring set-ups
// treat '\' as '/', servers behind a decoding proxy decode twice, and old
// Tomcat and IIS decoders took overlong UTF-8 (%c0%ae) for '.'.
func TestSplitPathRefusesDotSegmentsInAnySpelling(t *testing.T) {
	for _, seg := range []string{
		// path parameters, plain and encoded
		"..;", "..;x=1", ".;", ".;x", "..;/", "..%3b", "..%3B", "..%3bjsessionid=1", ".%3B",
		"%2e%2e;", "%2E%2E%3B", ".%2e;x", "%2e.;x", "%2e;", "..;%2f", "..%3b%2f",
		// backslash and its encodings
		`..\`, `a\..\b`, "..%5c", "..%5C", "a%5c..", "%5c..%5c",
		// double and triple encoding of dots, semicolons and separators
		"%252e%252e", "%252E%252E", ".%252e", "%25252e%25252e", "..%253b", "a%252f..", "a%255c..",
		"%2525252e%2525252e",
		// where a server that parses again would end the path
		"..%3f", "..%3Fx=1", "..%23", "..%00", "..%00.jpg",
		// spaces a server may trim
		"..%20", "%20..", "..%09",
		// overlong UTF-8 for '.', '/' and '\'
		"%c0%ae%c0%ae", "%C0%AE", "a%c0%af..", "%e0%80%ae%e0%80%ae", "%f0%80%80%ae",
		// what Unicode normalisation (NFKC) turns into dots, slashes or ';'
		"%EF%BC%8E%EF%BC%8E", "%E2%80%A5", "%E2%80%A4", "%EF%B9%92.", "..%EF%BC%9B", "a%EF%BC%8F..", "a%EF%BC%BC..",
		"%EF%BC%852e%EF%BC%852e",
		// ... and into '?', '#' (where a server parsing again ends the path)
		// or a space (which it may trim)
		"..%EF%BC%9Fx=1", "..%EF%BC%83", "..%EF%B9%96", "..%EF%B9%9F", "..%EF%B8%96", "..%E2%81%87",
		"..%E3%80%80", "..%C2%A0", "%E2%80%89..",
	} {
		for _, path := range []string{"/p/" + seg, "/p/" + seg + "/admin", "/p/v1/" + seg + "/x"} {
			if name, rest, err := SplitPath(path); err == nil {
				t.Errorf("SplitPath(%q) = %q, %q: a dot segment got through", path, name, rest)
			}
		}
	}
}

// TestSplitPathBoundsDecoding: a segment encoded more times over than any
// honest client does is refused rather than decoded round after round.
func TestSplitPathBoundsDecoding(t *testing.T) {
	deep := "/p/%25252525" + strings.Repeat("25", 100) + "41"
	if _, _, err := SplitPath(deep); err == nil {
		t.Errorf("SplitPath(%q) accepted a segment encoded %d times over", deep, 100)
	}
	if _, _, err := SplitPath("/p/%252541"); err != nil {
		t.Errorf("a triple-encoded 'A' was refused: %v", err)
	}
}

func FuzzSplitPath(f *testing.F) {
	for _, s := range []string{"/partner/v1/pay?x", "/p/%2e%2e", "/p/a%2F..%2Fb", "/", "/_outgate/health",
		"/p/..;/admin", "/p/.;/..;x=1/a", "/p/.%2e%3bx", "/p/%252e%252e", "/p/..%5cadmin", "/p/%c0%ae%c0%ae", "/p/a;b/c"} {
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
		// What Tomcat would resolve: decode once, drop ";params" per
		// segment, '\' as a separator. No dot segment may be left.
		for _, seg := range strings.Split(rest, "/") {
			dec, err := url.PathUnescape(seg)
			if err != nil {
				t.Fatalf("SplitPath(%q) accepted a malformed escape in %q", s, seg)
			}
			for _, part := range strings.FieldsFunc(dec, func(r rune) bool { return r == '/' || r == '\\' }) {
				part, _, _ = strings.Cut(part, ";")
				if part == "." || part == ".." {
					t.Fatalf("SplitPath(%q) let a dot segment through: %q", s, rest)
				}
			}
		}
	})
}

// TestCompatCoversNFKC: compat holds every character whose NFKC form is
// made only of what isDotSegment splits, cuts or trims at (and '%', which
// starts another round of decoding), mapped to that form. A character
// missing here would be a dot segment's look-alike that gets through.
func TestCompatCoversNFKC(t *testing.T) {
	for r := rune(0x80); r <= unicode.MaxRune; r++ {
		if !utf8.ValidRune(r) {
			continue
		}
		s := string(r)
		n := norm.NFKC.String(s)
		if n == s || strings.Trim(n, `./\;%?# `) != "" {
			continue
		}
		if len(n) >= 3 && strings.Trim(n, ".") == "" {
			continue // "...": a name, not a dot segment
		}
		if got := compat.Replace(s); got != n {
			t.Errorf("U+%04X: compat gives %q, NFKC %q", r, got, n)
		}
	}
}
