package deploy

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/outgate/outgate/internal/stack"
)

// quotaLambda is an in-memory Lambda for the account's concurrency: moto
// has no GetAccountSettings.
type quotaLambda struct {
	total, unreserved int32
	reserved          map[string]int32
	err               error
}

func (q quotaLambda) GetAccountSettings(context.Context, *lambda.GetAccountSettingsInput, ...func(*lambda.Options)) (*lambda.GetAccountSettingsOutput, error) {
	if q.err != nil {
		return nil, q.err
	}
	return &lambda.GetAccountSettingsOutput{AccountLimit: &lambdatypes.AccountLimit{ConcurrentExecutions: q.total, UnreservedConcurrentExecutions: aws.Int32(q.unreserved)}}, nil
}

func (q quotaLambda) GetFunctionConcurrency(_ context.Context, in *lambda.GetFunctionConcurrencyInput, _ ...func(*lambda.Options)) (*lambda.GetFunctionConcurrencyOutput, error) {
	r, ok := q.reserved[aws.ToString(in.FunctionName)]
	if !ok {
		return &lambda.GetFunctionConcurrencyOutput{}, nil
	}
	return &lambda.GetFunctionConcurrencyOutput{ReservedConcurrentExecutions: aws.Int32(r)}, nil
}

// TestConcurrencyFitsTheAccount: Lambda refuses a reservation that leaves
// fewer than 100 unreserved executions (Lambda Developer Guide,
// "Configuring reserved concurrency"), and some new accounts have a quota
// of 10. up then keeps the guardian's single slot if it can, drops the
// relay's cap, and says so, instead of failing halfway through the stack.
func TestConcurrencyFitsTheAccount(t *testing.T) {
	o := stack.TemplateOptions{}
	o.Normalize()
	var said []string
	say := func(f string, a ...any) { said = append(said, fmt.Sprintf(f, a...)) }
	ctx := context.Background()
	if p := concurrencyParameters(ctx, quotaLambda{total: 1000, unreserved: 1000}, o, nil, say); len(p) != 0 || len(said) != 0 {
		t.Errorf("a default account: %v %v", p, said)
	}
	p := concurrencyParameters(ctx, quotaLambda{total: 10, unreserved: 10}, o, nil, say)
	if p[stack.ParamGuardianCap] != "0" || p[stack.ParamRelayCap] != "0" || !containsText(said, "guardian: its runs may overlap") || !containsText(said, "without a cap") {
		t.Errorf("a quota of 10: %v %v", p, said)
	}
	said = nil
	p = concurrencyParameters(ctx, quotaLambda{total: 1000, unreserved: 105}, o, nil, say)
	if _, g := p[stack.ParamGuardianCap]; g || p[stack.ParamRelayCap] != "0" || len(said) != 1 {
		t.Errorf("room for the guardian only: %v %v", p, said)
	}
	// An update gets back what the deployment already holds.
	prev := &Deployed{Resources: map[string]string{"Relay": "pay-relay", "Guardian": "pay-guardian"}}
	said = nil
	if p := concurrencyParameters(ctx, quotaLambda{total: 1000, unreserved: 100, reserved: map[string]int32{"pay-relay": 10, "pay-guardian": 1}}, o, prev, say); len(p) != 0 {
		t.Errorf("an update of a deployment holding its reservations: %v %v", p, said)
	}
	said = nil
	if p := concurrencyParameters(ctx, quotaLambda{err: errors.New("AccessDenied")}, o, nil, say); p != nil || !containsText(said, "could not read") {
		t.Errorf("unreadable quota: %v %v", p, said)
	}
}
