package guardian

import (
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
)

// SDKRetryer is the retryer for the guardian's SDK clients. Throttling is
// retried by the guardian itself (call, with its own bounded backoff inside
// the run's deadline), so the SDK must not retry it as well: the two would
// multiply (5 of ours times 3 of the SDK's), and a throttled account would
// be hit harder exactly when it asks for less. The SDK still retries what
// the guardian does not: dropped connections and 5xx answers.
func SDKRetryer() aws.Retryer {
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.Retryables = append([]retry.IsErrorRetryable{retry.IsErrorRetryableFunc(func(err error) aws.Ternary {
			if throttleCodes[code(err)] {
				return aws.FalseTernary
			}
			return aws.UnknownTernary
		})}, o.Retryables...)
	})
}
