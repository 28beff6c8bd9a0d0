package deploy

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/lambda"

	"github.com/outgate/outgate/internal/stack"
	"github.com/outgate/outgate/internal/testutil"
)

// TestLogGroupsOutliveDownUnlessAsked, against moto: up makes each
// function's log group with the retention asked for; down keeps them; a
// second up of the same name uses the kept groups (creating them again
// would fail) and applies the retention asked for then; DeleteLogGroups
// (down --delete-logs) removes them.
func TestLogGroupsOutliveDownUnlessAsked(t *testing.T) {
	c, api := motoClients(t)
	ctx := context.Background()
	vpcID, pub := testutil.PublicSubnets(t, api, "10.9.0.0/16", 1)
	retention := func() map[string]int32 {
		out, err := c.Logs.DescribeLogGroups(ctx, &cloudwatchlogs.DescribeLogGroupsInput{LogGroupNamePrefix: aws.String("/aws/lambda/logs-")})
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]int32{}
		for _, g := range out.LogGroups {
			m[aws.ToString(g.LogGroupName)] = aws.ToInt32(g.RetentionInDays)
		}
		return m
	}
	o := motoUp("logs", stack.TemplateOptions{VPCID: vpcID, SubnetIDs: pub})
	if _, err := Up(ctx, c, o); err != nil {
		t.Fatal(err)
	}
	want := map[string]int32{"/aws/lambda/logs-relay": 30, "/aws/lambda/logs-guardian": 30}
	if got := retention(); len(got) != 2 || got["/aws/lambda/logs-relay"] != 30 || got["/aws/lambda/logs-guardian"] != 30 {
		t.Fatalf("after up: log groups %v, want %v", got, want)
	}
	if _, err := Down(ctx, c, "logs", o.Poll, o.Out); err != nil {
		t.Fatal(err)
	}
	if got := retention(); len(got) != 2 {
		t.Fatalf("down without --delete-logs removed log groups: %v", got)
	}
	o.Template.LogRetentionDays = 90
	if _, err := Up(ctx, c, o); err != nil {
		t.Fatalf("up over kept log groups: %v", err)
	}
	st, err := DescribeDeployed(ctx, c.CloudFormation, "logs")
	if err != nil {
		t.Fatal(err)
	}
	if st.Parameters[stack.ParamCreateRelayLogs] != "false" || st.Parameters[stack.ParamCreateGuardianLogs] != "false" {
		t.Errorf("the second stack must use the kept groups: %v", st.Parameters)
	}
	if got := retention(); got["/aws/lambda/logs-relay"] != 90 || got["/aws/lambda/logs-guardian"] != 90 {
		t.Errorf("kept groups after up --log-retention-days 90: %v", got)
	}
	if _, err := Down(ctx, c, "logs", o.Poll, o.Out); err != nil {
		t.Fatal(err)
	}
	if err := DeleteLogGroups(ctx, c.Logs, "logs", o.Out); err != nil {
		t.Fatal(err)
	}
	if got := retention(); len(got) != 0 {
		t.Errorf("--delete-logs left %v", got)
	}
}

// alarmsCloudWatch adds alarms to the in-memory CloudWatch: moto cannot
// speak the RPC v2 CBOR protocol this client uses, and its CloudFormation
// leaves AWS::CloudWatch::Alarm a placeholder.
type alarmsCloudWatch struct {
	fakeCloudWatch
	alarms []cwtypes.MetricAlarm
}

func (f alarmsCloudWatch) DescribeAlarms(_ context.Context, in *cloudwatch.DescribeAlarmsInput, _ ...func(*cloudwatch.Options)) (*cloudwatch.DescribeAlarmsOutput, error) {
	out := &cloudwatch.DescribeAlarmsOutput{}
	for _, a := range f.alarms {
		for _, n := range in.AlarmNames {
			if n == aws.ToString(a.AlarmName) {
				out.MetricAlarms = append(out.MetricAlarms, a)
			}
		}
	}
	return out, nil
}

func (fakeCloudWatch) DescribeAlarms(context.Context, *cloudwatch.DescribeAlarmsInput, ...func(*cloudwatch.Options)) (*cloudwatch.DescribeAlarmsOutput, error) {
	return &cloudwatch.DescribeAlarmsOutput{}, nil
}

// TestStatusShowsTheAlarms: status lists the deployment's alarms (by the
// names the template gives them) with their state, and an alarm in ALARM
// needs attention; another deployment's alarm is not listed.
func TestStatusShowsTheAlarms(t *testing.T) {
	c, api := motoClients(t)
	ctx := context.Background()
	vpcID, pub := testutil.PublicSubnets(t, api, "10.10.0.0/16", 1)
	if _, err := Up(ctx, c, motoUp("al", stack.TemplateOptions{VPCID: vpcID, SubnetIDs: pub})); err != nil {
		t.Fatal(err)
	}
	res := resources(t, stack.TemplateOptions{})
	name := func(id string) string {
		return strings.ReplaceAll(res[id]["Properties"].(map[string]any)["AlarmName"].(map[string]any)["Fn::Sub"].(string), "${AWS::StackName}", "al")
	}
	c.CloudWatch = alarmsCloudWatch{alarms: []cwtypes.MetricAlarm{
		{AlarmName: aws.String(name("EgressIpAlarm")), StateValue: cwtypes.StateValueAlarm, StateReason: aws.String("Threshold Crossed: 2 datapoints [0.0, 0.0]")},
		{AlarmName: aws.String(name("GuardianNotRunningAlarm")), StateValue: cwtypes.StateValueOk},
		{AlarmName: aws.String("al-eu-EgressIpAlarm"), StateValue: cwtypes.StateValueAlarm},
	}}
	s, err := ReadStatus(ctx, c, "al")
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Alarms) != 2 || !containsText(s.NeedsAttention, "al-EgressIpAlarm is in ALARM: Threshold Crossed") || containsText(s.NeedsAttention, "al-eu") {
		t.Errorf("alarms %+v, needs attention %v", s.Alarms, s.NeedsAttention)
	}
}

// TestUpDeploysBothFunctionsForTheArchBuilt, against moto: up builds the
// zips for --arch, and both functions are created with that architecture,
// so Lambda can run the guardian's bootstrap as well as the relay's.
func TestUpDeploysBothFunctionsForTheArchBuilt(t *testing.T) {
	c, api := motoClients(t)
	ctx := context.Background()
	vpcID, pub := testutil.PublicSubnets(t, api, "10.11.0.0/16", 1)
	o := motoUp("x86", stack.TemplateOptions{VPCID: vpcID, SubnetIDs: pub, Arch: "x86_64"})
	var built []string
	o.Zips = func(ctx context.Context, arch string) (Zip, Zip, error) {
		built = append(built, arch)
		return fakeZips(ctx, arch)
	}
	if _, err := Up(ctx, c, o); err != nil {
		t.Fatal(err)
	}
	if len(built) != 1 || built[0] != "x86_64" {
		t.Fatalf("zips built for %v", built)
	}
	lc := c.Lambda.(*lambda.Client)
	for _, fn := range []string{"x86-relay", "x86-guardian"} {
		cfg, err := lc.GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String(fn)})
		if err != nil {
			t.Fatal(err)
		}
		if len(cfg.Architectures) != 1 || cfg.Architectures[0] != "x86_64" {
			t.Errorf("%s is %v, its zip was built for x86_64", fn, cfg.Architectures)
		}
	}
}

// resources is the template's Resources as CloudFormation gets them.
func resources(t *testing.T, o stack.TemplateOptions) map[string]map[string]any {
	t.Helper()
	s, err := stack.Template(o)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := stack.Render(s, "json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct{ Resources map[string]map[string]any }
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	return doc.Resources
}
