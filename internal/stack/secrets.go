package stack

import (
	"fmt"
	"regexp"
	"strings"

	cf "github.com/awslabs/goformation/v7/cloudformation"
	"github.com/awslabs/goformation/v7/cloudformation/iam"

	"github.com/outgate/outgate/internal/secrets"
)

// completeSecretARN is a secret ARN ending in the '-' and six random
// characters Secrets Manager adds to the name.
var completeSecretARN = regexp.MustCompile(`:secret:.+-[A-Za-z0-9]{6}$`)

// checkRelaySecrets refuses references the relay function cannot read: it
// has no environment of the user's and no files, only its role's access to
// SSM and Secrets Manager.
func checkRelaySecrets(refs []secrets.Ref) error {
	for _, r := range refs {
		if r.Source != secrets.SourceSSM && r.Source != secrets.SourceSecretsManager {
			return fmt.Errorf("the config references %s: the relay function reads only ${secret:ssm:...} and ${secret:secretsmanager:...} secrets", r)
		}
	}
	return nil
}

// secretsPolicy is the relay role's read access to exactly the secrets the
// config names: ssm:GetParameter on each parameter's ARN,
// secretsmanager:GetSecretValue on each secret's, and kms:Decrypt only
// through those two services (kms:ViaService), for secrets under a
// customer-managed key (the AWS managed keys aws/ssm and aws/secretsmanager
// need no grant). Since the role can call the services only for the named
// ARNs, it can decrypt nothing else through them. nil when there is none.
func secretsPolicy(refs []secrets.Ref) *iam.Role_Policy {
	var params, secretARNs []string
	seen := map[string]bool{}
	add := func(list *[]string, arn string) {
		if !seen[arn] {
			seen[arn] = true
			*list = append(*list, arn)
		}
	}
	for _, r := range refs {
		switch r.Source {
		case secrets.SourceSSM:
			name := r.Name
			if !strings.HasPrefix(name, "/") {
				name = "/" + name
			}
			add(&params, cf.Sub("arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter"+name))
		case secrets.SourceSecretsManager:
			if strings.HasPrefix(r.Name, "arn:") {
				// Secrets Manager reads an ARN ending in '-' and six
				// characters as complete, and any other as partial,
				// which it matches with the random suffix it lacks
				// (API Reference, GetSecretValue, SecretId). Each gets
				// only its grant: the suffix after a complete ARN
				// would grant another secret, named like that ARN's end.
				if completeSecretARN.MatchString(r.Name) {
					add(&secretARNs, r.Name)
				} else {
					add(&secretARNs, r.Name+"-??????")
				}
				continue
			}
			// A name: the ARN ends in '-' and six random characters.
			add(&secretARNs, cf.Sub("arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:"+r.Name+"-??????"))
		}
	}
	var st []map[string]any
	var via []string
	if len(params) > 0 {
		st = append(st, map[string]any{"Effect": "Allow", "Action": "ssm:GetParameter", "Resource": params})
		via = append(via, cf.Sub("ssm.${AWS::Region}.amazonaws.com"))
	}
	if len(secretARNs) > 0 {
		st = append(st, map[string]any{"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": secretARNs})
		via = append(via, cf.Sub("secretsmanager.${AWS::Region}.amazonaws.com"))
	}
	if len(st) == 0 {
		return nil
	}
	st = append(st, map[string]any{"Effect": "Allow", "Action": "kms:Decrypt",
		"Resource":  cf.Sub("arn:${AWS::Partition}:kms:${AWS::Region}:${AWS::AccountId}:key/*"),
		"Condition": map[string]any{"StringEquals": map[string]any{"kms:ViaService": via}}})
	return &iam.Role_Policy{PolicyName: "read-partner-secrets", PolicyDocument: policy(st...)}
}
