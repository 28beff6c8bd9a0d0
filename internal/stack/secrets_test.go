package stack

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/outgate/outgate/internal/secrets"
)

var testSecretRefs = []secrets.Ref{
	{Source: "ssm", Name: "/outgate/pay/basic"},
	{Source: "ssm", Name: "plain-name"},
	{Source: "ssm", Name: "/outgate/pay/basic"},
	{Source: "secretsmanager", Name: "pay/keys", Key: "api_key"},
	{Source: "secretsmanager", Name: "pay/keys", Key: "other"},
	{Source: "secretsmanager", Name: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:mtls-AbCdEf"},
	{Source: "secretsmanager", Name: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:pay/partial"},
}

// relayPolicies renders the template and returns the relay role's inline
// policies by name, as CloudFormation gets them.
func relayPolicies(t *testing.T, o TemplateOptions) map[string]string {
	t.Helper()
	var doc struct {
		Resources map[string]struct {
			Properties struct {
				Policies []struct {
					PolicyName     string
					PolicyDocument json.RawMessage
				}
			}
		}
	}
	if err := json.Unmarshal(render(t, o, "json"), &doc); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, p := range doc.Resources["RelayRole"].Properties.Policies {
		out[p.PolicyName] = string(p.PolicyDocument)
	}
	return out
}

// TestRelayRoleReadsExactlyTheNamedSecrets: the relay's role may read the
// parameters and secrets the config names and nothing else: no wildcard
// beyond Secrets Manager's six-character suffix, kms:Decrypt only through
// SSM and Secrets Manager; and no such policy when the config names none.
//
// An ARN ending in '-' and six characters is a complete ARN to Secrets
// Manager ("if your secret has a name that ends in a hyphen followed by six
// characters ... Secrets Manager [assumes] that you're specifying a complete
// ARN": Secrets Manager API Reference, GetSecretValue, SecretId; User Guide,
// troubleshoot.html#ARN_secretnamehyphen), so it is granted as written: the
// suffix wildcard after it would also grant the different secret whose
// name is "mtls-AbCdEf". Any other ARN is a partial one, matched by
// Secrets Manager with the suffix it lacks, so it is granted with it.
func TestRelayRoleReadsExactlyTheNamedSecrets(t *testing.T) {
	if _, ok := relayPolicies(t, TemplateOptions{})["read-partner-secrets"]; ok {
		t.Error("a config without secrets got a secrets policy")
	}
	doc := relayPolicies(t, TemplateOptions{Secrets: testSecretRefs})["read-partner-secrets"]
	var p struct {
		Statement []struct {
			Effect    string
			Action    string
			Resource  json.RawMessage
			Condition map[string]map[string]json.RawMessage
		}
	}
	if err := json.Unmarshal([]byte(doc), &p); err != nil {
		t.Fatalf("%v: %s", err, doc)
	}
	got := map[string]string{}
	for _, s := range p.Statement {
		if s.Effect != "Allow" {
			t.Errorf("statement %s: effect %s", s.Action, s.Effect)
		}
		var b bytes.Buffer
		json.Compact(&b, s.Resource)
		got[s.Action] = b.String()
		if s.Action == "kms:Decrypt" {
			via := string(s.Condition["StringEquals"]["kms:ViaService"])
			if !strings.Contains(via, "ssm.${AWS::Region}.amazonaws.com") || !strings.Contains(via, "secretsmanager.${AWS::Region}.amazonaws.com") {
				t.Errorf("kms:Decrypt not limited to the services: %s", via)
			}
		}
	}
	want := map[string]string{
		"ssm:GetParameter": `[{"Fn::Sub":"arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/outgate/pay/basic"},` +
			`{"Fn::Sub":"arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/plain-name"}]`,
		"secretsmanager:GetSecretValue": `[{"Fn::Sub":"arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:pay/keys-??????"},` +
			`"arn:aws:secretsmanager:eu-west-1:123456789012:secret:mtls-AbCdEf","arn:aws:secretsmanager:eu-west-1:123456789012:secret:pay/partial-??????"]`,
		"kms:Decrypt": `{"Fn::Sub":"arn:${AWS::Partition}:kms:${AWS::Region}:${AWS::AccountId}:key/*"}`,
	}
	for action, res := range want {
		if got[action] != res {
			t.Errorf("%s on\n%s\nwant\n%s", action, got[action], res)
		}
	}
	if len(got) != len(want) {
		t.Errorf("statements: %v", got)
	}

	// The relay cannot read environment variables or files of the user's.
	_, err := Template(TemplateOptions{Secrets: []secrets.Ref{{Source: "env", Name: "PAY_KEY"}}})
	if err == nil || !strings.Contains(err.Error(), "${secret:env:PAY_KEY}: the relay function reads only") {
		t.Errorf("env secret in a Lambda deployment: %v", err)
	}
}
