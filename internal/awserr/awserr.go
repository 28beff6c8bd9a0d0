// Package awserr turns the AWS SDK's errors into the one-line errors the
// control plane prints, and matches them by their API error code (smithy
// APIError) or their type, never by message text.
package awserr

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/smithy-go"
)

// Explain turns an SDK error into one line that says what outgate was doing
// and, for permission problems, which action is missing.
func Explain(doing string, err error) error {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code := ae.ErrorCode()
		switch {
		case code == "AccessDenied" || code == "AccessDeniedException" || code == "UnauthorizedOperation" || strings.HasSuffix(code, "AccessDenied"):
			return fmt.Errorf("%s: permission denied (%s); the credentials need the action named in parentheses", doing, code)
		case code == "ExpiredToken" || code == "InvalidClientTokenId" || code == "UnrecognizedClientException":
			return fmt.Errorf("%s: the AWS credentials are not valid (%s); check --profile or your environment", doing, code)
		}
		return fmt.Errorf("%s: %s: %s", doing, code, ae.ErrorMessage())
	}
	var nc *NoCredentials
	if errors.As(err, &nc) {
		return fmt.Errorf("%s: no usable AWS credentials; set AWS_PROFILE or use --profile, or export AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (%s)",
			doing, strings.Join(strings.Fields(nc.Err.Error()), " "))
	}
	return fmt.Errorf("%s: %w", doing, err)
}

// IsCode reports whether err is the AWS error with this code.
func IsCode(err error, code string) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == code
}

// NoCredentials is a failure to get credentials from the provider (the
// default chain: environment, profile, SSO, instance role), before any
// request left for AWS. The SDK reports it only as text ("get identity:
// ... failed to refresh cached credentials"), so Credentials gives it this
// type for Explain to find.
type NoCredentials struct{ Err error }

func (e *NoCredentials) Error() string { return "getting AWS credentials: " + e.Err.Error() }
func (e *NoCredentials) Unwrap() error { return e.Err }

// RetryableError tells the SDK's retryer not to try the call again: the
// provider ran its own attempts (the SSO and STS providers have their own
// clients and retryers), and a missing profile stays missing.
func (e *NoCredentials) RetryableError() bool { return false }

// Credentials wraps a provider so that its failures are NoCredentials. The
// result is a cache shared by every client made from the config, as the
// SDK's own is; anonymous credentials (no signing) pass unchanged.
func Credentials(p aws.CredentialsProvider) aws.CredentialsProvider {
	switch p.(type) {
	case nil, aws.AnonymousCredentials:
		return p
	}
	return aws.NewCredentialsCache(typedFailures{p})
}

type typedFailures struct{ p aws.CredentialsProvider }

func (t typedFailures) Retrieve(ctx context.Context) (aws.Credentials, error) {
	c, err := t.p.Retrieve(ctx)
	if err != nil {
		return c, &NoCredentials{Err: err}
	}
	return c, nil
}
