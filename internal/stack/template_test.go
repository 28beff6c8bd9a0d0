package stack

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/outgate/outgate/internal/testutil"
)

func variants() map[string]TemplateOptions {
	return map[string]TemplateOptions{
		"eni-1az":           {},
		"eni-3az-apigw":     {AZs: 3, Front: "apigw"},
		"eni-2az-x86":       {AZs: 2, Arch: "x86_64"},
		"eni-existing-vpc":  {VPCID: "vpc-0123456789abcdef0", SubnetIDs: []string{"subnet-0123456789abcdef0", "subnet-0123456789abcdef1"}},
		"nat-1az":           {Mode: "nat"},
		"nat-3az-endpoints": {Mode: "nat", AZs: 3, Endpoints: []string{"s3", "dynamodb", "sqs", "secretsmanager"}},
		"nat-2az-shared":    {Mode: "nat", AZs: 2, SharedNAT: true, Front: "apigw"},
		"nat-existing-vpc": {Mode: "nat", VPCID: "vpc-0123456789abcdef0", SubnetIDs: []string{"subnet-0123456789abcdef0", "subnet-0123456789abcdef1"},
			Endpoints: []string{"s3", "sqs"}},
	}
}

func render(t *testing.T, o TemplateOptions, format string) []byte {
	t.Helper()
	tpl, err := Template(o)
	if err != nil {
		t.Fatal(err)
	}
	out, err := Render(tpl, format)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestTemplatesPassCfnLint runs cfn-lint on every variant, JSON and YAML.
func TestTemplatesPassCfnLint(t *testing.T) {
	lint := testutil.Tool(t, "cfn-lint")
	dir := t.TempDir()
	var files []string
	for name, o := range allVariants() {
		for _, f := range []string{"json", "yaml"} {
			p := filepath.Join(dir, name+"."+f)
			os.WriteFile(p, render(t, o, f), 0o600)
			files = append(files, p)
		}
	}
	out, err := exec.Command(lint, append([]string{"--format", "parseable", "--"}, files...)...).CombinedOutput()
	if err != nil {
		// Warnings (W) and informational (I) findings are listed but do not fail the test.
		var errs []string
		for _, l := range strings.Split(string(out), "\n") {
			if strings.Contains(l, ":E") {
				errs = append(errs, l)
			}
		}
		if len(errs) > 0 {
			t.Fatalf("cfn-lint errors:\n%s", strings.Join(errs, "\n"))
		}
		t.Logf("cfn-lint findings (not errors):\n%s", out)
	}
}

func TestTemplateShape(t *testing.T) {
	var doc struct {
		Conditions map[string]any
		Resources  map[string]map[string]any
		Parameters map[string]any
		Outputs    map[string]any
	}
	json.Unmarshal(render(t, TemplateOptions{AZs: 2}, "json"), &doc)
	// Conditions stay conditions (all of them: TestConditionsStayConditions).
	if c := fmt.Sprint(doc.Conditions["CreateEips"]); !strings.Contains(c, "Fn::Equals") || !strings.Contains(c, "EipAllocationIds") {
		t.Errorf("CreateEips = %v", doc.Conditions["CreateEips"])
	}
	if c := fmt.Sprint(doc.Conditions["AllowAllocation"]); !strings.Contains(c, "AllowAllocate") {
		t.Errorf("AllowAllocation = %v", doc.Conditions["AllowAllocation"])
	}
	for i := 0; i < 2; i++ {
		eip := doc.Resources[fmt.Sprintf("Eip%d", i)]
		if eip["DeletionPolicy"] != "Retain" || eip["UpdateReplacePolicy"] != "Retain" || eip["Condition"] != "CreateEips" {
			t.Errorf("Eip%d must be retained and conditional: %v", i, eip)
		}
	}
	for _, r := range []string{"Guardian", "GuardianSchedule", "Relay", "RelayUrl", "RelayUrlPermission", "RelayUrlInvokePermission", "EnisWithoutIpAlarm", "EgressIpAlarm"} {
		if doc.Resources[r] == nil {
			t.Errorf("eni template lacks %s", r)
		}
	}
	if _, nat := doc.Resources["NatGateway0"]; nat {
		t.Error("eni mode has a NAT gateway")
	}
	perm := doc.Resources["RelayUrlInvokePermission"]["Properties"].(map[string]any)
	if perm["InvokedViaFunctionUrl"] != true || perm["Action"] != "lambda:InvokeFunction" {
		t.Errorf("the function URL invoke permission must be limited to URL calls: %v", perm)
	}
	sched := doc.Resources["GuardianSchedule"]["Properties"].(map[string]any)
	if sched["ScheduleExpression"] != "rate(1 minute)" {
		t.Errorf("guardian schedule %v", sched)
	}

	doc.Resources = nil
	json.Unmarshal(render(t, TemplateOptions{Mode: "nat", AZs: 3, SharedNAT: true, Endpoints: []string{"s3", "sqs"}}, "json"), &doc)
	natAlloc := fmt.Sprint(doc.Resources["NatGateway0"]["Properties"].(map[string]any)["AllocationId"])
	if !strings.Contains(natAlloc, "EipAllocationIds") || !strings.Contains(natAlloc, "CreateEips") {
		t.Errorf("the NAT gateway must take the deployment's own IP: %s", natAlloc)
	}
	if doc.Resources["NatGateway0"] == nil || doc.Resources["NatGateway1"] != nil || doc.Resources["Guardian"] != nil || doc.Resources["Eip1"] != nil {
		t.Error("shared NAT: one NAT gateway, one IP, no guardian")
	}
	sg := doc.Resources["EndpointSecurityGroup"]["Properties"].(map[string]any)
	if !strings.Contains(fmt.Sprint(sg["SecurityGroupIngress"]), vpcCIDR) {
		t.Errorf("the interface endpoints' security group must admit the whole VPC: %v", sg)
	}
	if p := doc.Resources["EndpointSqs"]["Properties"].(map[string]any); p["PrivateDnsEnabled"] != true {
		t.Errorf("sqs endpoint %v", p)
	}
	if p := doc.Resources["EndpointS3"]["Properties"].(map[string]any); p["VpcEndpointType"] != "Gateway" {
		t.Errorf("s3 endpoint %v", p)
	}
}

func TestTemplateOptionErrors(t *testing.T) {
	for _, o := range []TemplateOptions{
		{Mode: "vpn"}, {AZs: 4}, {Front: "alb"}, {Arch: "mips"}, {VPCID: "vpc-1"},
		{VPCID: "vpc-1", SubnetIDs: []string{"a"}, AZs: 2},
		{Endpoints: []string{"s3"}}, {Mode: "nat", Endpoints: []string{"S3!"}},
	} {
		if _, err := Template(o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}

// allVariants adds to variants() the options that change names, tags and
// alarms: notification addresses, an existing topic, no relay cap, a long
// retention.
func allVariants() map[string]TemplateOptions {
	v := variants()
	v["eni-notify"] = TemplateOptions{AZs: 2, Notify: []string{"ops@example.com", "oncall+outgate@example.org"}}
	v["eni-apigw-topic"] = TemplateOptions{Front: "apigw", Arch: "x86_64", NotifyTopic: "arn:aws:sns:eu-central-1:123456789012:pager-duty_1"}
	v["nat-uncapped"] = TemplateOptions{Mode: "nat", RelayConcurrency: NoRelayCap, LogRetentionDays: 3653, Notify: []string{"a@example.com"}}
	v["eni-secrets"] = TemplateOptions{Secrets: testSecretRefs}
	for name, o := range instanceVariants() {
		v[name] = o
	}
	return v
}

// longestName is the longest deployment name up accepts (name_test.go
// checks the name rules themselves).
func longestName(t *testing.T) string {
	return "a" + strings.Repeat("9-", MaxNameLen)[:MaxNameLen-1]
}

// resolve evaluates a template value the way CloudFormation would for the
// stack name given, returning every value it can take (both branches of an
// Fn::If); values that depend on other resources are left out.
func resolve(v any, stack string) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case map[string]any:
		if r, ok := x["Ref"]; ok && r == "AWS::StackName" {
			return []string{stack}
		}
		if s, ok := x["Fn::Sub"].(string); ok {
			if strings.Contains(strings.ReplaceAll(s, "${AWS::StackName}", ""), "${") {
				return nil
			}
			return []string{strings.ReplaceAll(s, "${AWS::StackName}", stack)}
		}
		if f, ok := x["Fn::If"].([]any); ok && len(f) == 3 {
			return append(resolve(f[1], stack), resolve(f[2], stack)...)
		}
	}
	return nil
}

// The rules AWS documents and moto does not enforce.
var (
	// IAM API Reference, "Tag" data type (Key 1-128, Value 0-256, pattern
	// [\p{L}\p{Z}\p{N}_.:/=+\-@]*), which Lambda's TagResource shares:
	// https://docs.aws.amazon.com/IAM/latest/APIReference/API_Tag.html
	// CloudFormation copies stack tags onto every resource that supports
	// tags ("Stack-level tags", CloudFormation User Guide).
	tagChars = regexp.MustCompile(`^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$`)
	// CloudFormation API Reference, CreateStack, StackName.
	stackName = regexp.MustCompile(`^[a-zA-Z][-a-zA-Z0-9]{0,127}$`)
	// Lambda API Reference, CreateFunction, FunctionName (a bare name: 1-64).
	functionName = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)
	// CloudWatch Logs API Reference, CreateLogGroup, logGroupName.
	logGroupName = regexp.MustCompile(`^[.\-_/#A-Za-z0-9]{1,512}$`)
	// EC2 API Reference, CreateSecurityGroup, GroupDescription (in a VPC),
	// and IpRange/Ipv6Range Description: up to 255 of these characters.
	sgText = regexp.MustCompile(`^[a-zA-Z0-9. _\-:/()#,@\[\]+=&;{}!$*]{0,255}$`)
	// IAM API Reference, PutRolePolicy, PolicyName.
	policyName = regexp.MustCompile(`^[\w+=,.@-]{1,128}$`)
)

// descriptionMax: CreateFunction Description 256; PutMetricAlarm
// AlarmDescription 1024; EventBridge Scheduler CreateSchedule Description
// 512; SNS topic DisplayName 100.
var descriptionMax = map[string]map[string]int{
	"AWS::Lambda::Function":    {"Description": 256},
	"AWS::CloudWatch::Alarm":   {"AlarmDescription": 1024, "AlarmName": 255},
	"AWS::Scheduler::Schedule": {"Description": 512},
	"AWS::SNS::Topic":          {"DisplayName": 100},
	"AWS::EC2::SecurityGroup":  {},
	"AWS::IAM::Role":           {},
	"AWS::Logs::LogGroup":      {},
	// The idempotency table has no TableName (CloudFormation generates one)
	// and no free text; its tags are the checked ones.
	"AWS::DynamoDB::Table":                  {},
	"AWS::ApiGatewayV2::Api":                {},
	"AWS::IAM::Policy":                      {},
	"AWS::EC2::EIP":                         {},
	"AWS::EC2::VPC":                         {},
	"AWS::EC2::Subnet":                      {},
	"AWS::EC2::RouteTable":                  {},
	"AWS::EC2::InternetGateway":             {},
	"AWS::EC2::NatGateway":                  {},
	"AWS::EC2::VPCEndpoint":                 {},
	"AWS::EC2::Route":                       {},
	"AWS::Lambda::Url":                      {},
	"AWS::Lambda::Permission":               {},
	"AWS::EC2::VPCGatewayAttachment":        {},
	"AWS::EC2::SubnetRouteTableAssociation": {},
	// Instance mode: CloudFormation generates the names of the groups, the
	// launch template and the instance profile; the groups' tags (which
	// they copy to instances) are checked like any other. The launch
	// template's user data has its own limit (TestInstanceUserDataFits).
	"AWS::AutoScaling::AutoScalingGroup": {},
	"AWS::EC2::LaunchTemplate":           {},
	"AWS::IAM::InstanceProfile":          {},
}

// TestNamesAndTagsFitAWSRules holds every tag, name and name-like property
// of every variant, for the longest deployment name up accepts, to the
// limits AWS documents (cited above): the first real deploy is where a
// violation would show, as moto checks none of them. Names CloudFormation
// generates (roles, alarms, schedules, the topic) it shortens itself.
func TestNamesAndTagsFitAWSRules(t *testing.T) {
	name := longestName(t)
	if !stackName.MatchString(name) {
		t.Errorf("stack name %q breaks CreateStack's pattern", name)
	}
	checkTag := func(where, k string, v any) {
		if len(k) < 1 || len(k) > 128 || !tagChars.MatchString(k) || strings.HasPrefix(k, "aws:") {
			t.Errorf("%s: tag key %q", where, k)
		}
		for _, s := range resolve(v, name) {
			if len(s) > 256 || !tagChars.MatchString(s) {
				t.Errorf("%s: tag %s = %q is refused by IAM and Lambda", where, k, s)
			}
		}
	}
	for _, tag := range Tags(name, TemplateOptions{Mode: "nat", SharedNAT: true, VPCID: "vpc-0123456789abcdef0", Notify: []string{"x@example.com"},
		SubnetIDs: []string{"subnet-0123456789abcdef0", "subnet-0123456789abcdef1", "subnet-0123456789abcdef2"}}) {
		checkTag("stack tags (copied to every resource)", *tag.Key, *tag.Value)
	}
	for vname, o := range allVariants() {
		var doc struct {
			Resources map[string]struct {
				Type       string
				Properties map[string]any
			}
		}
		if err := json.Unmarshal(render(t, o, "json"), &doc); err != nil {
			t.Fatal(err)
		}
		for id, r := range doc.Resources {
			where := vname + "/" + id
			limits, known := descriptionMax[r.Type]
			if !known {
				t.Errorf("%s: resource type %s has no rules in this test: add its name and text limits", where, r.Type)
			}
			for prop, max := range limits {
				for _, s := range resolve(r.Properties[prop], name) {
					if len(s) > max {
						t.Errorf("%s: %s is %d characters, more than %d", where, prop, len(s), max)
					}
				}
			}
			switch tg := r.Properties["Tags"].(type) {
			case []any:
				for _, x := range tg {
					m := x.(map[string]any)
					checkTag(where, m["Key"].(string), m["Value"])
				}
			case map[string]any:
				for k, v := range tg {
					checkTag(where, k, v)
				}
			}
			switch r.Type {
			case "AWS::Lambda::Function":
				names := resolve(r.Properties["FunctionName"], name)
				if len(names) != 1 || !functionName.MatchString(names[0]) {
					t.Errorf("%s: FunctionName %v breaks CreateFunction's 64-character rule", where, names)
				}
				lg := resolve(r.Properties["LoggingConfig"].(map[string]any)["LogGroup"], name)
				if len(lg) != 1 || lg[0] != "/aws/lambda/"+names[0] {
					t.Errorf("%s: logs to %v, want /aws/lambda/%v", where, lg, names)
				}
			case "AWS::Logs::LogGroup":
				for _, s := range resolve(r.Properties["LogGroupName"], name) {
					if !logGroupName.MatchString(s) {
						t.Errorf("%s: log group name %q", where, s)
					}
				}
			case "AWS::EC2::SecurityGroup":
				texts := resolve(r.Properties["GroupDescription"], name)
				for _, rules := range []string{"SecurityGroupEgress", "SecurityGroupIngress"} {
					list, _ := r.Properties[rules].([]any)
					for _, x := range list {
						texts = append(texts, resolve(x.(map[string]any)["Description"], name)...)
					}
				}
				for _, s := range texts {
					if !sgText.MatchString(s) {
						t.Errorf("%s: security group text %q breaks EC2's character set", where, s)
					}
				}
			case "AWS::IAM::Role":
				list, _ := r.Properties["Policies"].([]any)
				for _, x := range list {
					if n := x.(map[string]any)["PolicyName"].(string); !policyName.MatchString(n) {
						t.Errorf("%s: policy name %q", where, n)
					}
				}
			case "AWS::IAM::Policy":
				if n, _ := r.Properties["PolicyName"].(string); !policyName.MatchString(n) {
					t.Errorf("%s: policy name %q", where, n)
				}
			}
		}
	}
}

// TestGuardianArchFollowsArch: up builds both zips for --arch, so the
// guardian's function must declare the same architecture as the relay's,
// or Lambda cannot start its bootstrap (exec format error).
func TestGuardianArchFollowsArch(t *testing.T) {
	for _, a := range []string{"arm64", "x86_64"} {
		doc := resources(t, TemplateOptions{Arch: a})
		for _, fn := range []string{"Relay", "Guardian"} {
			if got := fmt.Sprint(doc[fn]["Properties"].(map[string]any)["Architectures"]); got != "["+a+"]" {
				t.Errorf("--arch %s: %s is %s", a, fn, got)
			}
		}
	}
}

func resources(t *testing.T, o TemplateOptions) map[string]map[string]any {
	t.Helper()
	var doc struct{ Resources map[string]map[string]any }
	if err := json.Unmarshal(render(t, o, "json"), &doc); err != nil {
		t.Fatal(err)
	}
	return doc.Resources
}

// TestEveryAlarmPagesSomeone: in every variant each alarm publishes to the
// one topic on ALARM and on OK: the stack's own (with one email
// subscription per --notify address) or the one given. An alarm without
// AlarmActions changes colour in the console and tells nobody.
func TestEveryAlarmPagesSomeone(t *testing.T) {
	want := map[string][]string{ // alarms each mode must have
		"eni": {"EgressIpAlarm", "RelayKeepaliveMissingAlarm", "Relay5xxAlarm", "RelayThrottlesAlarm", "EnisWithoutIpAlarm", "GuardianErrorsAlarm", "GuardianNotRunningAlarm", "AttachedFunctionDriftAlarm"},
		"nat": {"EgressIpAlarm", "RelayKeepaliveMissingAlarm", "Relay5xxAlarm", "RelayThrottlesAlarm"},
	}
	for vname, o := range allVariants() {
		o.Normalize()
		res := resources(t, o)
		topic := any(map[string]any{"Ref": "AlarmTopic"})
		if o.NotifyTopic != "" {
			topic = o.NotifyTopic
			if res["AlarmTopic"] != nil {
				t.Errorf("%s: a topic of its own besides --notify-topic", vname)
			}
		} else {
			subs := fmt.Sprint(res["AlarmTopic"]["Properties"].(map[string]any)["Subscription"])
			for _, e := range o.Notify {
				if !strings.Contains(subs, "Endpoint:"+e) || !strings.Contains(subs, "Protocol:email") {
					t.Errorf("%s: %s is not subscribed: %s", vname, e, subs)
				}
			}
		}
		alarms := 0
		for id, r := range res {
			if r["Type"] != "AWS::CloudWatch::Alarm" {
				continue
			}
			alarms++
			p := r["Properties"].(map[string]any)
			for _, k := range []string{"AlarmActions", "OKActions"} {
				if a, _ := p[k].([]any); len(a) != 1 || fmt.Sprint(a[0]) != fmt.Sprint(topic) {
					t.Errorf("%s/%s: %s = %v, want [%v]", vname, id, k, p[k], topic)
				}
			}
			if p["TreatMissingData"] == nil || p["DatapointsToAlarm"] == nil {
				t.Errorf("%s/%s: missing-data treatment and datapoints to alarm must be chosen, not left to defaults", vname, id)
			}
		}
		wanted := want[o.Mode]
		if o.Mode == "instance" { // per AZ: no ready instance; a wrong egress IP
			for i := 0; i < o.AZs; i++ {
				wanted = append(wanted, fmt.Sprintf("NoReadyInstance%dAlarm", i), fmt.Sprintf("EgressWrongIp%dAlarm", i))
			}
		}
		for _, a := range wanted {
			if res[a] == nil {
				t.Errorf("%s: no %s", vname, a)
			}
		}
		if alarms != len(wanted) {
			t.Errorf("%s: %d alarms, want %d", vname, alarms, len(wanted))
		}
	}
}

// TestAlarmsDoNotFlapOnTheSchedules: the egress check arrives every 5
// minutes and the guardian's every minute; no alarm may fire on a single
// late or lost datapoint. (The old egress alarm did: one 300 s period,
// missing data breaching.)
func TestAlarmsDoNotFlapOnTheSchedules(t *testing.T) {
	res := resources(t, TemplateOptions{})
	for id, r := range res {
		if r["Type"] != "AWS::CloudWatch::Alarm" {
			continue
		}
		p := r["Properties"].(map[string]any)
		n, _ := p["DatapointsToAlarm"].(float64)
		if n < 2 {
			t.Errorf("%s fires on one datapoint", id)
		}
		if p["TreatMissingData"] == "breaching" {
			// Breaching on silence only where silence is the failure, over a
			// span holding several scheduled datapoints.
			period, _ := p["Period"].(float64)
			if p["MetricName"] == "EgressIpExpected" && p["Statistic"] != "SampleCount" || period*n < 600 {
				t.Errorf("%s treats missing data as breaching over %v s", id, period*n)
			}
		}
	}
	egress := res["EgressIpAlarm"]["Properties"].(map[string]any)
	if egress["Statistic"] != "Minimum" || egress["Dimensions"] == nil {
		t.Errorf("the egress alarm must take the minimum over every invocation's check: %v", egress)
	}
}

// TestCostGuard: the guardian runs one at a time (reserved concurrency 1
// unless the account cannot spare it) and the relay is capped by a
// parameter whose default is DefaultRelayConcurrency; 0 means no cap,
// never "throttle everything" (Lambda's meaning of a reservation of 0).
func TestCostGuard(t *testing.T) {
	var doc struct {
		Parameters map[string]map[string]any
		Conditions map[string]any
		Resources  map[string]map[string]any
	}
	json.Unmarshal(render(t, TemplateOptions{}, "json"), &doc)
	relay := fmt.Sprint(doc.Resources["Relay"]["Properties"].(map[string]any)["ReservedConcurrentExecutions"])
	guard := fmt.Sprint(doc.Resources["Guardian"]["Properties"].(map[string]any)["ReservedConcurrentExecutions"])
	if relay != "map[Fn::If:[RelayCapped map[Ref:RelayReservedConcurrency] map[Ref:AWS::NoValue]]]" {
		t.Errorf("relay reserved concurrency %s", relay)
	}
	if guard != "map[Fn::If:[GuardianSerialised 1 map[Ref:AWS::NoValue]]]" {
		t.Errorf("guardian reserved concurrency %s", guard)
	}
	if d := doc.Parameters[ParamRelayCap]["Default"]; d != fmt.Sprint(DefaultRelayConcurrency) {
		t.Errorf("relay cap default %v", d)
	}
	if c := fmt.Sprint(doc.Conditions[condRelayCapped]); c != "map[Fn::Not:[map[Fn::Equals:[map[Ref:RelayReservedConcurrency] 0]]]]" {
		t.Errorf("RelayCapped = %s", c)
	}
	json.Unmarshal(render(t, TemplateOptions{RelayConcurrency: NoRelayCap}, "json"), &doc)
	if d := doc.Parameters[ParamRelayCap]["Default"]; d != "0" {
		t.Errorf("no cap: default %v", d)
	}
	for _, bad := range []TemplateOptions{{RelayConcurrency: -2}, {RelayConcurrency: 1001}, {LogRetentionDays: 31},
		{Notify: []string{"not-an-address"}}, {NotifyTopic: "arn:aws:sns:us-east-1:123:x"}, {Notify: []string{"a@b.c"}, NotifyTopic: "arn:aws:sns:us-east-1:123456789012:x"}} {
		if _, err := Template(bad); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

// TestLogGroupsKeptWithRetention: each function's log group is the
// stack's, named /aws/lambda/<function>, with the retention asked for
// (default 30 days), and kept when the stack is deleted.
func TestLogGroupsKeptWithRetention(t *testing.T) {
	res := resources(t, TemplateOptions{})
	for _, fn := range []string{"Relay", "Guardian"} {
		lg := res[fn+"LogGroup"]
		if lg == nil {
			t.Fatalf("no log group for %s", fn)
		}
		p := lg["Properties"].(map[string]any)
		if p["RetentionInDays"] != 30.0 || lg["DeletionPolicy"] != "Retain" || lg["Condition"] != "Create"+fn+"LogGroup" {
			t.Errorf("%s log group: %v", fn, lg)
		}
	}
	res = resources(t, TemplateOptions{LogRetentionDays: 365})
	if d := res["RelayLogGroup"]["Properties"].(map[string]any)["RetentionInDays"]; d != 365.0 {
		t.Errorf("--log-retention-days 365: %v", d)
	}
}

// TestConditionsStayConditions: the template's Conditions reach
// CloudFormation as written, as intrinsics on the parameters. goformation's
// JSON() resolves intrinsics it is given as plain maps (an Fn::Equals map
// becomes true or false at encoding time, so every stack would have been
// built for the parameters' defaults); its own encoded forms (cf.Equals,
// cf.Join, cf.Not, cf.Ref) survive it, which is what the template uses.
func TestConditionsStayConditions(t *testing.T) {
	ref := func(p string) map[string]any { return map[string]any{"Ref": p} }
	eq := func(a, b any) map[string]any { return map[string]any{"Fn::Equals": []any{a, b}} }
	for name, c := range map[string]struct {
		o    TemplateOptions
		want map[string]any
	}{
		"eni": {TemplateOptions{Mode: "eni"}, map[string]any{
			"CreateEips":             eq(map[string]any{"Fn::Join": []any{"", ref(ParamEIPs)}}, ""),
			"CreateRelayLogGroup":    eq(ref(ParamCreateRelayLogs), "true"),
			"CreateGuardianLogGroup": eq(ref(ParamCreateGuardianLogs), "true"),
			"RelayCapped":            map[string]any{"Fn::Not": []any{eq(ref(ParamRelayCap), "0")}},
			"GuardianSerialised":     eq(ref(ParamGuardianCap), "1"),
			"AllowAllocation":        eq(ref(ParamAllowAlloc), "true"),
		}},
		"nat": {TemplateOptions{Mode: "nat"}, map[string]any{
			"CreateEips":          eq(map[string]any{"Fn::Join": []any{"", ref(ParamEIPs)}}, ""),
			"CreateRelayLogGroup": eq(ref(ParamCreateRelayLogs), "true"),
			"RelayCapped":         map[string]any{"Fn::Not": []any{eq(ref(ParamRelayCap), "0")}},
		}},
	} {
		for _, format := range []string{"json", "yaml"} {
			var doc struct {
				Conditions map[string]any `yaml:"Conditions"`
			}
			if err := yaml.Unmarshal(render(t, c.o, format), &doc); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(doc.Conditions, c.want) {
				t.Errorf("%s (%s): Conditions\n%v\nwant\n%v", name, format, doc.Conditions, c.want)
			}
		}
	}
}
