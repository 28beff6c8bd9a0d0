package claim

import (
	"errors"

	"github.com/aws/smithy-go"
)

// apiCode is err's AWS error code, or "".
func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}
