// Package secrets resolves the partner credentials the gateway holds for
// its clients: references such as ${secret:ssm:/pay/api-key} in the config,
// fetched from the environment, a file, SSM Parameter Store or Secrets
// Manager at start, and refreshed on a ttl.
//
// Values never appear in errors, logs or config check output: every error
// names the reference (its source and name), never what it resolved to.
package secrets

import (
	"fmt"
	"strings"
)

// Source kinds a reference may name.
const (
	SourceEnv            = "env"
	SourceFile           = "file"
	SourceSSM            = "ssm"
	SourceSecretsManager = "secretsmanager"
)

// Ref is one ${secret:SOURCE:NAME} reference. For secretsmanager, NAME may
// end in #KEY: the secret's value is then a JSON object and the reference
// is the string at KEY (Secrets Manager names and ARNs cannot hold '#').
type Ref struct {
	Source string
	Name   string
	Key    string // JSON key inside a Secrets Manager secret, or ""
}

// String is the reference as written, which is safe to show.
func (r Ref) String() string {
	s := "${secret:" + r.Source + ":" + r.Name
	if r.Key != "" {
		s += "#" + r.Key
	}
	return s + "}"
}

// Template is a string with references in it, such as "Basic ${secret:...}".
type Template struct {
	parts []part
}

type part struct {
	lit string
	ref *Ref
}

const (
	open  = "${secret:"
	close = "}"
	// maxRefLen bounds one reference's name (SSM names are up to 2,048
	// characters with their path; ARNs are shorter).
	maxRefLen = 2048
)

// HasRef reports whether s contains a reference, or something that starts
// like one.
func HasRef(s string) bool { return strings.Contains(s, "${") }

// ParseTemplate splits s into literal text and references. A "${" that does
// not start a well-formed reference is an error, so a typo never reaches a
// partner as literal text.
func ParseTemplate(s string) (Template, error) {
	var t Template
	for len(s) > 0 {
		i := strings.Index(s, "${")
		if i < 0 {
			t.parts = append(t.parts, part{lit: s})
			break
		}
		if i > 0 {
			t.parts = append(t.parts, part{lit: s[:i]})
		}
		s = s[i:]
		if !strings.HasPrefix(s, open) {
			return Template{}, fmt.Errorf("%q: only ${secret:SOURCE:NAME} references may appear here", clip(s))
		}
		end := strings.Index(s, close)
		if end < 0 {
			return Template{}, fmt.Errorf("%q: unterminated reference (no closing })", clip(s))
		}
		r, err := parseRef(s[len(open):end])
		if err != nil {
			return Template{}, err
		}
		t.parts = append(t.parts, part{ref: &r})
		s = s[end+len(close):]
	}
	return t, nil
}

// ParseWhole parses a value that must be exactly one reference (client_cert,
// client_key).
func ParseWhole(s string) (Ref, error) {
	t, err := ParseTemplate(s)
	if err != nil {
		return Ref{}, err
	}
	if len(t.parts) != 1 || t.parts[0].ref == nil {
		return Ref{}, fmt.Errorf("must be one ${secret:SOURCE:NAME} reference and nothing else")
	}
	return *t.parts[0].ref, nil
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// parseRef reads "SOURCE:NAME[#KEY]".
func parseRef(s string) (Ref, error) {
	src, name, ok := strings.Cut(s, ":")
	if !ok {
		return Ref{}, fmt.Errorf("${secret:%s}: write ${secret:SOURCE:NAME} with SOURCE env, file, ssm or secretsmanager", clip(s))
	}
	r := Ref{Source: src, Name: name}
	if len(name) == 0 || len(name) > maxRefLen {
		return Ref{}, fmt.Errorf("${secret:%s:...}: the name must be 1 to %d characters", src, maxRefLen)
	}
	for _, c := range []byte(name) {
		if c < 0x21 || c > 0x7e {
			return Ref{}, fmt.Errorf("${secret:%s:...}: the name must be printable ASCII without spaces", src)
		}
	}
	switch src {
	case SourceEnv:
		for i, c := range []byte(name) {
			if !(c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9') {
				return Ref{}, fmt.Errorf("%s: an environment variable name is letters, digits and '_', not starting with a digit", r)
			}
		}
	case SourceFile:
		if !strings.HasPrefix(name, "/") {
			return Ref{}, fmt.Errorf("%s: the file must be an absolute path", r)
		}
	case SourceSSM:
		// Parameter names: a-zA-Z0-9_.-/ (and ARNs are not taken, so the
		// IAM grant can be built from the name).
		for _, c := range []byte(name) {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("_.-/", c) >= 0) {
				return Ref{}, fmt.Errorf("%s: an SSM parameter name is letters, digits and _.-/", r)
			}
		}
		// A name in a hierarchy starts with '/' (SSM refuses one that
		// does not), and no level of it is empty.
		if strings.Contains(name, "/") && !strings.HasPrefix(name, "/") {
			return Ref{}, fmt.Errorf("%s: an SSM parameter name with a hierarchy must begin with '/'", r)
		}
		if strings.HasSuffix(name, "/") || strings.Contains(name, "//") {
			return Ref{}, fmt.Errorf("%s: an SSM parameter name has no empty level ('//' or a trailing '/')", r)
		}
	case SourceSecretsManager:
		if n, key, ok := strings.Cut(name, "#"); ok {
			if n == "" || key == "" {
				return Ref{}, fmt.Errorf("${secret:%s}: write NAME#KEY to take KEY of a JSON secret", clip(s))
			}
			r.Name, r.Key = n, key
		}
		// Secret names are letters, digits and /_+=.@- (ARNs add ':').
		for _, c := range []byte(r.Name) {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("/_+=.@-:", c) >= 0) {
				return Ref{}, fmt.Errorf("%s: a secret name is letters, digits and /_+=.@- (an ARN adds ':')", r)
			}
		}
		if strings.HasPrefix(r.Name, "arn:") && !strings.HasPrefix(r.Name, "arn:aws") {
			return Ref{}, fmt.Errorf("%s: not a Secrets Manager ARN", r)
		}
		if strings.HasPrefix(r.Name, "arn:") && !strings.Contains(r.Name, ":secret:") {
			return Ref{}, fmt.Errorf("%s: not a Secrets Manager secret ARN (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME)", r)
		}
	default:
		return Ref{}, fmt.Errorf("${secret:%s:...}: unknown source %q (env, file, ssm or secretsmanager)", src, src)
	}
	return r, nil
}

// Refs lists the template's references, in order.
func (t Template) Refs() []Ref {
	var out []Ref
	for _, p := range t.parts {
		if p.ref != nil {
			out = append(out, *p.ref)
		}
	}
	return out
}

// Expand writes the template with each reference replaced by its value.
func (t Template) Expand(v Values) (string, error) {
	var b strings.Builder
	for _, p := range t.parts {
		if p.ref == nil {
			b.WriteString(p.lit)
			continue
		}
		s, ok := v[*p.ref]
		if !ok {
			return "", fmt.Errorf("%s: not loaded", p.ref)
		}
		b.WriteString(s)
	}
	return b.String(), nil
}

// Values maps references to what they resolved to.
type Values map[Ref]string
