package claim

import (
	"reflect"
	"strings"
)

// TB is the part of testing.TB CheckGrants uses (no testing import in
// production code).
type TB interface {
	Helper()
	Errorf(format string, args ...any)
}

// CheckGrants reports every method of the interfaces without a grant, and
// every grant whose call is no method of them or whose resource is not "*"
// and not an ARN. Each package with an sdk.go calls it from a test.
func CheckGrants(t TB, grants []Grant, ifaces ...reflect.Type) {
	t.Helper()
	methods := map[string]bool{}
	for _, it := range ifaces {
		for i := range it.NumMethod() {
			methods[it.Method(i).Name] = true
		}
	}
	granted := map[string]bool{}
	for _, g := range grants {
		granted[g.Call] = true
		if !methods[g.Call] {
			t.Errorf("grant %s for %s, which is no call of %v", g.Action, g.Call, ifaces)
		}
		if g.Resource != "*" && !strings.HasPrefix(g.Resource, "arn:${Partition}:") {
			t.Errorf("grant %s for %s: resource %q is neither \"*\" nor an ARN pattern", g.Action, g.Call, g.Resource)
		}
	}
	for m := range methods {
		if !granted[m] {
			t.Errorf("%s has no IAM grant: the instance role would refuse it", m)
		}
	}
}
