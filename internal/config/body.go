package config

import (
	"fmt"
	"slices"
	"strings"
)

// bodyOptIn lists the methods an upstream may accept a request body on.
// TRACE is not among them: RFC 9110 9.3.8 forbids content on TRACE.
var bodyOptIn = []string{"GET", "HEAD", "OPTIONS", "DELETE"}

// allowBodyOn checks upstreams.NAME.allow_body_on: methods in upper case,
// each once, from bodyOptIn.
func (v *validator) allowBodyOn(path string, up *Upstream) {
	seen := map[string]bool{}
	for i, m := range up.AllowBodyOn {
		p := fmt.Sprintf("%s.allow_body_on[%d]", path, i)
		switch {
		case !slices.Contains(bodyOptIn, m):
			v.errf(p, "%q: a request body can be allowed on %s only (other methods carry bodies anyway)", m, strings.Join(bodyOptIn, ", "))
		case seen[m]:
			v.errf(p, "%q is listed twice", m)
		}
		seen[m] = true
	}
}

// AllowsBodyOn reports whether the upstream accepts a request body on
// method, one of those that usually carry none.
func (u *Upstream) AllowsBodyOn(method string) bool {
	return slices.Contains(u.AllowBodyOn, method)
}
