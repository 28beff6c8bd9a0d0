// Package stack builds the CloudFormation template of a deployment (behind
// `outgate template` and `outgate up`): its parameters, resources, alarms,
// IAM policies, tags and the names they derive from the deployment's name.
// It makes no AWS call; internal/deploy runs it.
package stack

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	cf "github.com/awslabs/goformation/v7/cloudformation"
	"github.com/awslabs/goformation/v7/cloudformation/apigatewayv2"
	"github.com/awslabs/goformation/v7/cloudformation/cloudwatch"
	"github.com/awslabs/goformation/v7/cloudformation/ec2"
	"github.com/awslabs/goformation/v7/cloudformation/iam"
	"github.com/awslabs/goformation/v7/cloudformation/lambda"
	"github.com/awslabs/goformation/v7/cloudformation/logs"
	"github.com/awslabs/goformation/v7/cloudformation/policies"
	"github.com/awslabs/goformation/v7/cloudformation/scheduler"
	"github.com/awslabs/goformation/v7/cloudformation/sns"
	"github.com/awslabs/goformation/v7/cloudformation/tags"

	"github.com/outgate/outgate/internal/attached"
	"github.com/outgate/outgate/internal/guardian"
	"github.com/outgate/outgate/internal/secrets"
)

// TemplateOptions choose the shape of the stack.
type TemplateOptions struct {
	Mode      string   `json:"m"`           // "eni" (default), "nat" or "instance"
	AZs       int      `json:"z"`           // 1-3, default 1
	VPCID     string   `json:"v,omitempty"` // an existing VPC ...
	SubnetIDs []string `json:"s,omitempty"` // ... and its public subnets, one per AZ (the relay's in eni mode, the NAT gateways' in nat mode)
	Endpoints []string `json:"e,omitempty"` // nat mode: VPC endpoints (s3, dynamodb: gateway; others: interface)
	Front     string   `json:"f"`           // "url" (Function URL, default) or "apigw" (HTTP API)
	SharedNAT bool     `json:"n,omitempty"` // nat mode: one NAT gateway for every AZ
	Arch      string   `json:"a"`           // arm64 (default) or x86_64 (relay and guardian alike)
	MemoryMB  int      `json:"r,omitempty"` // the relay's memory, default RelayMemoryMB
	VPCBlocks int      `json:"-"`           // existing VPC with interface endpoints: how many CIDR blocks it has (default 1)

	// Notify are email addresses the stack subscribes to its alarm topic;
	// NotifyTopic is an existing SNS topic to use instead of one of the
	// stack's own. Every alarm publishes to the one topic either way.
	Notify      []string `json:"-"`
	NotifyTopic string   `json:"-"`
	// LogRetentionDays is how long the log groups keep the functions' logs (0: 30).
	LogRetentionDays int `json:"-"`
	// RelayConcurrency is the default of the relay's reserved concurrency
	// (0: DefaultRelayConcurrency; NoRelayCap: no reservation).
	RelayConcurrency int `json:"-"`
	// Secrets are the config's ${secret:...} references: the relay's role
	// may read exactly these (secrets.go). They come from the config on
	// every `up`, not from the deployed shape.
	Secrets []secrets.Ref `json:"-"`
	// Instance shapes --mode instance (template_instance.go).
	Instance InstanceOptions `json:"-"`
}

// DefaultRelayConcurrency caps the relay's concurrent executions: enough for
// about 20 calls a second at 500 ms each, and a ceiling on what a flood of
// calls with bad keys can cost (see docs/deploy.md, "Cost guard").
const DefaultRelayConcurrency = 10

// RelayMemoryMB is the relay function's memory when --memory is not given.
const RelayMemoryMB = 256

// IsGatewayEndpoint: s3 and dynamodb are gateway endpoints (route-table
// entries, no charge); every other service is an interface endpoint.
func IsGatewayEndpoint(service string) bool { return service == "s3" || service == "dynamodb" }

// guardianErrorsMetric is the guardian's count of failures in a run, in
// namespace Outgate by Deployment.
const guardianErrorsMetric = "GuardianErrors"

// NoRelayCap asks for no reserved concurrency on the relay.
const NoRelayCap = -1

// DefaultLogRetentionDays is how long the functions' logs are kept.
const DefaultLogRetentionDays = 30

// logRetentionDays are the values CloudWatch Logs accepts for a retention
// (PutRetentionPolicy, "retentionInDays"; AWS::Logs::LogGroup RetentionInDays).
var logRetentionDays = []int{1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653}

// Normalize fills defaults and rejects impossible combinations.
func (o *TemplateOptions) Normalize() error {
	if o.Mode == "" {
		o.Mode = "eni"
	}
	if o.Front == "" {
		o.Front = "url"
	}
	if o.Arch == "" {
		o.Arch = "arm64"
	}
	if len(o.SubnetIDs) > 0 && o.AZs == 0 {
		o.AZs = len(o.SubnetIDs)
	}
	if o.AZs == 0 {
		o.AZs = 1
	}
	if o.LogRetentionDays == 0 {
		o.LogRetentionDays = DefaultLogRetentionDays
	}
	if o.RelayConcurrency == 0 {
		o.RelayConcurrency = DefaultRelayConcurrency
	}
	if o.MemoryMB == 0 {
		o.MemoryMB = RelayMemoryMB
	}
	if o.Mode == "instance" {
		return o.normalizeInstance()
	}
	switch {
	case o.Mode != "eni" && o.Mode != "nat":
		return fmt.Errorf("--mode must be eni, nat or instance, got %q", o.Mode)
	case o.Front != "url" && o.Front != "apigw":
		return fmt.Errorf("--front must be url or apigw, got %q", o.Front)
	case o.Arch != "arm64" && o.Arch != "x86_64":
		return fmt.Errorf("--arch must be arm64 or x86_64, got %q", o.Arch)
	case o.MemoryMB < 128 || o.MemoryMB > 10240:
		return fmt.Errorf("--memory must be from 128 to 10240 MB, got %d", o.MemoryMB)
	case o.AZs < 1 || o.AZs > MaxAZs:
		return fmt.Errorf("--azs must be 1, 2 or 3, got %d", o.AZs)
	case (o.VPCID == "") != (len(o.SubnetIDs) == 0):
		return fmt.Errorf("--vpc-id and --subnet-ids go together")
	case o.VPCID != "" && len(o.SubnetIDs) != o.AZs:
		return fmt.Errorf("--azs %d but %d subnet ids", o.AZs, len(o.SubnetIDs))
	case o.Mode == "eni" && len(o.Endpoints) > 0:
		return fmt.Errorf("--endpoints apply to --mode nat (in eni mode the relay's subnets are public)")
	}
	for _, e := range o.Endpoints {
		if !validEndpoint(e) {
			return fmt.Errorf("--endpoints: %q is not a service name such as s3, dynamodb, sqs", e)
		}
	}
	if o.RelayConcurrency < NoRelayCap || o.RelayConcurrency > 1000 {
		return fmt.Errorf("--relay-concurrency must be from 1 to 1000, or 0 for no cap, got %d", o.RelayConcurrency)
	}
	return o.checkShared()
}

// checkShared refuses the options every mode has (logs, secrets, who the
// alarms page) when they cannot work.
func (o *TemplateOptions) checkShared() error {
	if !slices.Contains(logRetentionDays, o.LogRetentionDays) {
		return fmt.Errorf("--log-retention-days must be one of %v (the values CloudWatch Logs accepts), got %d", logRetentionDays, o.LogRetentionDays)
	}
	if err := checkRelaySecrets(o.Secrets); err != nil {
		return err
	}
	if len(o.Notify) > 0 && o.NotifyTopic != "" {
		return fmt.Errorf("--notify and --notify-topic exclude each other: subscribe the addresses to your topic instead")
	}
	for _, e := range o.Notify {
		if !validEmail(e) {
			return fmt.Errorf("--notify: %q is not an email address", e)
		}
	}
	if o.NotifyTopic != "" && !snsTopicARN.MatchString(o.NotifyTopic) {
		return fmt.Errorf("--notify-topic: %q is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)", o.NotifyTopic)
	}
	return nil
}

// snsTopicARN: a topic name is 1-256 of A-Za-z0-9_- (.fifo topics cannot
// take alarm notifications). Source: Amazon SNS API Reference, CreateTopic, "Name".
var snsTopicARN = regexp.MustCompile(`^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,256}$`)

// validEmail is a sanity check, not RFC 5322: SNS itself sends the
// confirmation mail, and an address that cannot receive it never delivers.
func validEmail(s string) bool {
	at := strings.LastIndexByte(s, '@')
	if at < 1 || at == len(s)-1 || len(s) > 254 || strings.ContainsAny(s, " \t\r\n,;<>\"'") {
		return false
	}
	return strings.Contains(s[at+1:], ".")
}

func validEndpoint(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '.') {
			return false
		}
	}
	return true
}

// Logical names shared with the CLI (status, outputs).
const (
	ParamCodeBucket         = "CodeBucket"
	ParamRelayKey           = "RelayCodeKey"
	ParamGuardianKey        = "GuardianCodeKey"
	ParamConfig             = "ConfigParameterName"
	ParamEIPs               = "EipAllocationIds"
	ParamExpectedIPs        = "ExpectedIps"
	ParamAllowAlloc         = "AllowAllocate"
	ParamGuardianState      = "GuardianState"
	ParamPrivateCIDRs       = "PrivateSubnetCidrs" // nat mode in an existing VPC
	ParamPublicAZs          = "PublicSubnetAzs"    // ditto: the AZs of SubnetIDs
	ParamVPCCIDR            = "VpcCidr"            // ditto, with interface endpoints
	ParamLogRetention       = "LogRetentionDays"
	ParamCreateRelayLogs    = "CreateRelayLogGroup"    // false: the group exists (kept by an earlier stack)
	ParamCreateGuardianLogs = "CreateGuardianLogGroup" // ditto
	ParamRelayCap           = "RelayReservedConcurrency"
	ParamGuardianCap        = "GuardianReservedConcurrency"
	OutputAlarmTopic        = "AlarmTopicArn"
	OutputRelayURL          = "RelayUrl"
	OutputRelayName         = "RelayFunctionName"
	OutputGuardian          = "GuardianFunctionName"
	OutputSecurityGrp       = "SecurityGroupId"
	OutputSubnets           = "SubnetIds"
	condCreateEIPs          = "CreateEips"
	condRelayCapped         = "RelayCapped"
	condGuardianSerial      = "GuardianSerialised"
	MaxAZs                  = 3
	vpcCIDR                 = "10.42.0.0/16"
)

// Template builds the stack. It works on its own: with EipAllocationIds left
// empty it creates the Elastic IPs (DeletionPolicy Retain, so they outlive
// the stack), and in eni mode the guardian's schedule attaches them within
// a minute of the relay's ENIs appearing.
func Template(o TemplateOptions) (*cf.Template, error) {
	if err := o.Normalize(); err != nil {
		return nil, err
	}
	if o.Mode == "instance" {
		return instanceTemplate(o), nil
	}
	t := cf.NewTemplate()
	t.Description = fmt.Sprintf("outgate: a static outbound IP for serverless code (mode %s, %d AZ, front %s)", o.Mode, o.AZs, o.Front)
	b := &builder{t: t, o: o}
	b.parameters()
	b.network()
	b.ips()
	b.relay()
	if o.Mode == "eni" {
		b.guardian()
	}
	b.front()
	b.alarmTopic()
	b.alarms()
	return t, nil
}

type builder struct {
	t       *cf.Template
	o       TemplateOptions
	relayIn []string // subnets the relay runs in
	vpc     string   // Ref or literal VPC id
	topic   string   // where the alarms publish
}

func (b *builder) add(name string, r cf.Resource) { b.t.Resources[name] = r }

func deploymentTag() tags.Tag {
	return tags.Tag{Key: "outgate:deployment", Value: cf.Ref("AWS::StackName")}
}

func (b *builder) parameters() {
	p := b.t.Parameters
	p[ParamCodeBucket] = cf.Parameter{Type: "String", Description: cf.String("S3 bucket holding the function zips")}
	p[ParamRelayKey] = cf.Parameter{Type: "String", Description: cf.String("S3 key of the relay zip (bootstrap of cmd/outgate-relay)")}
	p[ParamConfig] = cf.Parameter{Type: "String", Description: cf.String("SSM parameter (String or SecureString) holding the outgate YAML config"),
		AllowedPattern: cf.String("^/[A-Za-z0-9_./-]+$")}
	p[ParamEIPs] = cf.Parameter{Type: "CommaDelimitedList", Default: "",
		Description: cf.String(fmt.Sprintf("Elastic IP allocation ids to use, one per AZ (%d), tagged outgate:deployment=<stack name>; empty creates them, retained on delete", b.o.AZs))}
	p[ParamExpectedIPs] = cf.Parameter{Type: "String", Default: "", Description: cf.String("The public IPs of EipAllocationIds, comma-separated (for the egress check); ignored when the stack creates the IPs")}
	b.t.Conditions[condCreateEIPs] = cf.Equals(cf.Join("", cf.Ref(ParamEIPs)), "")
	for param, fn := range map[string]string{ParamCreateRelayLogs: "relay", ParamCreateGuardianLogs: "guardian"} {
		if fn == "guardian" && b.o.Mode != "eni" {
			continue
		}
		p[param] = cf.Parameter{Type: "String", Default: "true", AllowedValues: []any{"true", "false"},
			Description: cf.String("false when the log group /aws/lambda/<stack>-" + fn + " already exists (kept from an earlier stack): the function logs there")}
		b.t.Conditions[param] = cf.Equals(cf.Ref(param), "true")
	}
	relayCap := b.o.RelayConcurrency
	if relayCap == NoRelayCap {
		relayCap = 0
	}
	p[ParamRelayCap] = cf.Parameter{Type: "Number", Default: strconv.Itoa(relayCap), MinValue: cf.Float64(0), MaxValue: cf.Float64(1000),
		Description: cf.String("The relay's reserved concurrency: a cap on what a flood of calls can cost; 0 reserves none (no cap)")}
	b.t.Conditions[condRelayCapped] = cf.Not([]string{cf.Equals(cf.Ref(ParamRelayCap), "0")})
	if b.o.Mode == "nat" && b.o.VPCID != "" {
		p[ParamPrivateCIDRs] = cf.Parameter{Type: "CommaDelimitedList",
			Description: cf.String(fmt.Sprintf("CIDR blocks for the relay's private subnets, one per AZ (%d), unused in the VPC", b.o.AZs))}
		p[ParamPublicAZs] = cf.Parameter{Type: "List<AWS::EC2::AvailabilityZone::Name>",
			Description: cf.String("The availability zones of the public subnets, in the same order (each private subnet goes in its NAT gateway's AZ)")}
		if b.o.InterfaceEndpoints() {
			p[ParamVPCCIDR] = cf.Parameter{Type: "CommaDelimitedList", Description: cf.String(fmt.Sprintf("The VPC's CIDR blocks (%d): interface endpoints admit HTTPS from all of them", max(1, b.o.VPCBlocks)))}
		}
	}
	if b.o.Mode == "eni" {
		p[ParamGuardianKey] = cf.Parameter{Type: "String", Description: cf.String("S3 key of the guardian zip (bootstrap of cmd/outgate-guardian)")}
		p[ParamGuardianState] = cf.Parameter{Type: "String", Default: "ENABLED", AllowedValues: []any{"ENABLED", "DISABLED"},
			Description: cf.String("The guardian's schedule; DISABLED pauses it")}
		p[ParamAllowAlloc] = cf.Parameter{Type: "String", Default: "false", AllowedValues: []any{"true", "false"},
			Description: cf.String("Let the guardian allocate a new IP when the pool is too small (a new IP is on nobody's allowlist)")}
		p[ParamGuardianCap] = cf.Parameter{Type: "Number", Default: "1", AllowedValues: []any{"1", "0"},
			Description: cf.String("1 runs one guardian at a time; 0 reserves nothing, for accounts whose concurrency quota cannot spare one")}
		b.t.Conditions[condGuardianSerial] = cf.Equals(cf.Ref(ParamGuardianCap), "1")
	}
}

func azName(i int) string { return cf.Select(i, cf.GetAZs("")) }

func (b *builder) network() {
	if b.o.VPCID != "" {
		b.vpc = b.o.VPCID
		if b.o.Mode == "eni" {
			b.relayIn = b.o.SubnetIDs
			b.securityGroup()
			return
		}
		if b.o.Mode == "instance" {
			// The instances run in the user's public subnets, which
			// outgate never changes.
			b.relayIn = b.o.SubnetIDs
			return
		}
		// nat mode: outgate adds private subnets with route tables of its
		// own, so the routes of the user's existing subnets are untouched.
		for i := 0; i < b.o.AZs; i++ {
			b.privateSubnet(i, cf.Select(i, cf.Ref(ParamPrivateCIDRs)), cf.Select(i, cf.Ref(ParamPublicAZs)), b.o.SubnetIDs[i], nil)
		}
		b.securityGroup()
		b.endpoints()
		return
	}
	b.vpc = cf.Ref("Vpc")
	b.add("Vpc", &ec2.VPC{CidrBlock: cf.String(vpcCIDR), EnableDnsHostnames: cf.Bool(true), EnableDnsSupport: cf.Bool(true),
		Tags: []tags.Tag{deploymentTag(), {Key: "Name", Value: cf.Ref("AWS::StackName")}}})
	b.add("InternetGateway", &ec2.InternetGateway{Tags: []tags.Tag{deploymentTag()}})
	b.add("GatewayAttachment", &ec2.VPCGatewayAttachment{VpcId: b.vpc, InternetGatewayId: cf.String(cf.Ref("InternetGateway"))})
	b.add("PublicRouteTable", &ec2.RouteTable{VpcId: b.vpc, Tags: []tags.Tag{deploymentTag()}})
	b.add("PublicDefaultRoute", &ec2.Route{RouteTableId: cf.Ref("PublicRouteTable"), DestinationCidrBlock: cf.String("0.0.0.0/0"),
		GatewayId: cf.String(cf.Ref("InternetGateway")), AWSCloudFormationDependsOn: []string{"GatewayAttachment"}})
	for i := 0; i < b.o.AZs; i++ {
		pub := fmt.Sprintf("PublicSubnet%d", i)
		b.add(pub, &ec2.Subnet{VpcId: b.vpc, CidrBlock: cf.String(fmt.Sprintf("10.42.%d.0/24", i)), AvailabilityZone: cf.String(azName(i)),
			Tags: []tags.Tag{deploymentTag()}})
		b.add(pub+"Routes", &ec2.SubnetRouteTableAssociation{SubnetId: cf.Ref(pub), RouteTableId: cf.Ref("PublicRouteTable")})
		if b.o.Mode != "nat" {
			b.relayIn = append(b.relayIn, cf.Ref(pub))
			continue
		}
		b.privateSubnet(i, fmt.Sprintf("10.42.%d.0/24", 10+i), azName(i), cf.Ref(pub), []string{"GatewayAttachment"})
	}
	if b.o.Mode == "instance" {
		return
	}
	b.securityGroup()
	b.endpoints()
}

// privateSubnet adds the i-th private subnet for the relay, its route table
// and its way out: a NAT gateway in the public subnet pub holding the i-th
// IP (or the first one, shared).
func (b *builder) privateSubnet(i int, cidr, az, pub string, natDependsOn []string) {
	priv := fmt.Sprintf("PrivateSubnet%d", i)
	rt := fmt.Sprintf("PrivateRouteTable%d", i)
	b.add(priv, &ec2.Subnet{VpcId: b.vpc, CidrBlock: cf.String(cidr), AvailabilityZone: cf.String(az),
		Tags: []tags.Tag{deploymentTag(), {Key: "Name", Value: cf.Sub(fmt.Sprintf("${AWS::StackName}-private-%d", i))}}})
	b.add(rt, &ec2.RouteTable{VpcId: b.vpc, Tags: []tags.Tag{deploymentTag()}})
	b.add(priv+"Routes", &ec2.SubnetRouteTableAssociation{SubnetId: cf.Ref(priv), RouteTableId: cf.Ref(rt)})
	nat := fmt.Sprintf("NatGateway%d", i)
	if b.o.SharedNAT {
		nat = "NatGateway0"
	}
	b.add(fmt.Sprintf("PrivateDefaultRoute%d", i), &ec2.Route{RouteTableId: cf.Ref(rt), DestinationCidrBlock: cf.String("0.0.0.0/0"),
		NatGatewayId: cf.String(cf.Ref(nat))})
	if i == 0 || !b.o.SharedNAT {
		b.add(nat, &ec2.NatGateway{SubnetId: pub, AllocationId: cf.String(b.allocationID(i)), Tags: []tags.Tag{deploymentTag()},
			AWSCloudFormationDependsOn: natDependsOn})
	}
	b.relayIn = append(b.relayIn, cf.Ref(priv))
}

// InterfaceEndpoints reports whether any endpoint is an interface one
// (those need a security group and, in an existing VPC, its CIDR).
func (o TemplateOptions) InterfaceEndpoints() bool {
	for _, e := range o.Endpoints {
		if !IsGatewayEndpoint(e) {
			return true
		}
	}
	return false
}

// securityGroup is egress-only: nothing may connect to the relay's ENIs.
func (b *builder) securityGroup() {
	b.add("RelaySecurityGroup", &ec2.SecurityGroup{
		GroupDescription: "outgate relay: egress only",
		VpcId:            cf.String(b.vpc),
		SecurityGroupEgress: []ec2.SecurityGroup_Egress{
			{IpProtocol: "tcp", FromPort: cf.Int(1), ToPort: cf.Int(65535), CidrIp: cf.String("0.0.0.0/0"), Description: cf.String("partners, any TCP port (the gateway policy decides)")},
			{IpProtocol: "tcp", FromPort: cf.Int(1), ToPort: cf.Int(65535), CidrIpv6: cf.String("::/0")},
		},
		Tags: []tags.Tag{deploymentTag()},
	})
}

// endpoints keeps AWS-service traffic off the NAT gateway. An interface
// endpoint's security group admits the whole VPC on 443: with private DNS on,
// the service's public name resolves to the endpoint for every client in the
// VPC, and a narrower rule silently cuts the others off.
func (b *builder) endpoints() {
	if len(b.o.Endpoints) == 0 {
		return
	}
	var routeTables []string
	for i := 0; i < b.o.AZs; i++ {
		routeTables = append(routeTables, cf.Ref(fmt.Sprintf("PrivateRouteTable%d", i)))
	}
	for _, e := range b.o.Endpoints {
		name := "Endpoint" + logical(e)
		svc := cf.Sub("com.amazonaws.${AWS::Region}." + e)
		if IsGatewayEndpoint(e) {
			b.add(name, &ec2.VPCEndpoint{VpcId: b.vpc, ServiceName: svc, VpcEndpointType: cf.String("Gateway"), RouteTableIds: routeTables})
			continue
		}
		b.add(name, &ec2.VPCEndpoint{VpcId: b.vpc, ServiceName: svc, VpcEndpointType: cf.String("Interface"),
			SubnetIds: b.relayIn, SecurityGroupIds: []string{cf.Ref("EndpointSecurityGroup")}, PrivateDnsEnabled: cf.Bool(true)})
	}
	if b.o.InterfaceEndpoints() {
		ingress := []ec2.SecurityGroup_Ingress{{IpProtocol: "tcp", FromPort: cf.Int(443), ToPort: cf.Int(443), CidrIp: cf.String(vpcCIDR)}}
		if b.o.VPCID != "" {
			// Every block of an existing VPC (secondary ones too).
			ingress = nil
			for i := 0; i < max(1, b.o.VPCBlocks); i++ {
				ingress = append(ingress, ec2.SecurityGroup_Ingress{IpProtocol: "tcp", FromPort: cf.Int(443), ToPort: cf.Int(443), CidrIp: cf.String(cf.Select(i, cf.Ref(ParamVPCCIDR)))})
			}
		}
		b.add("EndpointSecurityGroup", &ec2.SecurityGroup{GroupDescription: "outgate interface endpoints: HTTPS from the whole VPC",
			VpcId:                cf.String(b.vpc),
			SecurityGroupIngress: ingress,
			Tags:                 []tags.Tag{deploymentTag()}})
	}
}

func logical(s string) string {
	var out strings.Builder
	up := true
	for _, r := range s {
		if r == '-' || r == '.' {
			up = true
			continue
		}
		if up && r >= 'a' && r <= 'z' {
			r -= 'a' - 'A'
		}
		up = false
		out.WriteRune(r)
	}
	return out.String()
}

func (b *builder) eipCount() int {
	if b.o.Mode == "nat" && b.o.SharedNAT {
		return 1
	}
	return b.o.AZs
}

// allocationID is the i-th IP: created by the stack, or taken from the parameter.
func (b *builder) allocationID(i int) string {
	return cf.If(condCreateEIPs, cf.GetAtt(fmt.Sprintf("Eip%d", i), "AllocationId"), cf.Select(i, cf.Ref(ParamEIPs)))
}

// ips creates the Elastic IPs when none were given. They are retained on
// delete and on replacement: partners allowlist them, and losing one means
// weeks of paperwork.
func (b *builder) ips() {
	for i := 0; i < b.eipCount(); i++ {
		ipTags := []tags.Tag{deploymentTag()}
		if b.o.Mode == "instance" {
			// The subnet an IP serves: an instance claims the IP tagged
			// with its own subnet.
			ipTags = append(ipTags, tags.Tag{Key: guardian.TagSubnet, Value: b.relayIn[i]})
		}
		b.add(fmt.Sprintf("Eip%d", i), &ec2.EIP{Domain: cf.String("vpc"), Tags: ipTags,
			AWSCloudFormationCondition:           condCreateEIPs,
			AWSCloudFormationDeletionPolicy:      policies.DeletionPolicy("Retain"),
			AWSCloudFormationUpdateReplacePolicy: policies.UpdateReplacePolicy("Retain")})
	}
}

func (b *builder) expectedIPs() string {
	var ips []string
	for i := 0; i < b.eipCount(); i++ {
		ips = append(ips, cf.GetAtt(fmt.Sprintf("Eip%d", i), "PublicIp"))
	}
	return cf.If(condCreateEIPs, cf.Join(",", ips), cf.Ref(ParamExpectedIPs))
}

func assumeRole(service string) map[string]any {
	return map[string]any{"Version": "2012-10-17", "Statement": []any{map[string]any{
		"Effect": "Allow", "Principal": map[string]any{"Service": service}, "Action": "sts:AssumeRole"}}}
}

func policy(statements ...map[string]any) map[string]any {
	list := make([]any, len(statements))
	for i, s := range statements {
		list[i] = s
	}
	return map[string]any{"Version": "2012-10-17", "Statement": list}
}

func arch(o TemplateOptions) []string { return []string{o.Arch} }

// Function names are fixed, not generated, so each function's log group
// (/aws/lambda/<function>) can be made, with its retention, before the
// function first runs and makes one of its own without. ValidateName keeps
// <deployment>-guardian within Lambda's 64 characters.
const (
	RelaySuffix    = "-relay"
	GuardianSuffix = "-guardian"
)

// logGroup adds the log group of the function named <stack><suffix> and
// returns what the function's LoggingConfig names: the group made here, or,
// when its Create...LogGroup parameter is false, the one already there
// (creating a group that exists fails). Retained on delete: `down` removes
// them only when asked (--delete-logs).
func (b *builder) logGroup(logicalFn, suffix, cond string) string {
	name := cf.Sub("/aws/lambda/${AWS::StackName}" + suffix)
	b.add(logicalFn+"LogGroup", &logs.LogGroup{LogGroupName: cf.String(name), RetentionInDays: cf.Int(b.o.LogRetentionDays), Tags: []tags.Tag{deploymentTag()},
		AWSCloudFormationCondition:           cond,
		AWSCloudFormationDeletionPolicy:      policies.DeletionPolicy("Retain"),
		AWSCloudFormationUpdateReplacePolicy: policies.UpdateReplacePolicy("Retain")})
	return cf.If(cond, cf.Ref(logicalFn+"LogGroup"), name)
}

func (b *builder) relay() {
	relayPolicies := []iam.Role_Policy{{PolicyName: "read-config", PolicyDocument: policy(map[string]any{
		"Effect": "Allow", "Action": "ssm:GetParameter",
		"Resource": cf.Sub("arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter${" + ParamConfig + "}")})},
		b.idempotency()}
	if p := secretsPolicy(b.o.Secrets); p != nil {
		relayPolicies = append(relayPolicies, *p)
	}
	b.add("RelayRole", &iam.Role{
		AssumeRolePolicyDocument: assumeRole("lambda.amazonaws.com"),
		ManagedPolicyArns:        []string{cf.Sub("arn:${AWS::Partition}:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole")},
		Policies:                 relayPolicies,
		Tags:                     []tags.Tag{deploymentTag()},
	})
	relayLogs := b.logGroup("Relay", RelaySuffix, ParamCreateRelayLogs)
	b.add("Relay", &lambda.Function{
		FunctionName:  cf.SubPtr("${AWS::StackName}" + RelaySuffix),
		LoggingConfig: &lambda.Function_LoggingConfig{LogGroup: cf.String(relayLogs)},
		Description:   cf.String("outgate relay: the gateway core behind a static IP"),
		Runtime:       cf.String("provided.al2023"),
		Handler:       cf.String("bootstrap"),
		Architectures: arch(b.o),
		MemorySize:    cf.Int(b.o.MemoryMB),
		Timeout:       cf.Int(30),
		Role:          cf.GetAtt("RelayRole", "Arn"),
		Code:          &lambda.Function_Code{S3Bucket: cf.RefPtr(ParamCodeBucket), S3Key: cf.RefPtr(ParamRelayKey)},
		VpcConfig:     &lambda.Function_VpcConfig{SubnetIds: b.relayIn, SecurityGroupIds: []string{cf.Ref("RelaySecurityGroup")}},
		Environment: &lambda.Function_Environment{Variables: map[string]string{
			"OUTGATE_CONFIG_SSM":   cf.Ref(ParamConfig),
			"OUTGATE_EXPECTED_IPS": b.expectedIPs(),
			EnvIdempotencyTable:    cf.Ref(IdempotencyTable),
		}},
		Tags: []tags.Tag{deploymentTag()},
	})
	// Every 5 minutes: keeps the ENI in use and checks the egress IP
	// (EgressIpExpected), so the alarm below fires within minutes.
	b.schedule("RelayKeepalive", "Relay", "rate(5 minutes)", `{"outgate":"keepalive"}`, nil)
}

func (b *builder) schedule(name, target, expr, input string, state *string) {
	b.add(name+"Role", &iam.Role{
		AssumeRolePolicyDocument: assumeRole("scheduler.amazonaws.com"),
		Policies: []iam.Role_Policy{{PolicyName: "invoke", PolicyDocument: policy(map[string]any{
			"Effect": "Allow", "Action": "lambda:InvokeFunction",
			"Resource": []any{cf.GetAtt(target, "Arn"), cf.Join("", []string{cf.GetAtt(target, "Arn"), ":*"})}})}},
	})
	b.add(name, &scheduler.Schedule{
		Description:        cf.String("outgate: " + name),
		ScheduleExpression: expr,
		FlexibleTimeWindow: &scheduler.Schedule_FlexibleTimeWindow{Mode: "OFF"},
		Target:             &scheduler.Schedule_Target{Arn: cf.GetAtt(target, "Arn"), RoleArn: cf.GetAtt(name+"Role", "Arn"), Input: cf.String(input)},
		State:              state,
	})
}

func (b *builder) guardian() {
	eipArn := cf.Sub("arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:elastic-ip/*")
	var subnetArns []string
	for _, s := range b.relayIn {
		subnetArns = append(subnetArns, cf.Join("", []string{cf.Sub("arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:subnet/"), s}))
	}
	tagged := map[string]any{"StringEquals": map[string]any{"aws:ResourceTag/outgate:deployment": cf.Ref("AWS::StackName")}}
	b.add("GuardianRole", &iam.Role{
		AssumeRolePolicyDocument: assumeRole("lambda.amazonaws.com"),
		ManagedPolicyArns:        []string{cf.Sub("arn:${AWS::Partition}:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole")},
		Policies: []iam.Role_Policy{{PolicyName: "guard-ips", PolicyDocument: policy(
			map[string]any{"Effect": "Allow", "Action": []any{"ec2:DescribeNetworkInterfaces", "ec2:DescribeAddresses"}, "Resource": "*"},
			map[string]any{"Effect": "Allow", "Action": []any{"ec2:AssociateAddress", "ec2:DisassociateAddress", "ec2:CreateTags"}, "Resource": eipArn, "Condition": tagged},
			// The ENI side of both calls, limited to the relay's subnets:
			// DisassociateAddress may be authorized against the ENI too
			// (see guardian_iam_test.go).
			map[string]any{"Effect": "Allow", "Action": []any{"ec2:AssociateAddress", "ec2:DisassociateAddress"},
				"Resource":  cf.Sub("arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:network-interface/*"),
				"Condition": map[string]any{"StringEquals": map[string]any{"ec2:Subnet": subnetArns}}},
			map[string]any{"Effect": "Allow", "Action": []any{"lambda:GetFunctionConfiguration", "lambda:InvokeFunction"},
				"Resource": []any{cf.GetAtt("Relay", "Arn"), cf.Join("", []string{cf.GetAtt("Relay", "Arn"), ":*"})}},
			// The functions attached to the deployment, for the drift
			// check: found by their tag (tag:GetResources allows no
			// narrower resource), and read only when they carry it.
			map[string]any{"Effect": "Allow", "Action": "tag:GetResources", "Resource": "*"},
			map[string]any{"Effect": "Allow", "Action": "lambda:GetFunctionConfiguration",
				"Resource":  cf.Sub("arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:*"),
				"Condition": map[string]any{"StringEquals": map[string]any{"aws:ResourceTag/" + attached.Tag: cf.Ref("AWS::StackName")}}},
		)}},
		Tags: []tags.Tag{deploymentTag()},
	})
	// Allocation is allowed by policy only when the parameter says so.
	b.t.Conditions["AllowAllocation"] = cf.Equals(cf.Ref(ParamAllowAlloc), "true")
	b.add("GuardianAllocatePolicy", &iam.Policy{
		PolicyName: "allocate-ips", Roles: []string{cf.Ref("GuardianRole")},
		PolicyDocument: policy(map[string]any{"Effect": "Allow", "Action": "ec2:AllocateAddress", "Resource": eipArn,
			"Condition": map[string]any{"StringEquals": map[string]any{"aws:RequestTag/outgate:deployment": cf.Ref("AWS::StackName")}}},
			// AllocateAddress with tags is authorized again as CreateTags on
			// the new IP, which has no tags yet for the statement above on
			// tagged IPs to match: allowed only as part of AllocateAddress.
			map[string]any{"Effect": "Allow", "Action": "ec2:CreateTags", "Resource": eipArn,
				"Condition": map[string]any{"StringEquals": map[string]any{"ec2:CreateAction": "AllocateAddress",
					"aws:RequestTag/outgate:deployment": cf.Ref("AWS::StackName")}}}),
		AWSCloudFormationCondition: "AllowAllocation",
	})
	guardianLogs := b.logGroup("Guardian", GuardianSuffix, ParamCreateGuardianLogs)
	b.add("Guardian", &lambda.Function{
		FunctionName:  cf.SubPtr("${AWS::StackName}" + GuardianSuffix),
		LoggingConfig: &lambda.Function_LoggingConfig{LogGroup: cf.String(guardianLogs)},
		Description:   cf.String("outgate guardian: keeps the static IPs on the relay's Lambda ENIs"),
		Runtime:       cf.String("provided.al2023"),
		Handler:       cf.String("bootstrap"),
		// The same zip-architecture as the relay: up builds both for --arch.
		Architectures: arch(b.o),
		MemorySize:    cf.Int(128),
		Timeout:       cf.Int(50),
		Role:          cf.GetAtt("GuardianRole", "Arn"),
		Code:          &lambda.Function_Code{S3Bucket: cf.RefPtr(ParamCodeBucket), S3Key: cf.RefPtr(ParamGuardianKey)},
		Environment: &lambda.Function_Environment{Variables: map[string]string{
			"OUTGATE_DEPLOYMENT":         cf.Ref("AWS::StackName"),
			"OUTGATE_SECURITY_GROUP_ID":  cf.Ref("RelaySecurityGroup"),
			"OUTGATE_SUBNET_IDS":         cf.Join(",", b.relayIn),
			"OUTGATE_EIP_ALLOCATION_IDS": cf.Join(",", cf.Ref(ParamEIPs)),
			"OUTGATE_ALLOW_ALLOCATE":     cf.Ref(ParamAllowAlloc),
			"OUTGATE_RELAY_FUNCTION":     cf.Ref("Relay"),
		}},
		Tags: []tags.Tag{deploymentTag()},
	})
	// DISABLED pauses the guardian, as `up` does while it hands the IPs
	// from the Lambda ENIs to NAT gateways (eni -> nat).
	b.schedule("GuardianSchedule", "Guardian", "rate(1 minute)", "{}", cf.RefPtr(ParamGuardianState))
	b.t.Outputs[OutputGuardian] = cf.Output{Value: cf.Ref("Guardian")}
}

func (b *builder) front() {
	if b.o.Front == "apigw" {
		b.add("HttpApi", &apigatewayv2.Api{Name: cf.RefPtr("AWS::StackName"), ProtocolType: cf.String("HTTP"), Target: cf.GetAttPtr("Relay", "Arn"),
			Tags: map[string]string{"outgate:deployment": cf.Ref("AWS::StackName")}})
		b.add("HttpApiPermission", &lambda.Permission{Action: "lambda:InvokeFunction", FunctionName: cf.GetAtt("Relay", "Arn"),
			Principal: "apigateway.amazonaws.com", SourceArn: cf.SubPtr("arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${HttpApi}/*")})
		b.t.Outputs[OutputRelayURL] = cf.Output{Value: cf.Sub("https://${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}")}
	} else {
		// AuthType NONE: the relay authenticates every call itself (Outgate-Key).
		b.add("RelayUrl", &lambda.Url{TargetFunctionArn: cf.GetAtt("Relay", "Arn"), AuthType: "NONE", InvokeMode: cf.String("BUFFERED")})
		b.add("RelayUrlPermission", &lambda.Permission{Action: "lambda:InvokeFunctionUrl", FunctionName: cf.GetAtt("Relay", "Arn"),
			Principal: "*", FunctionUrlAuthType: cf.String("NONE")})
		// Required for new URLs since October 2025; InvokedViaFunctionUrl is
		// added by Render (goformation v7.14.9 lacks the property).
		b.add("RelayUrlInvokePermission", &lambda.Permission{Action: "lambda:InvokeFunction", FunctionName: cf.GetAtt("Relay", "Arn"), Principal: "*"})
		b.t.Outputs[OutputRelayURL] = cf.Output{Value: cf.GetAtt("RelayUrl", "FunctionUrl")}
	}
	b.t.Outputs[OutputRelayName] = cf.Output{Value: cf.Ref("Relay")}
	b.t.Outputs[OutputSecurityGrp] = cf.Output{Value: cf.Ref("RelaySecurityGroup")}
	b.t.Outputs[OutputSubnets] = cf.Output{Value: cf.Join(",", b.relayIn)}
}

// alarmTopic is where every alarm goes: the topic given (--notify-topic),
// or one of the stack's own with an email subscription per --notify
// address. The stack makes its own topic even with no address, so the
// alarms always have an action and a subscriber can be added later.
// It is not KMS-encrypted: CloudWatch can publish to an encrypted topic
// only through a customer managed key whose policy admits it, and the
// alarms carry no secrets.
func (b *builder) alarmTopic() {
	if b.o.NotifyTopic != "" {
		b.topic = b.o.NotifyTopic
		b.t.Outputs[OutputAlarmTopic] = cf.Output{Value: b.topic}
		return
	}
	var subs []sns.Topic_Subscription
	for _, e := range b.o.Notify {
		subs = append(subs, sns.Topic_Subscription{Protocol: "email", Endpoint: e})
	}
	b.add("AlarmTopic", &sns.Topic{DisplayName: cf.String("outgate alarms"), Subscription: subs, Tags: []tags.Tag{deploymentTag()}})
	b.topic = cf.Ref("AlarmTopic")
	b.t.Outputs[OutputAlarmTopic] = cf.Output{Value: b.topic}
}

// alarm adds one alarm publishing to the topic on ALARM and on OK, so the
// person paged also learns when it is over.
func (b *builder) alarm(name string, a *cloudwatch.Alarm) {
	// Named <stack>-<logical id>, so status can ask for exactly these.
	a.AlarmName = cf.SubPtr("${AWS::StackName}-" + name)
	a.AlarmActions = []string{b.topic}
	a.OKActions = []string{b.topic}
	b.add(name, a)
}

func outgateMetric(name, dim, value string) (*string, *string, []cloudwatch.Alarm_Dimension) {
	return cf.String("Outgate"), cf.String(name), []cloudwatch.Alarm_Dimension{{Name: dim, Value: value}}
}

// alarms page someone when calls may leave from an IP nobody allowlisted,
// when the guardian fails or stops, and when the relay fails or is
// throttled. Periods, datapoints and missing-data treatment are chosen
// against the schedules (guardian every minute, keepalive every 5 minutes)
// so that one late or lost datapoint never pages; docs/deploy.md explains
// each choice.
func (b *builder) alarms() {
	relay := cf.Ref("Relay")
	deployment := cf.Ref("AWS::StackName")

	// The relay's own egress check, from every invocation that made it:
	// Minimum over all of them, so one ENI leaving from a wrong IP is
	// enough. Two bad periods of three: one failed check (say, the echo
	// service down for a moment) does not page. A keepalive that stops
	// reporting is the next alarm's job, so missing data is not breaching.
	ns, metric, dims := outgateMetric("EgressIpExpected", "Function", relay)
	b.alarm("EgressIpAlarm", &cloudwatch.Alarm{
		AlarmDescription: cf.String("outgate: the relay's calls do not leave from an allowlisted IP (or cannot leave)"),
		Namespace:        ns, MetricName: metric, Dimensions: dims,
		Statistic: cf.String("Minimum"), Period: cf.Int(300), EvaluationPeriods: 3, DatapointsToAlarm: cf.Int(2),
		Threshold: cf.Float64(1), ComparisonOperator: "LessThanThreshold", TreatMissingData: cf.String("notBreaching"),
	})
	// No egress check for 30 minutes: six keepalives in a row lost, or the
	// relay cannot run at all. Two 15-minute periods, missing is breaching.
	b.alarm("RelayKeepaliveMissingAlarm", &cloudwatch.Alarm{
		AlarmDescription: cf.String("outgate: the relay has not checked its egress IP for 30 minutes (keepalive not running or failing)"),
		Namespace:        ns, MetricName: metric, Dimensions: dims,
		Statistic: cf.String("SampleCount"), Period: cf.Int(900), EvaluationPeriods: 2, DatapointsToAlarm: cf.Int(2),
		Threshold: cf.Float64(1), ComparisonOperator: "LessThanThreshold", TreatMissingData: cf.String("breaching"),
	})
	b.relayHealthAlarms(relay)
	if b.o.Mode != "eni" {
		return
	}
	// The guardian looks at every relay ENI every minute: this is the
	// alarm that covers all of them. Three runs in a row: a new ENI gets
	// its IP on the next run, so one or two runs with a bare ENI are normal.
	ns, metric, dims = outgateMetric("EnisWithoutIp", "Deployment", deployment)
	b.alarm("EnisWithoutIpAlarm", &cloudwatch.Alarm{
		AlarmDescription: cf.String("outgate: a relay ENI has had no static IP for 3 minutes (pool too small, or the guardian failing)"),
		Namespace:        ns, MetricName: metric, Dimensions: dims,
		Statistic: cf.String("Maximum"), Period: cf.Int(60), EvaluationPeriods: 3, DatapointsToAlarm: cf.Int(3),
		Threshold: cf.Float64(0), ComparisonOperator: "GreaterThanThreshold", TreatMissingData: cf.String("notBreaching"),
	})
	// GuardianErrors: the failures of a run (listing, associating,
	// tagging, the keepalive), emitted by every run, 0 included.
	ns, metric, dims = outgateMetric(guardianErrorsMetric, "Deployment", deployment)
	b.alarm("GuardianErrorsAlarm", &cloudwatch.Alarm{
		AlarmDescription: cf.String("outgate: the guardian reported errors in 3 of its last 5 runs (see its log)"),
		Namespace:        ns, MetricName: metric, Dimensions: dims,
		Statistic: cf.String("Sum"), Period: cf.Int(60), EvaluationPeriods: 5, DatapointsToAlarm: cf.Int(3),
		Threshold: cf.Float64(0), ComparisonOperator: "GreaterThanThreshold", TreatMissingData: cf.String("notBreaching"),
	})
	// An attached function whose own deploy dropped the VPC config (or
	// changed its subnets or security groups): its calls leave from an IP
	// nobody allowlisted. Three runs in a row, so a deploy caught halfway
	// does not page; it does not heal by itself, so three minutes is soon
	// enough. No datapoint (the check failed) is GuardianErrorsAlarm's job.
	ns, metric, dims = outgateMetric(guardian.MetricAttachedDrifted, "Deployment", deployment)
	b.alarm("AttachedFunctionDriftAlarm", &cloudwatch.Alarm{
		AlarmDescription: cf.String("outgate: a function attached to the deployment has left its subnets or security group for 3 minutes (its own deploy dropped the VPC config?)"),
		Namespace:        ns, MetricName: metric, Dimensions: dims,
		Statistic: cf.String("Maximum"), Period: cf.Int(60), EvaluationPeriods: 3, DatapointsToAlarm: cf.Int(3),
		Threshold: cf.Float64(0), ComparisonOperator: "GreaterThanThreshold", TreatMissingData: cf.String("notBreaching"),
	})
	ns, metric, dims = outgateMetric(guardianErrorsMetric, "Deployment", deployment)
	// Every run that reports emits GuardianErrors (0 included), even one
	// that could not list the ENIs: none for 10 minutes means the guardian
	// is not running or dies before reporting.
	b.alarm("GuardianNotRunningAlarm", &cloudwatch.Alarm{
		AlarmDescription: cf.String("outgate: no guardian run has reported for 10 minutes (schedule disabled, throttled or crashing)"),
		Namespace:        ns, MetricName: metric, Dimensions: dims,
		Statistic: cf.String("SampleCount"), Period: cf.Int(300), EvaluationPeriods: 2, DatapointsToAlarm: cf.Int(2),
		Threshold: cf.Float64(1), ComparisonOperator: "LessThanThreshold", TreatMissingData: cf.String("breaching"),
	})
}

// relayHealthAlarms: the front door's 5xx rate and the relay's throttles.
func (b *builder) relayHealthAlarms(relay string) {
	var errs, reqs *cloudwatch.Alarm_Metric
	if b.o.Front == "apigw" {
		api := []cloudwatch.Alarm_Dimension{{Name: "ApiId", Value: cf.Ref("HttpApi")}}
		errs = &cloudwatch.Alarm_Metric{Namespace: cf.String("AWS/ApiGateway"), MetricName: cf.String("5xx"), Dimensions: api}
		reqs = &cloudwatch.Alarm_Metric{Namespace: cf.String("AWS/ApiGateway"), MetricName: cf.String("Count"), Dimensions: api}
	} else {
		fn := []cloudwatch.Alarm_Dimension{{Name: "FunctionName", Value: relay}}
		errs = &cloudwatch.Alarm_Metric{Namespace: cf.String("AWS/Lambda"), MetricName: cf.String("Url5xxCount"), Dimensions: fn}
		reqs = &cloudwatch.Alarm_Metric{Namespace: cf.String("AWS/Lambda"), MetricName: cf.String("UrlRequestCount"), Dimensions: fn}
	}
	// The percentage of calls answered 5xx, counted only from 10 calls in
	// 5 minutes (one failed call out of two is not an outage), above 5% in
	// 2 of 3 periods. No traffic is no data, and not an error.
	b.alarm("Relay5xxAlarm", &cloudwatch.Alarm{
		AlarmDescription: cf.String("outgate: more than 5% of calls to the relay got a 5xx answer in 2 of the last 3 five-minute periods"),
		Metrics: []cloudwatch.Alarm_MetricDataQuery{
			{Id: "errors", MetricStat: &cloudwatch.Alarm_MetricStat{Metric: errs, Period: 300, Stat: "Sum"}, ReturnData: cf.Bool(false)},
			{Id: "calls", MetricStat: &cloudwatch.Alarm_MetricStat{Metric: reqs, Period: 300, Stat: "Sum"}, ReturnData: cf.Bool(false)},
			{Id: "rate", Expression: cf.String("IF(calls >= 10, 100 * FILL(errors, 0) / calls, 0)"), Label: cf.String("5xx %"), ReturnData: cf.Bool(true)},
		},
		EvaluationPeriods: 3, DatapointsToAlarm: cf.Int(2),
		Threshold: cf.Float64(5), ComparisonOperator: "GreaterThanThreshold", TreatMissingData: cf.String("notBreaching"),
	})
	// Throttles mean the reserved concurrency is reached: either real
	// traffic outgrew --relay-concurrency or a flood is being turned away.
	b.alarm("RelayThrottlesAlarm", &cloudwatch.Alarm{
		AlarmDescription: cf.String("outgate: the relay was throttled in 2 of the last 3 five-minute periods (concurrency cap reached: traffic grew, or a flood)"),
		Namespace:        cf.String("AWS/Lambda"), MetricName: cf.String("Throttles"),
		Dimensions: []cloudwatch.Alarm_Dimension{{Name: "FunctionName", Value: relay}},
		Statistic:  cf.String("Sum"), Period: cf.Int(300), EvaluationPeriods: 3, DatapointsToAlarm: cf.Int(2),
		Threshold: cf.Float64(0), ComparisonOperator: "GreaterThanThreshold", TreatMissingData: cf.String("notBreaching"),
	})
}

// MaxTemplateBody is the most CloudFormation takes inline: CreateChangeSet's
// TemplateBody is "a maximum length of 51,200 bytes" (AWS CloudFormation API
// Reference, CreateChangeSet; "AWS CloudFormation quotas"). Larger ones must
// come from S3 (TemplateURL), which up does not use.
const MaxTemplateBody = 51200

// TemplateBody is the template as up sends it: compact JSON, refused here
// when CloudFormation would refuse it, so that happens before any Elastic
// IP is allocated and billed rather than at CreateChangeSet.
func TemplateBody(o TemplateOptions) ([]byte, error) {
	s, err := Template(o)
	if err != nil {
		return nil, err
	}
	raw, err := Render(s, "json")
	if err != nil {
		return nil, err
	}
	var body bytes.Buffer
	if err := json.Compact(&body, raw); err != nil {
		return nil, err
	}
	if body.Len() > MaxTemplateBody {
		return nil, fmt.Errorf("the stack's template is %d bytes, more than the %d CloudFormation takes in one request: use fewer --endpoints (%d asked) or fewer --azs",
			body.Len(), MaxTemplateBody, len(o.Endpoints))
	}
	return body.Bytes(), nil
}

// Render encodes the template as "json" or "yaml", with the properties
// goformation does not know yet added.
func Render(s *cf.Template, format string) ([]byte, error) {
	raw, err := s.JSON()
	if err != nil {
		return nil, err
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, err
	}
	res, _ := doc["Resources"].(map[string]any)
	if p, ok := res["RelayUrlInvokePermission"].(map[string]any); ok {
		p["Properties"].(map[string]any)["InvokedViaFunctionUrl"] = true
	}
	// goformation types these integers, so parameter references go in here.
	noValue := map[string]any{"Ref": "AWS::NoValue"}
	if p, ok := res["Relay"].(map[string]any); ok {
		p["Properties"].(map[string]any)["ReservedConcurrentExecutions"] = map[string]any{"Fn::If": []any{condRelayCapped, map[string]any{"Ref": ParamRelayCap}, noValue}}
	}
	if p, ok := res["Guardian"].(map[string]any); ok {
		// One run at a time: overlapping runs (the schedule, up's own
		// passes, retries) could each move the same IP.
		p["Properties"].(map[string]any)["ReservedConcurrentExecutions"] = map[string]any{"Fn::If": []any{condGuardianSerial, 1, noValue}}
	}

	switch format {
	case "", "json":
		return json.MarshalIndent(doc, "", "  ")
	case "yaml":
		return toYAML(doc)
	}
	return nil, fmt.Errorf("-o must be json or yaml, got %q", format)
}
