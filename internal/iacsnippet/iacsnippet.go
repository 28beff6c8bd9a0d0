// Package iacsnippet prints the infrastructure-code snippet that puts a
// function behind an outgate deployment, for the tools teams deploy with
// (Serverless Framework, SAM, CDK, Terraform, CloudFormation).
//
// It exists because `outgate attach` changes a function through the Lambda
// API, and the next deploy of that function by its own tool, whose code
// does not mention the VPC, silently undoes it. Carrying the VPC settings in
// the user's own code is the durable way; the tag the snippet adds lets the
// guardian and `outgate status` notice when a deploy undoes it anyway.
//
// Rendering is pure: the ids come from the deployment (internal/attach).
package iacsnippet

import (
	"fmt"
	"regexp"
	"strings"
)

// Formats are the --print values, in the order help lists them.
var Formats = []string{"serverless", "sam", "cdk", "terraform", "cloudformation"}

// PolicyName is the AWS managed policy a function's role needs to create
// and use network interfaces in a VPC.
const PolicyName = "AWSLambdaVPCAccessExecutionRole"

// Target is what a snippet puts a function into.
type Target struct {
	Deployment    string
	TagKey        string // the tag naming the deployment on an attached function
	VPC           string
	Subnets       []string
	SecurityGroup string
	// Partition of the account ("aws", "aws-cn", "aws-us-gov"), for the
	// policy's ARN.
	Partition string
	// PublicSubnets is true in eni mode: the relay, and so the function,
	// run in public subnets (CDK refuses those without allowPublicSubnet).
	PublicSubnets bool
	// Function is the function's name in the user's code: the Serverless
	// function key, the SAM or CloudFormation logical id, the Terraform
	// resource name, the CDK construct id. Empty: the provider-level
	// (Serverless) or Globals (SAM) form, and a placeholder elsewhere.
	Function string
}

// PolicyARN is the managed policy's ARN in the target's partition.
func (t Target) PolicyARN() string {
	p := t.Partition
	if p == "" {
		p = "aws"
	}
	return "arn:" + p + ":iam::aws:policy/service-role/" + PolicyName
}

// BehaviourNote is the one line on what changes for the function.
const BehaviourNote = "behaviour: its calls leave from the deployment's static IPs; it has no public IP and no IPv6 of its own; " +
	"cold starts stay as they are (the network interfaces are shared and made at deploy time), but the deploy that adds this waits until they are ready (up to a few minutes)"

var (
	idCFN       = regexp.MustCompile(`^[A-Za-z0-9]{1,255}$`)
	idTerraform = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]{0,127}$`)
	idOther     = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_-]{0,127}$`)
	awsID       = regexp.MustCompile(`^(vpc|subnet|sg)-[0-9a-f]{1,32}$`)
)

// placeholders name the function where the format needs one and none is given.
var placeholders = map[string]string{"cdk": "MyFunction", "terraform": "this", "cloudformation": "MyFunction"}

// Render returns the snippet for format.
func Render(format string, t Target) (string, error) {
	if err := t.check(format); err != nil {
		return "", err
	}
	if t.Function == "" {
		t.Function = placeholders[format]
	}
	var b strings.Builder
	switch format {
	case "serverless":
		serverless(&b, t)
	case "sam":
		sam(&b, t)
	case "cdk":
		cdk(&b, t)
	case "terraform":
		terraform(&b, t)
	case "cloudformation":
		cloudformation(&b, t)
	}
	return b.String(), nil
}

func (t Target) check(format string) error {
	known := false
	for _, f := range Formats {
		known = known || f == format
	}
	if !known {
		return fmt.Errorf("--print must be one of %s, got %q", strings.Join(Formats, ", "), format)
	}
	// The ids come from AWS, but they land in code: hold them to their
	// shape so nothing else can.
	if !awsID.MatchString(t.SecurityGroup) || len(t.Subnets) == 0 || (t.VPC != "" && !awsID.MatchString(t.VPC)) {
		return fmt.Errorf("the deployment's network ids are incomplete or malformed (security group %q, subnets %v, VPC %q)", t.SecurityGroup, t.Subnets, t.VPC)
	}
	for _, s := range t.Subnets {
		if !awsID.MatchString(s) {
			return fmt.Errorf("the deployment's subnet id %q is malformed", s)
		}
	}
	if format == "cdk" && t.VPC == "" {
		return fmt.Errorf("the deployment's VPC id is unknown; CDK's lookups need it")
	}
	if t.Function == "" {
		return nil
	}
	switch format {
	case "sam", "cloudformation":
		if !idCFN.MatchString(t.Function) {
			return fmt.Errorf("--function %q: a %s logical id is letters and digits only", t.Function, format)
		}
	case "terraform":
		if !idTerraform.MatchString(t.Function) {
			return fmt.Errorf("--function %q: a Terraform resource name starts with a letter or _ and holds letters, digits, _ and -", t.Function)
		}
	default:
		if !idOther.MatchString(t.Function) {
			return fmt.Errorf("--function %q: give the function's name in your code (letters, digits, _ and -)", t.Function)
		}
	}
	return nil
}

// header is the comment every snippet starts with, prefixed for the format;
// iamMore are lines that belong right under the IAM line (the code it
// introduces).
func header(b *strings.Builder, c string, t Target, iam string, iamMore ...string) {
	lines := []string{
		fmt.Sprintf("outgate deployment %s: the function's calls leave from the deployment's static IPs.", t.Deployment),
		"Exactly this security group and only these subnets: Lambda shares the deployment's network",
		"interfaces, and their static IPs, only with functions of the same subnets and security groups.",
		fmt.Sprintf("The tag %s=%s lets the guardian and `outgate status` check that every deploy keeps it so.", t.TagKey, t.Deployment),
		"IAM: the function's role needs the managed policy " + PolicyName + " (" + t.PolicyARN() + ")" + iam,
	}
	lines = append(append(lines, iamMore...), BehaviourNote)
	for _, l := range lines {
		b.WriteString(c + " " + l + "\n")
	}
}

func yamlList(b *strings.Builder, indent string, items []string) {
	for _, s := range items {
		fmt.Fprintf(b, "%s- %s\n", indent, s)
	}
}

func serverless(b *strings.Builder, t Target) {
	header(b, "#", t, "; the Framework adds it to the role it makes when vpc is set, a role of your own needs it added.")
	ind := "  "
	if t.Function == "" {
		b.WriteString("provider:\n")
	} else {
		fmt.Fprintf(b, "functions:\n  %s:\n", t.Function)
		ind = "    "
	}
	fmt.Fprintf(b, "%svpc:\n%s  securityGroupIds:\n", ind, ind)
	yamlList(b, ind+"    ", []string{t.SecurityGroup})
	fmt.Fprintf(b, "%s  subnetIds:\n", ind)
	yamlList(b, ind+"    ", t.Subnets)
	fmt.Fprintf(b, "%stags:\n%s  %q: %s\n", ind, ind, t.TagKey, t.Deployment)
}

func sam(b *strings.Builder, t Target) {
	header(b, "#", t, "; SAM adds it to the role it makes when VpcConfig is set, a Role of your own needs it added.")
	ind := "    "
	if t.Function == "" {
		b.WriteString("Globals:\n  Function:\n")
	} else {
		fmt.Fprintf(b, "Resources:\n  %s:\n    Type: AWS::Serverless::Function\n    Properties:\n", t.Function)
		ind = "      "
	}
	vpcConfigYAML(b, ind, t)
	fmt.Fprintf(b, "%sTags:\n%s  %q: %s\n", ind, ind, t.TagKey, t.Deployment)
}

func vpcConfigYAML(b *strings.Builder, ind string, t Target) {
	fmt.Fprintf(b, "%sVpcConfig:\n%s  SecurityGroupIds:\n", ind, ind)
	yamlList(b, ind+"    ", []string{t.SecurityGroup})
	fmt.Fprintf(b, "%s  SubnetIds:\n", ind)
	yamlList(b, ind+"    ", t.Subnets)
}

func cloudformation(b *strings.Builder, t Target) {
	role := t.Function + "Role"
	header(b, "#", t, fmt.Sprintf("; add it to the function's execution role (here %s).", role))
	fmt.Fprintf(b, "Resources:\n  %s:\n    Type: AWS::Lambda::Function\n    Properties:\n", t.Function)
	vpcConfigYAML(b, "      ", t)
	fmt.Fprintf(b, "      Tags:\n        - Key: %q\n          Value: %s\n", t.TagKey, t.Deployment)
	fmt.Fprintf(b, "  %s:\n    Type: AWS::IAM::Role\n    Properties:\n      ManagedPolicyArns:\n        - %s\n", role, t.PolicyARN())
}

func quoted(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = `"` + s + `"`
	}
	return strings.Join(q, ", ")
}

func terraform(b *strings.Builder, t Target) {
	header(b, "#", t, "; attach it to the function's execution role (here aws_iam_role."+t.Function+").")
	fmt.Fprintf(b, "resource \"aws_lambda_function\" %q {\n  # ... the function's other arguments ...\n\n", t.Function)
	fmt.Fprintf(b, "  vpc_config {\n    subnet_ids         = [%s]\n    security_group_ids = [%s]\n  }\n\n", quoted(t.Subnets), quoted([]string{t.SecurityGroup}))
	fmt.Fprintf(b, "  tags = {\n    %q = %q\n  }\n}\n\n", t.TagKey, t.Deployment)
	fmt.Fprintf(b, "resource \"aws_iam_role_policy_attachment\" %q {\n  role       = aws_iam_role.%s.name\n  policy_arn = %q\n}\n",
		t.Function+"_vpc_access", t.Function, t.PolicyARN())
}

func cdk(b *strings.Builder, t Target) {
	header(b, "//", t, "; CDK adds it to the role it makes for a function with a vpc, a role of your own needs it added:",
		fmt.Sprintf("  role.addManagedPolicy(iam.ManagedPolicy.fromAwsManagedPolicyName('service-role/%s'));", PolicyName))
	b.WriteString("// Vpc.fromLookup needs the stack's env (account and region) set.\n")
	b.WriteString("import * as cdk from 'aws-cdk-lib';\nimport * as ec2 from 'aws-cdk-lib/aws-ec2';\nimport * as lambda from 'aws-cdk-lib/aws-lambda';\n\n")
	fmt.Fprintf(b, "const outgateVpc = ec2.Vpc.fromLookup(this, 'OutgateVpc', { vpcId: '%s' });\n", t.VPC)
	subnets := make([]string, len(t.Subnets))
	for i, s := range t.Subnets {
		subnets[i] = "'" + s + "'"
	}
	fmt.Fprintf(b, "const outgateSubnets = [%s].map((id) => ec2.Subnet.fromSubnetId(this, `OutgateSubnet-${id}`, id));\n", strings.Join(subnets, ", "))
	b.WriteString("// mutable: false, so this stack never adds rules to the deployment's security group.\n")
	fmt.Fprintf(b, "const outgateSecurityGroup = ec2.SecurityGroup.fromSecurityGroupId(this, 'OutgateSecurityGroup', '%s', { mutable: false });\n\n", t.SecurityGroup)
	fmt.Fprintf(b, "const fn = new lambda.Function(this, '%s', {\n  // ... the function's other props ...\n", t.Function)
	b.WriteString("  vpc: outgateVpc,\n  vpcSubnets: { subnets: outgateSubnets },\n  securityGroups: [outgateSecurityGroup],\n")
	if t.PublicSubnets {
		b.WriteString("  // The deployment's subnets are public (eni mode); the function still gets no public IP.\n  allowPublicSubnet: true,\n")
	}
	b.WriteString("});\n")
	fmt.Fprintf(b, "cdk.Tags.of(fn).add('%s', '%s');\n", t.TagKey, t.Deployment)
}
