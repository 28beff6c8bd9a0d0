package instance

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/outgate/outgate/internal/claim"
)

// SSM is the agent's one SSM call: the deployment's config parameter. (The
// EC2 and Auto Scaling calls are internal/claim's, listed in its sdk.go.)
type SSM interface {
	GetParameter(ctx context.Context, in *ssm.GetParameterInput, opts ...func(*ssm.Options)) (*ssm.GetParameterOutput, error)
}

var _ SSM = (*ssm.Client)(nil)

// Grants is the IAM the agent's own calls need (claim.Grants holds the
// claim's). ${ConfigParameterPath} is the parameter's name with exactly one
// leading slash: the parameter ARN is parameter/ followed by the name
// without its leading slash, so a name given with or without one maps to
// the same ARN only if the slash is normalised.
//
// No kms:Decrypt: a SecureString config under the AWS managed key aws/ssm
// is decrypted through that key's own policy, which grants Decrypt to every
// IAM principal of the account. A config under a customer managed key needs
// kms:Decrypt on that key as well, which the stack cannot know.
var Grants = []claim.Grant{
	{Call: "GetParameter", Action: "ssm:GetParameter", Resource: "arn:${Partition}:ssm:${Region}:${Account}:parameter${ConfigParameterPath}"},
}
