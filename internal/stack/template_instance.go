package stack

import (
	"fmt"
	"net/url"
	"slices"
	"strings"

	cf "github.com/awslabs/goformation/v7/cloudformation"
	"github.com/awslabs/goformation/v7/cloudformation/autoscaling"
	"github.com/awslabs/goformation/v7/cloudformation/cloudwatch"
	"github.com/awslabs/goformation/v7/cloudformation/ec2"
	"github.com/awslabs/goformation/v7/cloudformation/iam"
	"github.com/awslabs/goformation/v7/cloudformation/logs"
	"github.com/awslabs/goformation/v7/cloudformation/policies"
	"github.com/awslabs/goformation/v7/cloudformation/tags"

	"github.com/outgate/outgate/internal/bootstrap"
	"github.com/outgate/outgate/internal/claim"
	"github.com/outgate/outgate/internal/hostname"
	"github.com/outgate/outgate/internal/instance"
	"github.com/outgate/outgate/internal/preflight"
)

// InstanceOptions shape --mode instance: per AZ an Auto Scaling group of
// one arm64 instance running `outgate instance run` in a public subnet.
type InstanceOptions struct {
	Type string // --instance-type, default preflight.DefaultInstanceType
	// AllowFrom are the blocks the security group admits on 443 (default
	// anywhere: the key authenticates every request).
	AllowFrom []string
	// Domain gets its certificate from an ACME CA (ACMECA, Let's Encrypt
	// when empty; ACMEEmail for its notices); without it the instances
	// serve a certificate from the deployment's own CA.
	Domain, ACMECA, ACMEEmail string
}

// Parameters and outputs of the instance-mode stack.
const (
	// RootVolumeGB is the instance's root volume: the size of the Amazon
	// Linux 2023 AMI's snapshot (8 GiB); the gateway writes only its state
	// (idempotency records, the config as last read) and the journal.
	// internal/pricing prices it.
	RootVolumeGB = 8

	// ParamCreateInstanceLogs is false when /outgate/<stack>/instance
	// exists already (kept from an earlier stack): creating it would fail.
	ParamCreateInstanceLogs = "CreateInstanceLogGroup"
	ParamBinaryKey          = "BinaryKey"
	ParamBinarySHA256       = "BinarySha256"
	ParamAMI                = "AmiId"
	ParamInstanceType       = "InstanceType"
	ParamDomain             = "Domain"
	ParamACMECA             = "AcmeCa"
	ParamACMEEmail          = "AcmeEmail"
	OutputAutoScaling       = "AutoScalingGroups"
	OutputInstanceLogs      = "InstanceLogGroup"
	// instanceAdminListen is the instance's admin listener: loopback only,
	// never in the security group.
	instanceAdminListen = "127.0.0.1:9901"
	instanceStateDir    = "/var/lib/outgate" // StateDirectory=outgate
	// Metrics the instances emit (EMF, namespace Outgate, by Deployment and AZ).
	MetricInstanceReady = "InstanceReady"
	MetricEgressWrongIP = "EgressWrongIP"
)

// InstanceLogGroup is where a deployment's instances send their log,
// audit and EMF lines (one stream per instance id).
func InstanceLogGroup(name string) string { return "/outgate/" + name + "/instance" }

// CertPrefix is the S3 prefix (in the staging bucket) holding an
// instance-mode deployment's ACME certificates, shared by its instances.
func CertPrefix(name string) string { return name + "/certs/" }

// normalizeInstance fills instance mode's defaults and refuses what it
// cannot do, before any AWS call.
func (o *TemplateOptions) normalizeInstance() error {
	io := &o.Instance
	if io.Type == "" {
		io.Type = preflight.DefaultInstanceType
	}
	switch {
	case o.Arch != "arm64":
		return fmt.Errorf("--arch %s: instance mode runs arm64 (Graviton) instances only", o.Arch)
	case len(o.Endpoints) > 0 || o.SharedNAT:
		return fmt.Errorf("--endpoints and --shared-nat apply to --mode nat (instances run in public subnets)")
	case o.Front != "url":
		return fmt.Errorf("--front applies to the relay function's modes: instances serve relay and proxy on :443 themselves")
	case o.AZs < 1 || o.AZs > MaxAZs:
		return fmt.Errorf("--azs must be 1, 2 or 3, got %d", o.AZs)
	case (o.VPCID == "") != (len(o.SubnetIDs) == 0):
		return fmt.Errorf("--vpc-id and --subnet-ids go together")
	case o.VPCID != "" && len(o.SubnetIDs) != o.AZs:
		return fmt.Errorf("--azs %d but %d subnet ids", o.AZs, len(o.SubnetIDs))
	}
	if err := preflight.InstanceTypeName(io.Type); err != nil {
		return err
	}
	blocks, err := preflight.AllowFrom(io.AllowFrom)
	if err != nil {
		return err
	}
	io.AllowFrom = io.AllowFrom[:0]
	for _, p := range blocks {
		io.AllowFrom = append(io.AllowFrom, p.String())
	}
	if io.Domain != "" {
		if d, err := hostname.Normalize(io.Domain); err != nil || d != io.Domain || !strings.Contains(d, ".") {
			return fmt.Errorf("--domain %q is not a DNS name such as gw.example.com (lower case, no trailing dot)", io.Domain)
		}
	} else if io.ACMECA != "" || io.ACMEEmail != "" {
		return fmt.Errorf("--acme-ca and --acme-email apply with --domain (without one the deployment's own CA signs)")
	}
	if io.ACMECA != "" {
		if u, err := url.Parse(io.ACMECA); err != nil || u.Scheme != "https" || u.Host == "" {
			return fmt.Errorf("--acme-ca %q is not an https:// ACME directory URL", io.ACMECA)
		}
	}
	if io.Domain != "" && !slices.Contains(io.AllowFrom, "0.0.0.0/0") && letsEncrypt(io.ACMECA) {
		// The instances prove the domain with TLS-ALPN-01 on 443, so the CA
		// must reach 443 over IPv4 (the name has A records only). Let's
		// Encrypt does not publish the addresses it validates from and
		// changes them without notice (letsencrypt.org/docs/faq, "What IP
		// addresses does Let's Encrypt use to validate my web server?";
		// Integration Guide, "Firewall Configuration"): with a narrower
		// --allow-from the first certificate and every renewal would fail.
		return fmt.Errorf("--allow-from %s with --domain: Let's Encrypt checks the domain by connecting to port 443 from addresses it does not publish, so the certificate could never be issued or renewed; "+
			"drop --allow-from (the key authenticates every request), or drop --domain and let callers trust the deployment's own CA (outgate ca)", strings.Join(io.AllowFrom, ","))
	}
	if io.ACMEEmail != "" && !validEmail(io.ACMEEmail) {
		return fmt.Errorf("--acme-email %q is not an email address", io.ACMEEmail)
	}
	return o.checkShared()
}

// letsEncrypt: the ACME directory is Let's Encrypt's (the default, or its
// staging). Another CA (--acme-ca) may validate from addresses the
// operator knows and admits.
func letsEncrypt(dir string) bool {
	if dir == "" {
		return true
	}
	u, err := url.Parse(dir)
	return err == nil && (u.Hostname() == "letsencrypt.org" || strings.HasSuffix(u.Hostname(), ".letsencrypt.org"))
}

// instanceTemplate builds the instance-mode stack on options Normalize
// accepted. The VPC and its public subnets are the same resources as eni
// mode's (same logical ids and properties), so switching between the two
// keeps the subnets, and with them the IPs' outgate:subnet tags.
func instanceTemplate(o TemplateOptions) *cf.Template {
	t := cf.NewTemplate()
	t.Description = fmt.Sprintf("outgate: a static outbound IP, HTTPS proxy and relay on instances (mode instance, %d AZ, %s)", o.AZs, o.Instance.Type)
	b := &builder{t: t, o: o}
	b.instanceParameters()
	b.network()
	b.instanceSecurityGroup()
	b.ips()
	b.instanceRole()
	b.instanceLogGroup()
	b.launchTemplate()
	for i := 0; i < o.AZs; i++ {
		b.autoScalingGroup(i)
	}
	b.alarmTopic()
	b.instanceAlarms()
	t.Outputs[OutputSecurityGrp] = cf.Output{Value: cf.Ref("InstanceSecurityGroup")}
	t.Outputs[OutputSubnets] = cf.Output{Value: cf.Join(",", b.relayIn)}
	var asgs []string
	for i := 0; i < o.AZs; i++ {
		asgs = append(asgs, cf.Ref(fmt.Sprintf("InstanceGroup%d", i)))
	}
	t.Outputs[OutputAutoScaling] = cf.Output{Value: cf.Join(",", asgs)}
	t.Outputs[OutputInstanceLogs] = cf.Output{Value: cf.Sub("/outgate/${AWS::StackName}/instance")}
	return t
}

func (b *builder) instanceParameters() {
	p := b.t.Parameters
	p[ParamCodeBucket] = cf.Parameter{Type: "String", Description: cf.String("S3 bucket holding the outgate binary (and, with a domain, the certificates)")}
	p[ParamBinaryKey] = cf.Parameter{Type: "String", Description: cf.String("S3 key of the linux/arm64 outgate binary"),
		AllowedPattern: cf.String("^[A-Za-z0-9][A-Za-z0-9._/-]*$")}
	p[ParamBinarySHA256] = cf.Parameter{Type: "String", Description: cf.String("SHA-256 of the binary (hex): an instance refuses any other"),
		AllowedPattern: cf.String("^[0-9a-f]{64}$")}
	p[ParamConfig] = cf.Parameter{Type: "String", Description: cf.String("SSM parameter (String or SecureString) holding the outgate YAML config"),
		AllowedPattern: cf.String("^/[A-Za-z0-9_./-]+$")}
	// Resolved by CloudFormation on every create and update: the current
	// Amazon Linux 2023 arm64 AMI (bootstrap.AMIParameter says where the
	// path comes from).
	p[ParamAMI] = cf.Parameter{Type: "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>", Default: bootstrap.AMIParameter,
		Description: cf.String("The AMI: AWS's public SSM parameter for the latest Amazon Linux 2023 arm64")}
	p[ParamInstanceType] = cf.Parameter{Type: "String", Default: b.o.Instance.Type, AllowedPattern: cf.String("^[a-z][a-z0-9-]*\\.[a-z0-9]+$"),
		Description: cf.String("An arm64 (Graviton) instance type")}
	p[ParamEIPs] = cf.Parameter{Type: "CommaDelimitedList", Default: "",
		Description: cf.String(fmt.Sprintf("Elastic IP allocation ids, one per AZ (%d), tagged outgate:deployment=<stack name> and outgate:subnet=<its subnet>; empty creates them, retained on delete", b.o.AZs))}
	b.t.Conditions[condCreateEIPs] = cf.Equals(cf.Join("", cf.Ref(ParamEIPs)), "")
	p[ParamCreateInstanceLogs] = cf.Parameter{Type: "String", Default: "true", AllowedValues: []any{"true", "false"},
		Description: cf.String("false when the log group /outgate/<stack>/instance already exists (kept from an earlier stack): the instances log there")}
	b.t.Conditions[ParamCreateInstanceLogs] = cf.Equals(cf.Ref(ParamCreateInstanceLogs), "true")
	if b.o.VPCID != "" {
		p[ParamPublicAZs] = cf.Parameter{Type: "List<AWS::EC2::AvailabilityZone::Name>",
			Description: cf.String("The availability zones of the subnets, in the same order (the alarms are per AZ)")}
	}
	if d := b.o.Instance; d.Domain != "" {
		p[ParamDomain] = cf.Parameter{Type: "String", Default: d.Domain, Description: cf.String("The DNS name callers use; it must resolve to the deployment's IPs")}
		ca := d.ACMECA
		if ca == "" {
			ca = "https://acme-v02.api.letsencrypt.org/directory"
		}
		p[ParamACMECA] = cf.Parameter{Type: "String", Default: ca, Description: cf.String("The ACME directory the certificate comes from")}
		if d.ACMEEmail != "" {
			p[ParamACMEEmail] = cf.Parameter{Type: "String", Default: d.ACMEEmail, Description: cf.String("Contact for the ACME account (expiry notices)")}
		}
	}
}

// az is the i-th AZ's name: that of the i-th public subnet.
func (b *builder) az(i int) string {
	if b.o.VPCID != "" {
		return cf.Select(i, cf.Ref(ParamPublicAZs))
	}
	return azName(i)
}

// instanceSecurityGroup admits HTTPS (relay and proxy on one listener) from
// --allow-from only; never the admin listener (loopback), never SSH (Session
// Manager is the way in). ACME uses the TLS-ALPN-01 challenge on 443, so 80
// stays closed. Egress: any TCP (the gateway's policy decides).
func (b *builder) instanceSecurityGroup() {
	var in []ec2.SecurityGroup_Ingress
	for _, c := range b.o.Instance.AllowFrom {
		r := ec2.SecurityGroup_Ingress{IpProtocol: "tcp", FromPort: cf.Int(443), ToPort: cf.Int(443), Description: cf.String("callers: relay and proxy over TLS")}
		if strings.Contains(c, ":") {
			r.CidrIpv6 = cf.String(c)
		} else {
			r.CidrIp = cf.String(c)
		}
		in = append(in, r)
	}
	b.add("InstanceSecurityGroup", &ec2.SecurityGroup{
		GroupDescription:     "outgate instances: HTTPS in from allowed callers, TCP out",
		VpcId:                cf.String(b.vpc),
		SecurityGroupIngress: in,
		SecurityGroupEgress: []ec2.SecurityGroup_Egress{
			{IpProtocol: "tcp", FromPort: cf.Int(1), ToPort: cf.Int(65535), CidrIp: cf.String("0.0.0.0/0"), Description: cf.String("partners and AWS APIs, any TCP port (the gateway policy decides)")},
			{IpProtocol: "tcp", FromPort: cf.Int(1), ToPort: cf.Int(65535), CidrIpv6: cf.String("::/0")},
		},
		Tags: []tags.Tag{deploymentTag()},
	})
}

func arn(service, resource string) string {
	return cf.Sub("arn:${AWS::Partition}:" + service + ":${AWS::Region}:${AWS::AccountId}:" + resource)
}

// grantPlaceholders map claim.Grant's ARN placeholders to the stack's
// pseudo parameters and parameters (inside Fn::Sub).
var grantPlaceholders = strings.NewReplacer("${Partition}", "${AWS::Partition}", "${Region}", "${AWS::Region}",
	"${Account}", "${AWS::AccountId}", "${ConfigParameterPath}", "${"+ParamConfig+"}")

// grantStatements renders the instance side's declared IAM (claim.Grants,
// instance.Grants: each package's sdk.go holds its calls and their grants,
// and its iam_test.go holds those to AWS's Service Authorization
// Reference) as the role's statements, so the role is what the instance
// calls, neither less nor more. A placeholder this cannot fill is a bug in
// a Grant: it panics, and every template test fails.
func (b *builder) grantStatements(grants ...[]claim.Grant) []map[string]any {
	var subnetArns []string
	for _, s := range b.relayIn {
		subnetArns = append(subnetArns, cf.Join("", []string{arn("ec2", "subnet/"), s}))
	}
	var out []map[string]any
	for _, list := range grants {
		for _, g := range list {
			st := map[string]any{"Effect": "Allow", "Action": g.Action, "Resource": "*"}
			if g.Resource != "*" {
				r := grantPlaceholders.Replace(g.Resource)
				if strings.Contains(strings.NewReplacer("${AWS::Partition}", "", "${AWS::Region}", "", "${AWS::AccountId}", "", "${"+ParamConfig+"}", "").Replace(r), "${") {
					panic(fmt.Sprintf("stack: grant %s: unknown placeholder in %q", g.Action, g.Resource))
				}
				st["Resource"] = cf.Sub(r)
			}
			if len(g.Condition) > 0 {
				eq := map[string]any{}
				for k, v := range g.Condition {
					switch v {
					case "${Deployment}":
						eq[k] = cf.Ref("AWS::StackName")
					case "${SubnetArns}":
						eq[k] = subnetArns
					default:
						panic(fmt.Sprintf("stack: grant %s: condition %s = %q is no known placeholder", g.Action, k, v))
					}
				}
				st["Condition"] = map[string]any{"StringEquals": eq}
			}
			out = append(out, st)
		}
	}
	return out
}

// instanceRole holds exactly the calls an instance makes: the claim and
// its own replacement (claim.Grants), the config parameter
// (instance.Grants), the CA parameters, the binary and the certificates in
// S3, its log group (internal/cwlogs), the config's secrets, and Session
// Manager.
func (b *builder) instanceRole() {
	bucket := cf.Sub("arn:${AWS::Partition}:s3:::${" + ParamCodeBucket + "}")
	stmts := b.grantStatements(claim.Grants)
	stmts = append(stmts,
		// The binary (user data), nothing else of the bucket but the certificates.
		map[string]any{"Effect": "Allow", "Action": "s3:GetObject", "Resource": cf.Sub("arn:${AWS::Partition}:s3:::${" + ParamCodeBucket + "}/${" + ParamBinaryKey + "}")},
		map[string]any{"Effect": "Allow", "Action": []any{"logs:CreateLogStream", "logs:PutLogEvents"}, "Resource": arn("logs", "log-group:/outgate/${AWS::StackName}/instance:*")},
		// The user data's readiness signal to a rolling update, on this
		// stack only.
		map[string]any{"Effect": "Allow", "Action": "cloudformation:SignalResource", "Resource": arn("cloudformation", "stack/${AWS::StackName}/*")},
	)
	stmts = append(stmts, b.grantStatements(instance.Grants)...)
	if b.o.Instance.Domain != "" {
		// certmagic's storage: read, write, delete and list its prefix
		// (its locks are objects too).
		prefix := "${AWS::StackName}/certs/"
		stmts = append(stmts,
			map[string]any{"Effect": "Allow", "Action": []any{"s3:GetObject", "s3:PutObject", "s3:DeleteObject"},
				"Resource": cf.Sub("arn:${AWS::Partition}:s3:::${" + ParamCodeBucket + "}/" + prefix + "*")},
			map[string]any{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": bucket,
				"Condition": map[string]any{"StringLike": map[string]any{"s3:prefix": cf.Sub(prefix + "*")}}})
	} else {
		// The deployment's own CA: the certificate and (SecureString,
		// decrypted through SSM with the aws/ssm key) its private key.
		stmts = append(stmts, map[string]any{"Effect": "Allow", "Action": "ssm:GetParameter",
			"Resource": []any{arn("ssm", "parameter/outgate/${AWS::StackName}/ca/cert"), arn("ssm", "parameter/outgate/${AWS::StackName}/ca/key")}})
	}
	pols := []iam.Role_Policy{{PolicyName: "outgate-instance", PolicyDocument: policy(stmts...)}}
	if p := secretsPolicy(b.o.Secrets); p != nil {
		pols = append(pols, *p)
	}
	b.add("InstanceRole", &iam.Role{
		AssumeRolePolicyDocument: assumeRole("ec2.amazonaws.com"),
		// Session Manager instead of SSH: no key pair, no port 22.
		ManagedPolicyArns: []string{cf.Sub("arn:${AWS::Partition}:iam::aws:policy/AmazonSSMManagedInstanceCore")},
		Policies:          pols,
		Tags:              []tags.Tag{deploymentTag()},
	})
	b.add("InstanceProfile", &iam.InstanceProfile{Roles: []string{cf.Ref("InstanceRole")}})
}

// instanceLogGroup is kept on delete, like the functions' (down
// --delete-logs removes it).
func (b *builder) instanceLogGroup() {
	b.add("InstanceLogGroup", &logs.LogGroup{LogGroupName: cf.SubPtr("/outgate/${AWS::StackName}/instance"),
		RetentionInDays: cf.Int(b.o.LogRetentionDays), Tags: []tags.Tag{deploymentTag()},
		AWSCloudFormationCondition:           ParamCreateInstanceLogs,
		AWSCloudFormationDeletionPolicy:      policies.DeletionPolicy("Retain"),
		AWSCloudFormationUpdateReplacePolicy: policies.UpdateReplacePolicy("Retain")})
}

// userData renders the first-boot script with the stack's references; the
// instance finds its own AZ, subnet and IP at boot, so every AZ runs the
// same script (and one launch template).
func (b *builder) userData() string {
	s := instance.Settings{
		Deployment: "${AWS::StackName}", Region: "${AWS::Region}",
		ConfigParameter: "${" + ParamConfig + "}", StateDir: instanceStateDir,
		Listen: ":443", AdminListen: instanceAdminListen,
		LogGroup: "/outgate/${AWS::StackName}/instance",
	}
	if b.o.Instance.Domain != "" {
		s.Domain, s.ACMECA, s.CertBucket, s.CertPrefix = "${"+ParamDomain+"}", "${"+ParamACMECA+"}", "${"+ParamCodeBucket+"}", "${AWS::StackName}/certs/"
		if b.o.Instance.ACMEEmail != "" {
			s.ACMEEmail = "${" + ParamACMEEmail + "}"
		}
	} else {
		s.CACertParameter, s.CAKeyParameter = "/outgate/${AWS::StackName}/ca/cert", "/outgate/${AWS::StackName}/ca/key"
	}
	// Each AZ's group and its one subnet, for the readiness signal a
	// rolling update waits on (autoScalingGroup).
	var groups []bootstrap.Group
	for i := 0; i < b.o.AZs; i++ {
		g := bootstrap.Group{Subnet: fmt.Sprintf("${PublicSubnet%d}", i), LogicalID: fmt.Sprintf("InstanceGroup%d", i)}
		if b.o.VPCID != "" {
			g.Subnet = b.o.SubnetIDs[i]
		}
		groups = append(groups, g)
	}
	script, err := bootstrap.UserData(bootstrap.Input{Region: "${AWS::Region}", Bucket: "${" + ParamCodeBucket + "}",
		Key: "${" + ParamBinaryKey + "}", SHA256: "${" + ParamBinarySHA256 + "}", Settings: s,
		Stack: "${AWS::StackName}", Groups: groups}, bootstrap.DefaultLayout())
	if err != nil {
		// Only placeholders and constants go in: a failure is a bug here.
		panic(err)
	}
	return cf.Base64(cf.Sub(script))
}

// launchTemplate: IMDSv2 only with a hop limit of 1 (no container or
// proxied process on the instance can reach the role's credentials), no
// key pair, an encrypted gp3 root, a public address for the seconds
// before the instance claims its Elastic IP (it needs one to reach AWS's
// APIs in a subnet without NAT; associating the Elastic IP releases it).
func (b *builder) launchTemplate() {
	deployment := []tags.Tag{deploymentTag()}
	b.add("InstanceLaunchTemplate", &ec2.LaunchTemplate{
		LaunchTemplateData: &ec2.LaunchTemplate_LaunchTemplateData{
			ImageId:            cf.RefPtr(ParamAMI),
			InstanceType:       cf.RefPtr(ParamInstanceType),
			IamInstanceProfile: &ec2.LaunchTemplate_IamInstanceProfile{Arn: cf.GetAttPtr("InstanceProfile", "Arn")},
			MetadataOptions: &ec2.LaunchTemplate_MetadataOptions{HttpEndpoint: cf.String("enabled"), HttpTokens: cf.String("required"),
				HttpPutResponseHopLimit: cf.Int(1), InstanceMetadataTags: cf.String("disabled")},
			BlockDeviceMappings: []ec2.LaunchTemplate_BlockDeviceMapping{{DeviceName: cf.String("/dev/xvda"),
				Ebs: &ec2.LaunchTemplate_Ebs{VolumeType: cf.String("gp3"), VolumeSize: cf.Int(RootVolumeGB), Encrypted: cf.Bool(true), DeleteOnTermination: cf.Bool(true)}}},
			NetworkInterfaces: []ec2.LaunchTemplate_NetworkInterface{{DeviceIndex: cf.Int(0), AssociatePublicIpAddress: cf.Bool(true),
				Groups: []string{cf.Ref("InstanceSecurityGroup")}, DeleteOnTermination: cf.Bool(true)}},
			UserData: cf.String(b.userData()),
			TagSpecifications: []ec2.LaunchTemplate_TagSpecification{
				{ResourceType: cf.String("volume"), Tags: deployment},
				{ResourceType: cf.String("network-interface"), Tags: deployment},
			},
		},
		TagSpecifications: []ec2.LaunchTemplate_LaunchTemplateTagSpecification{{ResourceType: cf.String("launch-template"), Tags: deployment}},
	})
}

// autoScalingGroup is AZ i's group of exactly one instance. It carries and
// propagates outgate:deployment (the claim's IAM scope and the instance's
// own lookups depend on it). EC2 health checks replace a failed instance;
// the instance itself reports an unhealthy one (wrong or no egress IP), so
// the grace period only covers the boot. A launch template change (a new
// binary, a new AMI) replaces the one instance, one AZ at a time (each
// group waits for the one before it). CloudFormation waits for the new
// instance's signal, which its user data sends once the gateway is ready
// (IP claimed, egress verified), for up to PauseTime; without it the
// update fails and rolls back, so a release that never becomes ready stops
// at the first AZ instead of reaching every AZ (without signals
// CloudFormation only pauses and goes on: CloudFormation User Guide,
// UpdatePolicy attribute, AutoScalingRollingUpdate WaitOnResourceSignals
// and PauseTime). 15 minutes cover a boot, the download and the 10 minutes
// after which an instance that cannot verify its egress reports itself
// unhealthy.
func (b *builder) autoScalingGroup(i int) {
	name := fmt.Sprintf("InstanceGroup%d", i)
	var after []string
	if i > 0 {
		after = []string{fmt.Sprintf("InstanceGroup%d", i-1)}
	}
	if b.o.VPCID == "" {
		// A new VPC's way out must exist before the instance boots: its
		// user data fetches the binary from S3 over the internet.
		after = append(after, "PublicDefaultRoute", fmt.Sprintf("PublicSubnet%dRoutes", i))
	}
	b.add(name, &autoscaling.AutoScalingGroup{
		MinSize: "1", MaxSize: "1", DesiredCapacity: cf.String("1"),
		VPCZoneIdentifier: []string{b.relayIn[i]},
		LaunchTemplate: &autoscaling.AutoScalingGroup_LaunchTemplateSpecification{LaunchTemplateId: cf.RefPtr("InstanceLaunchTemplate"),
			Version: cf.GetAtt("InstanceLaunchTemplate", "LatestVersionNumber")},
		HealthCheckType: cf.String("EC2"), HealthCheckGracePeriod: cf.Int(60),
		Tags: []autoscaling.AutoScalingGroup_TagProperty{
			{Key: "outgate:deployment", Value: cf.Ref("AWS::StackName"), PropagateAtLaunch: true},
			{Key: "Name", Value: cf.Sub(fmt.Sprintf("${AWS::StackName}-%d", i)), PropagateAtLaunch: true},
		},
		AWSCloudFormationUpdatePolicy: &policies.UpdatePolicy{AutoScalingRollingUpdate: &policies.AutoScalingRollingUpdate{
			MaxBatchSize: 1, MinInstancesInService: 0, PauseTime: "PT15M", WaitOnResourceSignals: true}},
		AWSCloudFormationDependsOn: after,
	})
}

// instanceAlarms: per AZ, no ready instance for 3 minutes (InstanceReady,
// which every egress check emits once a minute, below 1 or missing: a
// missing instance reports nothing), and any egress check that found a
// wrong IP (EgressWrongIP above 0 in a minute).
func (b *builder) instanceAlarms() {
	for i := 0; i < b.o.AZs; i++ {
		dims := []cloudwatch.Alarm_Dimension{{Name: "Deployment", Value: cf.Ref("AWS::StackName")}, {Name: "AZ", Value: b.az(i)}}
		b.alarm(fmt.Sprintf("NoReadyInstance%dAlarm", i), &cloudwatch.Alarm{
			AlarmDescription: cf.String(fmt.Sprintf("outgate: no ready instance in AZ %d for 3 minutes (no instance, or its egress IP unverified); its Auto Scaling group replaces a failed one", i)),
			Namespace:        cf.String("Outgate"), MetricName: cf.String(MetricInstanceReady), Dimensions: dims,
			Statistic: cf.String("Maximum"), Period: cf.Int(60), EvaluationPeriods: 3, DatapointsToAlarm: cf.Int(3),
			Threshold: cf.Float64(1), ComparisonOperator: "LessThanThreshold", TreatMissingData: cf.String("breaching"),
		})
		b.alarm(fmt.Sprintf("EgressWrongIp%dAlarm", i), &cloudwatch.Alarm{
			AlarmDescription: cf.String(fmt.Sprintf("outgate: an instance in AZ %d found its calls leaving from an IP not among the deployment's (it stopped serving at once)", i)),
			Namespace:        cf.String("Outgate"), MetricName: cf.String(MetricEgressWrongIP), Dimensions: dims,
			Statistic: cf.String("Sum"), Period: cf.Int(60), EvaluationPeriods: 1, DatapointsToAlarm: cf.Int(1),
			Threshold: cf.Float64(0), ComparisonOperator: "GreaterThanThreshold", TreatMissingData: cf.String("notBreaching"),
		})
	}
}
