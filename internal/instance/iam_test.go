package instance

import (
	"reflect"
	"testing"

	"github.com/outgate/outgate/internal/claim"
)

// TestSSMGrants holds the agent's IAM to AWS's rules (moto checks none):
// the Service Authorization Reference for Systems Manager
// (docs.aws.amazon.com/service-authorization/latest/reference/list_awssystemsmanager.html)
// gives GetParameter the parameter resource,
// arn:${Partition}:ssm:${Region}:${Account}:parameter/${ParameterNameWithoutLeadingSlash};
// and "Restricting decryption of SecureString parameter values"
// (docs.aws.amazon.com/systems-manager/latest/userguide/ps-restrict-decryption.html)
// says the AWS managed key aws/ssm grants Decrypt to all IAM principals in
// the account, so no kms:Decrypt statement is needed for it.
func TestSSMGrants(t *testing.T) {
	want := []claim.Grant{{Call: "GetParameter", Action: "ssm:GetParameter",
		Resource: "arn:${Partition}:ssm:${Region}:${Account}:parameter${ConfigParameterPath}"}}
	if !reflect.DeepEqual(Grants, want) {
		t.Errorf("instance.Grants = %+v, want %+v", Grants, want)
	}
	claim.CheckGrants(t, Grants, reflect.TypeFor[SSM]())
}
