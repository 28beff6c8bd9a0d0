package relay

import (
	"errors"
	"net/url"
	"strings"
)

// SplitPath splits an escaped request path "/{upstream}/{rest}" into the
// upstream name and the escaped rest ("" or "/..."). Dot segments, plain or
// percent-encoded, are refused: they would let a request climb out of the
// upstream's base path once the partner's server resolves them.
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
		dec, err := url.PathUnescape(seg)
		if err != nil {
			return "", "", errors.New("the path has a malformed percent-encoding")
		}
		// Split again on what some servers also treat as separators once
		// decoded: an encoded slash, and a backslash.
		for _, part := range strings.FieldsFunc(dec, func(r rune) bool { return r == '/' || r == '\\' }) {
			if part == "." || part == ".." {
				return "", "", errors.New("the path must not contain . or .. segments")
			}
		}
	}
	return name, rest, nil
}
