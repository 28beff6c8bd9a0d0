package secrets

import (
	"context"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
)

// AWS returns Sources whose SSM and Secrets Manager clients are made, once,
// from the AWS config load returns (the default chain: environment, role),
// only when a reference needs one.
func AWS(load func(context.Context) (aws.Config, error)) Sources {
	var (
		once sync.Once
		ac   aws.Config
		err  error
	)
	cfg := func(ctx context.Context) (aws.Config, error) {
		once.Do(func() { ac, err = load(ctx) })
		return ac, err
	}
	return Sources{
		SSM: func(ctx context.Context) (SSM, error) {
			c, err := cfg(ctx)
			if err != nil {
				return nil, err
			}
			return ssm.NewFromConfig(c), nil
		},
		SecretsManager: func(ctx context.Context) (SecretsManager, error) {
			c, err := cfg(ctx)
			if err != nil {
				return nil, err
			}
			return secretsmanager.NewFromConfig(c), nil
		},
	}
}
