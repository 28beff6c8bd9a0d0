package deploy

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/iam"

	"github.com/outgate/outgate/internal/keys"
	"github.com/outgate/outgate/internal/stack"
	"github.com/outgate/outgate/internal/testutil"
)

// TestUpGrantsTheConfigsSecrets: `up` reads the references from the config
// it deploys and the relay's role, as CloudFormation (moto) creates it, may
// read those ARNs; a config with an env: reference is refused before
// anything is allocated.
func TestUpGrantsTheConfigsSecrets(t *testing.T) {
	c, api := motoClients(t)
	ctx := context.Background()
	vpcID, pub := testutil.PublicSubnets(t, api, "10.12.0.0/16", 1)
	noGuardianRuns(t)
	upstream := "upstreams:\n  pay:\n    url: https://api.pay.example\n    inject_headers: {X-Api-Key: \"${secret:ssm:/outgate/pay/key}\"}\n" +
		"    client_cert: \"${secret:secretsmanager:pay/mtls#cert}\"\n    client_key: \"${secret:secretsmanager:pay/mtls#key}\"\n"
	client := "clients: [{name: a, key_sha256: " + keys.Hash("og_x") + ", upstreams: [pay]}]\n"
	o := motoUp("sec", stack.TemplateOptions{VPCID: vpcID, SubnetIDs: pub})
	o.ConfigYAML = []byte(upstream + client)
	if _, err := Up(ctx, c, o); err != nil {
		t.Fatal(err)
	}
	ac, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	d, err := DescribeDeployed(ctx, c.CloudFormation, "sec")
	if err != nil || d.Resources["RelayRole"] == "" {
		t.Fatalf("RelayRole: %v, %v", d, err)
	}
	pol, err := iam.NewFromConfig(ac).GetRolePolicy(ctx, &iam.GetRolePolicyInput{
		RoleName: aws.String(d.Resources["RelayRole"]), PolicyName: aws.String("read-partner-secrets")})
	if err != nil {
		t.Fatal(err)
	}
	doc, _ := url.QueryUnescape(aws.ToString(pol.PolicyDocument))
	for _, want := range []string{
		"arn:aws:ssm:us-east-1:123456789012:parameter/outgate/pay/key",
		"arn:aws:secretsmanager:us-east-1:123456789012:secret:pay/mtls-??????",
		"ssm.us-east-1.amazonaws.com",
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("the relay role's policy lacks %s:\n%s", want, doc)
		}
	}

	o = motoUp("envsec", stack.TemplateOptions{VPCID: vpcID, SubnetIDs: pub})
	o.ConfigYAML = []byte("upstreams:\n  pay:\n    url: https://api.pay.example\n    inject_headers: {X-Api-Key: \"${secret:env:PAY}\"}\n" + client)
	if _, err := Up(ctx, c, o); err == nil || !strings.Contains(err.Error(), "the relay function reads only") {
		t.Errorf("env secret: %v", err)
	}
	if ips, _ := ListIPs(ctx, c.EC2, "envsec"); len(ips) != 0 {
		t.Errorf("the refused deployment allocated %d IPs", len(ips))
	}
}
