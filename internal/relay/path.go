package relay

import (
	"errors"
	"net/url"
	"strings"
)

// SplitPath splits an escaped request path "/{upstream}/{rest}" into the
// upstream name and the escaped rest ("" or "/..."). A segment that any
// common server could resolve as "." or ".." is refused (see dotSegment): it
// would let a request climb out of the upstream's base path once the
// partner's server resolves it.
func SplitPath(escaped string) (name, rest string, err error) {
	if !strings.HasPrefix(escaped, "/") {
		return "", "", errors.New("the path must start with /{upstream}/")
	}
	p := escaped[1:]
	name, rest, _ = strings.Cut(p, "/")
	if rest != "" || strings.HasSuffix(p, "/") {
		rest = "/" + rest
	}
	if name == "" {
		return "", "", errors.New("the path must start with /{upstream}/")
	}
	if n, err := url.PathUnescape(name); err != nil || n != name {
		return "", "", errors.New("the upstream name must not be percent-encoded")
	}
	for _, seg := range strings.Split(rest, "/") {
		if _, err := url.PathUnescape(seg); err != nil {
			return "", "", errors.New("the path has a malformed percent-encoding")
		}
		if err := checkSegment(seg); err != nil {
			return "", "", err
		}
	}
	return name, rest, nil
}

// maxDecodes is how many rounds of percent-decoding a segment is checked
// through: partners that decode twice (or a proxy in front that decodes
// once more) exist; a segment that still decodes after that is refused, as
// no client needs it and checking every round would cost quadratic time.
const maxDecodes = 3

var (
	errDotSegment  = errors.New("the path must not contain . or .. segments (in any spelling)")
	errOverEncoded = errors.New("the path is percent-encoded too many times over")
	errOverlong    = errors.New("the path has an overlong UTF-8 encoding")
)

// checkSegment refuses one escaped segment of the rest if some server could
// read it as a dot segment. It looks at the segment as sent and after each
// round of percent-decoding (so %2e, %252e, %25252e are all dots), and in
// each form:
//   - splits again on '/' and '\' (an encoded slash, and a backslash, which
//     IIS and some Tomcat and Spring set-ups treat as a separator);
//   - cuts each piece at ';' (a path parameter: Tomcat and Jetty drop
//     "..;x=1" down to ".."), and at '?', '#' and NUL, where a server that
//     decodes and parses again would end the path;
//   - trims spaces and tabs (Spring trims path tokens);
//   - folds the compatibility characters that NFKC turns into '.', '/',
//     '\', ';' or '%' (fullwidth and small forms, the dot leaders), which
//     servers that normalise Unicode would turn into the real thing.
//
// A piece left as "." or ".." is refused. So are overlong UTF-8 sequences
// (%c0%ae was a '.' to old Tomcat and IIS decoders): valid UTF-8 never has
// them, so no honest path does either.
func checkSegment(seg string) error {
	s := seg
	for round := 0; ; round++ {
		if !isASCII(s) {
			// Every compat key is non-ASCII: an ASCII segment (nearly
			// all of them) has nothing to fold, and Replace allocates.
			s = compat.Replace(s)
		}
		if isDotSegment(s) {
			return errDotSegment
		}
		if hasOverlong(s) {
			return errOverlong
		}
		dec := lenientUnescape(s)
		if dec == s {
			return nil
		}
		if round == maxDecodes {
			return errOverEncoded
		}
		s = dec
	}
}

// compat maps the characters whose NFKC form is '.', "..", '/', '\', ';',
// '%', '?', '#' or a space to that form: every character whose NFKC form is
// made of those alone, so each character isDotSegment cuts or trims at has
// its look-alikes here too. "..." forms (U+2026, U+FE19) stay: three dots
// are a name, not a segment.
var compat = strings.NewReplacer(
	"\u2024", ".", "\u2025", "..", "\uFE30", "..", "\uFE52", ".", "\uFF0E", ".",
	"\uFF0F", "/", "\uFE68", `\`, "\uFF3C", `\`,
	"\u037E", ";", "\uFE14", ";", "\uFE54", ";", "\uFF1B", ";",
	"\uFE6A", "%", "\uFF05", "%",
	"\u2047", "??", "\uFE16", "?", "\uFE56", "?", "\uFF1F", "?",
	"\uFE5F", "#", "\uFF03", "#",
	"\u00A0", " ", "\u2000", " ", "\u2001", " ", "\u2002", " ", "\u2003", " ", "\u2004", " ",
	"\u2005", " ", "\u2006", " ", "\u2007", " ", "\u2008", " ", "\u2009", " ", "\u200A", " ",
	"\u202F", " ", "\u205F", " ", "\u3000", " ",
)

func isDotSegment(s string) bool {
	// Each piece between '/' or '\\' (split by hand: this runs for every
	// segment of every relay request, and FieldsFunc allocates).
	for len(s) > 0 {
		piece := s
		if i := strings.IndexAny(s, `/\`); i >= 0 {
			piece, s = s[:i], s[i+1:]
		} else {
			s = ""
		}
		if i := strings.IndexAny(piece, ";?#\x00"); i >= 0 {
			piece = piece[:i]
		}
		piece = strings.Trim(piece, " \t")
		if piece == "." || piece == ".." {
			return true
		}
	}
	return false
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// hasOverlong reports a byte sequence that encodes a character in more
// bytes than UTF-8 allows: C0 or C1 followed by a continuation byte, E0
// followed by 80-9F, F0 followed by 80-8F. (A lone C0 or C1 is left alone:
// in a Latin-1 path it is an accented capital.)
func hasOverlong(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case (c == 0xC0 || c == 0xC1) && i+1 < len(s) && s[i+1] >= 0x80 && s[i+1] < 0xC0:
			return true
		case c == 0xE0 && i+1 < len(s) && s[i+1] >= 0x80 && s[i+1] < 0xA0:
			return true
		case c == 0xF0 && i+1 < len(s) && s[i+1] >= 0x80 && s[i+1] < 0x90:
			return true
		}
	}
	return false
}

// lenientUnescape decodes every valid %XX and leaves any other '%' as it is,
// as a server decoding a second time would.
func lenientUnescape(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}
