package instance

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/service/ssm"
)

// SSM is the agent's one SSM call: the deployment's config parameter. (The
// EC2 and Auto Scaling calls are internal/claim's, listed in its sdk.go.)
type SSM interface {
	// ssm:GetParameter on parameter/outgate/<deployment>/* (the config
	// parameter), and kms:Decrypt on the parameter's key when it is a
	// SecureString (aws/ssm's default key needs no grant of its own).
	GetParameter(ctx context.Context, in *ssm.GetParameterInput, opts ...func(*ssm.Options)) (*ssm.GetParameterOutput, error)
}

var _ SSM = (*ssm.Client)(nil)
