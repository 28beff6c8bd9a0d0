package stack

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/outgate/outgate/internal/instance"
	"github.com/outgate/outgate/internal/testutil"
)

// instanceVariants are the instance-mode shapes every template test holds
// (cfn-lint, names, tags and text limits): new VPC or existing, a domain
// or the deployment's own CA, 1 to 3 AZs, a narrowed --allow-from.
func instanceVariants() map[string]TemplateOptions {
	existing := []string{"subnet-0123456789abcdef0", "subnet-0123456789abcdef1", "subnet-0123456789abcdef2"}
	return map[string]TemplateOptions{
		"instance-1az":        {Mode: "instance", AZs: 1},
		"instance-2az-domain": {Mode: "instance", AZs: 2, Instance: InstanceOptions{Domain: "gw.example.com", ACMEEmail: "ops@example.com"}},
		"instance-3az-allow": {Mode: "instance", AZs: 3, Instance: InstanceOptions{Type: "t4g.micro",
			AllowFrom: []string{"198.51.100.0/24", "2001:db8::/32"}}, Notify: []string{"ops@example.com"}},
		"instance-existing-vpc": {Mode: "instance", VPCID: "vpc-0123456789abcdef0", SubnetIDs: existing[:2], Secrets: testSecretRefs},
		"instance-existing-vpc-domain-3az": {Mode: "instance", VPCID: "vpc-0123456789abcdef0", SubnetIDs: existing,
			Instance: InstanceOptions{Domain: "gw.example.com", ACMECA: "https://acme-staging-v02.api.letsencrypt.org/directory"}, NotifyTopic: "arn:aws:sns:eu-central-1:123456789012:pager"},
	}
}

func props(t *testing.T, res map[string]map[string]any, id string) map[string]any {
	t.Helper()
	r, ok := res[id]
	if !ok {
		t.Fatalf("no resource %s", id)
	}
	return r["Properties"].(map[string]any)
}

func jsonOf(v any) string { b, _ := json.Marshal(v); return string(b) }

// The launch template holds the instance to the design: IMDSv2 only with a
// hop limit of 1, no key pair, an encrypted gp3 root, the instance
// profile, the AMI from AWS's public SSM parameter.
func TestInstanceLaunchTemplate(t *testing.T) {
	o := instanceVariants()["instance-2az-domain"]
	var doc struct {
		Parameters map[string]map[string]any
		Resources  map[string]map[string]any
	}
	if err := json.Unmarshal(render(t, o, "json"), &doc); err != nil {
		t.Fatal(err)
	}
	if p := doc.Parameters[ParamAMI]; p["Type"] != "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>" || p["Default"] != "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64" {
		t.Errorf("AMI parameter: %v", p)
	}
	lt := props(t, doc.Resources, "InstanceLaunchTemplate")["LaunchTemplateData"].(map[string]any)
	md := lt["MetadataOptions"].(map[string]any)
	if md["HttpTokens"] != "required" || md["HttpPutResponseHopLimit"] != 1.0 || md["HttpEndpoint"] != "enabled" {
		t.Errorf("IMDS: %v", md)
	}
	if _, ok := lt["KeyName"]; ok {
		t.Error("a key pair: Session Manager is the way in")
	}
	ebs := lt["BlockDeviceMappings"].([]any)[0].(map[string]any)["Ebs"].(map[string]any)
	if ebs["VolumeType"] != "gp3" || ebs["Encrypted"] != true || ebs["VolumeSize"] != float64(RootVolumeGB) {
		t.Errorf("root volume: %v", ebs)
	}
	if jsonOf(lt["IamInstanceProfile"]) != `{"Arn":{"Fn::GetAtt":["InstanceProfile","Arn"]}}` || jsonOf(lt["ImageId"]) != `{"Ref":"AmiId"}` {
		t.Errorf("profile %v, image %v", lt["IamInstanceProfile"], lt["ImageId"])
	}
	ni := lt["NetworkInterfaces"].([]any)[0].(map[string]any)
	if ni["AssociatePublicIpAddress"] != true || jsonOf(ni["Groups"]) != `[{"Ref":"InstanceSecurityGroup"}]` {
		t.Errorf("network interface: %v", ni)
	}
	for i := 0; i < o.AZs; i++ {
		g := props(t, doc.Resources, fmt.Sprintf("InstanceGroup%d", i))
		if g["MinSize"] != "1" || g["MaxSize"] != "1" || g["DesiredCapacity"] != "1" || len(g["VPCZoneIdentifier"].([]any)) != 1 {
			t.Errorf("group %d: %v", i, g)
		}
		if jsonOf(g["VPCZoneIdentifier"]) != fmt.Sprintf(`[{"Ref":"PublicSubnet%d"}]`, i) {
			t.Errorf("group %d in %v", i, g["VPCZoneIdentifier"])
		}
		if !strings.Contains(jsonOf(g["Tags"]), `{"Key":"outgate:deployment","PropagateAtLaunch":true,"Value":{"Ref":"AWS::StackName"}}`) {
			t.Errorf("group %d does not propagate the deployment tag: %v", i, g["Tags"])
		}
		// A rolling update waits for the new instance's readiness signal
		// (the user data's signal-resource) before the next AZ.
		if up := jsonOf(doc.Resources[fmt.Sprintf("InstanceGroup%d", i)]["UpdatePolicy"]); up != `{"AutoScalingRollingUpdate":{"MaxBatchSize":1,"PauseTime":"PT15M","WaitOnResourceSignals":true}}` {
			t.Errorf("group %d update policy: %v", i, up)
		}
		// The IP the stack creates for this AZ names its subnet.
		if tags := jsonOf(props(t, doc.Resources, fmt.Sprintf("Eip%d", i))["Tags"]); !strings.Contains(tags, fmt.Sprintf(`{"Key":"outgate:subnet","Value":{"Ref":"PublicSubnet%d"}}`, i)) {
			t.Errorf("Eip%d tags: %s", i, tags)
		}
	}
}

// userDataOf returns the launch template's script with the stack's
// references substituted as CloudFormation's Fn::Sub would.
func userDataOf(t *testing.T, o TemplateOptions, values map[string]string) string {
	t.Helper()
	lt := props(t, resources(t, o), "InstanceLaunchTemplate")["LaunchTemplateData"].(map[string]any)
	sub, ok := lt["UserData"].(map[string]any)["Fn::Base64"].(map[string]any)["Fn::Sub"].(string)
	if !ok {
		t.Fatalf("user data is not Fn::Base64 of Fn::Sub: %v", lt["UserData"])
	}
	for _, part := range strings.Split(sub, "${")[1:] {
		ref := part[:strings.IndexByte(part, '}')]
		v, ok := values[ref]
		if !ok {
			t.Fatalf("the user data refers to ${%s}, which the test does not know", ref)
		}
		sub = strings.ReplaceAll(sub, "${"+ref+"}", v)
	}
	return sub
}

// The user data, as an instance receives it: bash accepts it, it stays
// within EC2's 16 KB (raw, before base64: EC2 User Guide, "Run commands
// when you launch an EC2 instance with user data input") for the longest
// deployment name, and the settings it writes are what the instance
// accepts (instance.LoadSettings), for each certificate source.
func TestInstanceUserData(t *testing.T) {
	bash := testutil.Tool(t, "bash")
	name := longestName(t)
	values := map[string]string{"AWS::StackName": name, "AWS::Region": "ap-northeast-2",
		ParamCodeBucket: "outgate-123456789012-ap-northeast-2", ParamBinaryKey: name + "/outgate-linux-arm64-0123456789abcdef",
		ParamBinarySHA256: strings.Repeat("ab", 32), ParamConfig: "/outgate/" + name + "/config",
		ParamDomain: "gw.example.com", ParamACMECA: "https://acme-v02.api.letsencrypt.org/directory", ParamACMEEmail: "ops@example.com",
		"PublicSubnet0": "subnet-0123456789abcdef0", "PublicSubnet1": "subnet-0123456789abcdef1", "PublicSubnet2": "subnet-0123456789abcdef2"}
	for vname, o := range instanceVariants() {
		script := userDataOf(t, o, values)
		if len(script) > 16384 {
			t.Errorf("%s: user data is %d bytes, EC2 takes 16384", vname, len(script))
		}
		p := filepath.Join(t.TempDir(), "user-data")
		os.WriteFile(p, []byte(script), 0o600)
		if out, err := exec.Command(bash, "-n", p).CombinedOutput(); err != nil {
			t.Errorf("%s: bash -n: %v\n%s", vname, err, out)
		}
		// The settings block between the heredoc markers.
		_, rest, _ := strings.Cut(script, "<<'OUTGATE_SETTINGS_END'\n")
		js, _, _ := strings.Cut(rest, "\nOUTGATE_SETTINGS_END\n")
		sp := filepath.Join(t.TempDir(), "instance.json")
		os.WriteFile(sp, []byte(js), 0o600)
		s, err := instance.LoadSettings(sp)
		if err != nil {
			t.Errorf("%s: the instance refuses the settings: %v\n%s", vname, err, js)
			continue
		}
		if s.Deployment != name || s.Listen != ":443" || s.AdminListen != "127.0.0.1:9901" || s.LogGroup != InstanceLogGroup(name) || s.ConfigParameter != "/outgate/"+name+"/config" {
			t.Errorf("%s: settings %+v", vname, s)
		}
		if o.Instance.Domain != "" {
			if s.Domain != "gw.example.com" || s.CertBucket != values[ParamCodeBucket] || s.CertPrefix != CertPrefix(name) || s.CACertParameter != "" {
				t.Errorf("%s: domain settings %+v", vname, s)
			}
		} else if s.CACertParameter != "/outgate/"+name+"/ca/cert" || s.CAKeyParameter != "/outgate/"+name+"/ca/key" || s.Domain != "" {
			t.Errorf("%s: own-CA settings %+v", vname, s)
		}
	}
}

// The security group admits 443 from --allow-from (anywhere by default)
// and nothing else: not the admin port, not SSH, not 80.
func TestInstanceSecurityGroup(t *testing.T) {
	for vname, want := range map[string]string{
		"instance-1az":       `[{"CidrIp":"0.0.0.0/0"},{"CidrIpv6":"::/0"}]`,
		"instance-3az-allow": `[{"CidrIp":"198.51.100.0/24"},{"CidrIpv6":"2001:db8::/32"}]`,
	} {
		sg := props(t, resources(t, instanceVariants()[vname]), "InstanceSecurityGroup")
		var got []map[string]any
		for _, r := range sg["SecurityGroupIngress"].([]any) {
			m := r.(map[string]any)
			if m["FromPort"] != 443.0 || m["ToPort"] != 443.0 || m["IpProtocol"] != "tcp" {
				t.Errorf("%s: ingress %v", vname, m)
			}
			src := map[string]any{}
			for _, k := range []string{"CidrIp", "CidrIpv6"} {
				if v, ok := m[k]; ok {
					src[k] = v
				}
			}
			got = append(got, src)
		}
		if jsonOf(got) != want {
			t.Errorf("%s: ingress from %s, want %s", vname, jsonOf(got), want)
		}
	}
}

// The instance role allows exactly the calls the instance makes, each as
// narrowly as AWS allows: no way to disassociate or release an IP, to
// associate one that is not the deployment's, or to read another
// deployment's parameters.
func TestInstanceRole(t *testing.T) {
	for vname, o := range instanceVariants() {
		role := props(t, resources(t, o), "InstanceRole")
		doc := jsonOf(role)
		if !strings.Contains(doc, "AmazonSSMManagedInstanceCore") || !strings.Contains(doc, `"Service":"ec2.amazonaws.com"`) {
			t.Errorf("%s: no Session Manager or wrong trust: %s", vname, doc)
		}
		for _, never := range []string{"DisassociateAddress", "ReleaseAddress", "AllocateAddress", "ec2:CreateTags", `"Action":"*"`, "s3:*", "ssm:*", "PutParameter"} {
			if strings.Contains(doc, never) {
				t.Errorf("%s: the instance role allows %s", vname, never)
			}
		}
		var stmts []map[string]any
		for _, p := range role["Policies"].([]any) {
			pd := p.(map[string]any)["PolicyDocument"].(map[string]any)
			for _, s := range pd["Statement"].([]any) {
				stmts = append(stmts, s.(map[string]any))
			}
		}
		actions := map[string]bool{}
		for _, s := range stmts {
			acts := []any{s["Action"]}
			if l, ok := s["Action"].([]any); ok {
				acts = l
			}
			for _, a := range acts {
				actions[a.(string)] = true
				// Every mutating EC2/Auto Scaling call is tag- or subnet-scoped.
				if (a == "ec2:AssociateAddress" || a == "autoscaling:SetInstanceHealth") && s["Condition"] == nil {
					t.Errorf("%s: %s without a condition", vname, a)
				}
			}
		}
		want := []string{"ec2:DescribeAddresses", "ec2:DescribeInstances", "ec2:AssociateAddress", "autoscaling:SetInstanceHealth",
			"s3:GetObject", "logs:CreateLogStream", "logs:PutLogEvents", "ssm:GetParameter", "cloudformation:SignalResource"}
		if o.Instance.Domain != "" {
			want = append(want, "s3:PutObject", "s3:DeleteObject", "s3:ListBucket")
		}
		if len(o.Secrets) > 0 {
			// The config's partner secrets, as the relay reads them (secrets.go).
			want = append(want, "secretsmanager:GetSecretValue", "kms:Decrypt")
		}
		for _, a := range want {
			if !actions[a] {
				t.Errorf("%s: the role lacks %s", vname, a)
			}
			delete(actions, a)
		}
		if len(actions) > 0 {
			t.Errorf("%s: the role allows more than the instance calls: %v", vname, actions)
		}
		hasCA := strings.Contains(doc, "/ca/key")
		if hasCA == (o.Instance.Domain != "") {
			t.Errorf("%s: CA key readable = %v with domain %q", vname, hasCA, o.Instance.Domain)
		}
	}
}

// Switching between eni and instance keeps the VPC and the public
// subnets (same logical ids and properties), so the IPs' outgate:subnet
// tags stay true and nothing the IPs hang on is replaced.
func TestInstanceKeepsENISubnets(t *testing.T) {
	for azs := 1; azs <= 3; azs++ {
		eni := resources(t, TemplateOptions{AZs: azs})
		inst := resources(t, TemplateOptions{Mode: "instance", AZs: azs})
		for id, r := range eni {
			if r["Type"] != "AWS::EC2::VPC" && r["Type"] != "AWS::EC2::Subnet" && r["Type"] != "AWS::EC2::InternetGateway" && r["Type"] != "AWS::EC2::RouteTable" {
				continue
			}
			if jsonOf(r) != jsonOf(inst[id]) {
				t.Errorf("%d AZ: %s differs:\neni      %s\ninstance %s", azs, id, jsonOf(r), jsonOf(inst[id]))
			}
		}
	}
}

func TestInstanceOptionErrors(t *testing.T) {
	for want, o := range map[string]TemplateOptions{
		"runs arm64":                   {Mode: "instance", Arch: "x86_64"},
		"apply to --mode nat":          {Mode: "instance", Endpoints: []string{"s3"}},
		"--front applies":              {Mode: "instance", Front: "apigw"},
		"not an instance type name":    {Mode: "instance", Instance: InstanceOptions{Type: "t4g nano"}},
		"did you mean 198.51.100.0":    {Mode: "instance", Instance: InstanceOptions{AllowFrom: []string{"198.51.100.1/24"}}},
		"is not a DNS name":            {Mode: "instance", Instance: InstanceOptions{Domain: "GW.example.com"}},
		"apply with --domain":          {Mode: "instance", Instance: InstanceOptions{ACMEEmail: "a@example.com"}},
		"not an https:// ACME":         {Mode: "instance", Instance: InstanceOptions{Domain: "gw.example.com", ACMECA: "http://ca.example/dir"}},
		"--azs must be 1, 2 or 3":      {Mode: "instance", AZs: 4},
		"--vpc-id and --subnet-ids":    {Mode: "instance", VPCID: "vpc-0123456789abcdef0"},
		"must be eni, nat or instance": {Mode: "box"},
		// Let's Encrypt validates from unpublished addresses (template_instance.go).
		"from addresses it does not publish": {Mode: "instance", Instance: InstanceOptions{Domain: "gw.example.com", AllowFrom: []string{"198.51.100.0/24"}}},
		"Let's Encrypt checks the domain": {Mode: "instance", Instance: InstanceOptions{Domain: "gw.example.com", AllowFrom: []string{"::/0"},
			ACMECA: "https://acme-staging-v02.api.letsencrypt.org/directory"}},
	} {
		if err := o.Normalize(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%+v: %v, want %q", o, err, want)
		}
	}
	// IPv4 anywhere, or a CA of the operator's own, which may validate from
	// inside the blocks.
	for _, o := range []TemplateOptions{
		{Mode: "instance", Instance: InstanceOptions{Domain: "gw.example.com", AllowFrom: []string{"0.0.0.0/0"}}},
		{Mode: "instance", Instance: InstanceOptions{Domain: "gw.example.com", AllowFrom: []string{"198.51.100.0/24"}, ACMECA: "https://ca.example.com/acme/directory"}},
	} {
		if err := o.Normalize(); err != nil {
			t.Errorf("%+v: %v", o.Instance, err)
		}
	}
}

// In a new VPC an instance boots only once its subnet routes to the
// internet (its user data fetches the binary from S3 that way).
func TestInstanceGroupsWaitForTheRoute(t *testing.T) {
	var doc struct{ Resources map[string]map[string]any }
	json.Unmarshal(render(t, TemplateOptions{Mode: "instance", AZs: 2}, "json"), &doc)
	for i := 0; i < 2; i++ {
		deps := jsonOf(doc.Resources[fmt.Sprintf("InstanceGroup%d", i)]["DependsOn"])
		if !strings.Contains(deps, `"PublicDefaultRoute"`) || !strings.Contains(deps, fmt.Sprintf(`"PublicSubnet%dRoutes"`, i)) {
			t.Errorf("InstanceGroup%d depends on %s", i, deps)
		}
	}
}

// Each AZ's instance signals its own group: the user data maps every
// subnet of the stack to the group launching into it (new VPC: the
// subnets the stack creates; existing: the ids given).
func TestInstanceUserDataSignalsItsGroup(t *testing.T) {
	values := map[string]string{"AWS::StackName": "pay", "AWS::Region": "eu-west-1", ParamCodeBucket: "outgate-123456789012-eu-west-1",
		ParamBinaryKey: "pay/outgate", ParamBinarySHA256: strings.Repeat("ab", 32), ParamConfig: "/outgate/pay/config",
		ParamDomain: "gw.example.com", ParamACMECA: "https://acme-v02.api.letsencrypt.org/directory", ParamACMEEmail: "ops@example.com",
		"PublicSubnet0": "subnet-00000000000000000", "PublicSubnet1": "subnet-00000000000000001", "PublicSubnet2": "subnet-00000000000000002"}
	for vname, o := range instanceVariants() {
		script := userDataOf(t, o, values)
		n := o.AZs
		if o.VPCID != "" {
			n = len(o.SubnetIDs)
		}
		for i := 0; i < n; i++ {
			subnet := values[fmt.Sprintf("PublicSubnet%d", i)]
			if o.VPCID != "" {
				subnet = o.SubnetIDs[i]
			}
			if want := fmt.Sprintf("'%s') group='InstanceGroup%d' ;;", subnet, i); !strings.Contains(script, want) {
				t.Errorf("%s: the user data lacks %s", vname, want)
			}
		}
		if strings.Count(script, "') group='") != n || !strings.Contains(script, "--stack-name 'pay'") {
			t.Errorf("%s: groups or stack name wrong in the signal part", vname)
		}
	}
}
