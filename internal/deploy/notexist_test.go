package deploy

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/smithy-go"
)

// missingStack answers DescribeStacks as CloudFormation does for a stack
// that is not there, with a message of another wording than today's: the
// code is the contract, the text is not. (An in-memory stand-in: moto
// words it one way only.)
type missingStack struct {
	CloudFormation
	code string
}

func (m missingStack) DescribeStacks(context.Context, *cloudformation.DescribeStacksInput, ...func(*cloudformation.Options)) (*cloudformation.DescribeStacksOutput, error) {
	return nil, &smithy.GenericAPIError{Code: m.code, Message: "Stack [pay] was not found", Fault: smithy.FaultClient}
}

// TestMissingStackIsKnownByItsCode: up and down tell a missing stack by
// CloudFormation's ValidationError, whatever its message says; any other
// error stays an error.
func TestMissingStackIsKnownByItsCode(t *testing.T) {
	ctx := context.Background()
	if exists, err := stackExistsAny(ctx, missingStack{code: "ValidationError"}, "pay"); exists || err != nil {
		t.Errorf("ValidationError read as exists=%v, err=%v; want a missing stack", exists, err)
	}
	if _, err := stackExistsAny(ctx, missingStack{code: "Throttling"}, "pay"); err == nil {
		t.Error("a Throttling answer was taken for a missing stack")
	}
}
