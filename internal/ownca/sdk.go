package ownca

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/service/ssm"
)

// SSM is every SSM call of `up` making the CA (EnsureCA). The IAM action
// each call needs is beside it; NAME is the deployment.
type SSM interface {
	Reader
	// ssm:PutParameter on arn:aws:ssm:REGION:ACCOUNT:parameter/outgate/NAME/ca/cert
	// and .../ca/key, always with Overwrite false: an existing CA is never
	// replaced. The key is a SecureString under the aws/ssm key (kms:Encrypt
	// through SSM, granted by that key's policy within the account). Never
	// given to the instance role.
	PutParameter(ctx context.Context, in *ssm.PutParameterInput, opts ...func(*ssm.Options)) (*ssm.PutParameterOutput, error)
}

// Reader is the one SSM call of an instance (Load) and of `outgate ca`
// (ReadCert).
type Reader interface {
	// ssm:GetParameter on arn:aws:ssm:REGION:ACCOUNT:parameter/outgate/NAME/ca/cert
	// (`outgate ca`, `up`, the instance) and .../ca/key (`up`, the instance
	// only: read WithDecryption, which needs kms:Decrypt on the aws/ssm key,
	// granted through SSM by that key's policy within the account).
	GetParameter(ctx context.Context, in *ssm.GetParameterInput, opts ...func(*ssm.Options)) (*ssm.GetParameterOutput, error)
}
