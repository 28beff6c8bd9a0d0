package guardian

import (
	"errors"
	"net"
	"testing"

	"github.com/aws/smithy-go"
)

// TestSDKRetryerLeavesThrottlingToTheGuardian: the SDK's retryer under the
// guardian must not retry throttling (call does, with its own backoff), or
// every throttled call is sent up to 15 times instead of 5; it still
// retries a dropped connection, which call does not.
func TestSDKRetryerLeavesThrottlingToTheGuardian(t *testing.T) {
	r := SDKRetryer()
	for _, c := range []string{"RequestLimitExceeded", "Throttling", "ThrottlingException"} {
		if r.IsErrorRetryable(&smithy.GenericAPIError{Code: c}) {
			t.Errorf("the SDK retries %s under the guardian's own retries", c)
		}
	}
	if !r.IsErrorRetryable(&net.OpError{Op: "dial", Err: errors.New("connection refused")}) {
		t.Error("the SDK no longer retries a failed connection")
	}
}
