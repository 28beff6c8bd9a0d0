package attached

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/outgate/outgate/internal/guardian/fakeaws"
)

var want = Want{Deployment: "pay", Subnets: []string{"subnet-a", "subnet-b"}, SecurityGroup: "sg-1"}

// TestCompare: what counts as still attached. Some of the deployment's
// subnets are enough; the security-group set must be exactly the relay's
// one group, since Lambda shares ENIs (and so the static IPs) only then.
func TestCompare(t *testing.T) {
	for _, c := range []struct {
		subnets, groups []string
		differs         string // "" when it still matches
	}{
		{[]string{"subnet-a", "subnet-b"}, []string{"sg-1"}, ""},
		{[]string{"subnet-b"}, []string{"sg-1"}, ""},
		{nil, nil, "no VPC config"},
		{[]string{"subnet-a"}, []string{"sg-1", "sg-2"}, "security groups sg-1,sg-2, want exactly sg-1"},
		{[]string{"subnet-a"}, []string{"sg-2"}, "security groups sg-2, want exactly sg-1"},
		{[]string{"subnet-a", "subnet-x"}, []string{"sg-1"}, "subnets subnet-x are not the deployment's (subnet-a,subnet-b)"},
	} {
		got := strings.Join(Compare(c.subnets, c.groups, want), "; ")
		if c.differs == "" && got != "" || !strings.Contains(got, c.differs) {
			t.Errorf("%v %v: %q, want %q", c.subnets, c.groups, got, c.differs)
		}
	}
}

// TestCheckIsBounded: past MaxFunctions tagged functions, the first ones
// are checked and the error names the limit, so a run never grows with a
// runaway tag. The simulator stands in for the Tagging API (moto covers the
// wire in internal/deploy's TestStatusShowsAttachedFunctions).
func TestCheckIsBounded(t *testing.T) {
	c := fakeaws.New()
	for i := range MaxFunctions + 10 {
		name := fmt.Sprintf("fn-%03d", i)
		c.Deploy(name, want.Subnets, []string{want.SecurityGroup})
		c.TagFunction(name, map[string]string{Tag: "pay"})
	}
	fns, err := Check(context.Background(), c, c, want)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("more than %d functions", MaxFunctions)) || len(fns) != MaxFunctions {
		t.Fatalf("%d functions, %v", len(fns), err)
	}
	if c.Calls["GetFunctionConfiguration"] != MaxFunctions {
		t.Errorf("%d GetFunctionConfiguration calls, want %d", c.Calls["GetFunctionConfiguration"], MaxFunctions)
	}
}
