package attached

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/resourcegroupstaggingapi"
	tagtypes "github.com/aws/aws-sdk-go-v2/service/resourcegroupstaggingapi/types"
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

// replayTagging is tag:GetResources as boto/boto3#2461 reports it with
// TagFilters and ResourceTypeFilters: an empty first page with a token, then
// the same functions again on later pages, each time with a new token. moto
// pages correctly, so this in-memory fake stands in for that behaviour.
type replayTagging struct{ arns []string }

func (r replayTagging) GetResources(_ context.Context, in *resourcegroupstaggingapi.GetResourcesInput, _ ...func(*resourcegroupstaggingapi.Options)) (*resourcegroupstaggingapi.GetResourcesOutput, error) {
	page := 0
	if in.PaginationToken != nil {
		page, _ = strconv.Atoi(*in.PaginationToken)
	}
	out := &resourcegroupstaggingapi.GetResourcesOutput{PaginationToken: aws.String(strconv.Itoa(page + 1))}
	if page > 0 {
		for _, a := range r.arns {
			out.ResourceTagMappingList = append(out.ResourceTagMappingList, tagtypes.ResourceTagMapping{ResourceARN: aws.String(a)})
		}
	}
	return out, nil
}

// TestCheckCountsAFunctionOnce: when the Tagging API hands the same
// functions back page after page, each is read and reported once, so the
// drift metric counts functions, not pages, and a replay does not fill
// MaxFunctions with copies. The endless token is still an error.
func TestCheckCountsAFunctionOnce(t *testing.T) {
	c := fakeaws.New()
	c.Deploy("sms", nil, nil) // its own deploy dropped the VPC config
	c.Deploy("mail", want.Subnets, []string{want.SecurityGroup})
	var arns []string
	for _, n := range []string{"sms", "mail"} {
		cfg, err := c.GetFunctionConfiguration(context.Background(), &lambda.GetFunctionConfigurationInput{FunctionName: aws.String(n)})
		if err != nil {
			t.Fatal(err)
		}
		arns = append(arns, aws.ToString(cfg.FunctionArn))
	}
	fns, err := Check(context.Background(), replayTagging{arns}, c, want)
	if err == nil || !strings.Contains(err.Error(), "kept paginating") {
		t.Errorf("error %v, want the endless pagination named", err)
	}
	if len(fns) != 2 || c.Calls["GetFunctionConfiguration"] != 2+2 {
		t.Fatalf("%d functions reported, %d reads (2 of them by this test), want 2 and 2: %+v", len(fns), c.Calls["GetFunctionConfiguration"]-2, fns)
	}
}
