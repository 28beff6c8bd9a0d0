package awserr

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/sts"
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
		{fmt.Errorf("get identity: %w", &NoCredentials{Err: errors.New("no provider")}), "no usable AWS credentials; set AWS_PROFILE or use --profile, or export AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (no provider)"},
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

// TestNoCredentialsIsFoundByType: a real SDK client (STS) whose provider
// fails, as the default chain does on a machine with no credentials. The
// error Explain gets is matched by its type (NoCredentials), not by the
// SDK's text; nothing is sent to AWS (a loopback stand-in here), and the
// provider is asked once, not again by the retryer's 8 attempts (with
// backoff) as a refused connection otherwise is.
func TestNoCredentialsIsFoundByType(t *testing.T) {
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		w.WriteHeader(http.StatusBadRequest)
	}))
	defer srv.Close()
	var asked atomic.Int32
	failing := aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
		asked.Add(1)
		// What the instance-role provider says on a laptop: IMDS refused
		// the connection, an error the retryer would retry on its own.
		return aws.Credentials{}, fmt.Errorf("no EC2 IMDS role found,\n  request to EC2 IMDS failed: %w",
			&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED})
	})
	client := sts.NewFromConfig(aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL), Credentials: Credentials(failing),
		Retryer: func() aws.Retryer { return retry.NewStandard(func(o *retry.StandardOptions) { o.MaxAttempts = 8 }) }})
	_, err := client.GetCallerIdentity(context.Background(), &sts.GetCallerIdentityInput{})
	got := Explain("checking credentials (sts:GetCallerIdentity)", err).Error()
	if !strings.HasPrefix(got, "checking credentials (sts:GetCallerIdentity): no usable AWS credentials; set AWS_PROFILE or use --profile") ||
		!strings.Contains(got, "no EC2 IMDS role found, request to EC2 IMDS failed: dial tcp: connection refused)") || strings.Contains(got, "\n") {
		t.Errorf("Explain = %q; want one line saying no usable credentials, with the provider's reason", got)
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("%d requests reached AWS without credentials", n)
	}
	if n := asked.Load(); n != 1 {
		t.Errorf("the provider was asked %d times; a missing credential is not retried", n)
	}
	if Credentials(aws.AnonymousCredentials{}) != (aws.AnonymousCredentials{}) {
		t.Error("anonymous credentials were wrapped: the SDK would sign with them")
	}
}
