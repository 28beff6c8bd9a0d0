package awserr

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/aws/smithy-go"
)

// TestExplain: what the user reads for each kind of failure, one line
// saying what outgate was doing; a permission problem names the code and
// says the credentials need the action, bad credentials point at
// --profile, and any other API error keeps its code and message.
func TestExplain(t *testing.T) {
	api := func(code, msg string) error {
		return fmt.Errorf("operation error: %w", &smithy.GenericAPIError{Code: code, Message: msg})
	}
	for _, c := range []struct {
		err  error
		want string
	}{
		{api("AccessDenied", "User: x is not authorized"), "reading the relay (lambda:GetFunction): permission denied (AccessDenied); the credentials need the action named in parentheses"},
		{api("UnauthorizedOperation", "no"), "permission denied (UnauthorizedOperation)"},
		{api("ExpiredToken", "expired"), "the AWS credentials are not valid (ExpiredToken); check --profile"},
		{api("ValidationError", "Stack with id x does not exist"), "reading the relay (lambda:GetFunction): ValidationError: Stack with id x does not exist"},
		{errors.New("failed to retrieve credentials: no provider"), "no AWS credentials found"},
	} {
		got := Explain("reading the relay (lambda:GetFunction)", c.err).Error()
		if !strings.Contains(got, c.want) || strings.Contains(got, "\n") {
			t.Errorf("Explain(%v) = %q, want it to say %q on one line", c.err, got, c.want)
		}
	}
	other := errors.New("dial tcp: timeout")
	if err := Explain("x", other); !errors.Is(err, other) {
		t.Errorf("a non-API error is not wrapped: %v", err)
	}
}

// TestIsCode matches by the API error code through wrapping, never by text.
func TestIsCode(t *testing.T) {
	err := fmt.Errorf("up: %w", &smithy.GenericAPIError{Code: "ChangeSetNotFound", Message: "ValidationError in text"})
	if !IsCode(err, "ChangeSetNotFound") || IsCode(err, "ValidationError") || IsCode(errors.New("ChangeSetNotFound"), "ChangeSetNotFound") {
		t.Error("IsCode must match the code of a wrapped API error and nothing else")
	}
}
