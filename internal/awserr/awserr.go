// Package awserr turns the AWS SDK's errors into the one-line errors the
// control plane prints, and matches them by their API error code (smithy
// APIError), never by message text.
package awserr

import (
	"errors"
	"fmt"
	"strings"

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
	if strings.Contains(err.Error(), "failed to retrieve credentials") || strings.Contains(err.Error(), "no EC2 IMDS role found") {
		return fmt.Errorf("%s: no AWS credentials found; set AWS_PROFILE or use --profile, or export AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY", doing)
	}
	return fmt.Errorf("%s: %w", doing, err)
}

// IsCode reports whether err is the AWS error with this code.
func IsCode(err error, code string) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == code
}
