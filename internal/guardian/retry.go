package guardian

import (
	"context"
	"errors"
	"time"

	"github.com/aws/smithy-go"
)

// throttleCodes are the AWS error codes that mean "slow down".
var throttleCodes = map[string]bool{
	"RequestLimitExceeded": true, "Throttling": true, "ThrottlingException": true,
	"TooManyRequestsException": true, "RequestThrottled": true,
}

// code returns the AWS error code of err, or "" for nil.
func code(err error) string {
	if err == nil {
		return ""
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return "unknown"
}

// call runs f, retrying throttling errors with exponential backoff (200ms,
// doubling, at most 5s) up to MaxAttempts times, within ctx. The SDK's own
// retryer runs under this one; these retries cover bursts it gives up on.
func call[T any](ctx context.Context, g *Guardian, s *Summary, f func() (T, error)) (T, error) {
	delay := 200 * time.Millisecond
	for attempt := 1; ; attempt++ {
		v, err := f()
		if err == nil || !throttleCodes[code(err)] || attempt >= g.cfg.MaxAttempts {
			return v, err
		}
		s.Retries++
		if serr := g.sleep(ctx, delay); serr != nil {
			return v, err
		}
		delay = min(2*delay, 5*time.Second)
	}
}
