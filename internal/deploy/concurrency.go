package deploy

import (
	"context"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/outgate/outgate/internal/stack"
)

// ConcurrencyReader reads what the account can reserve.
type ConcurrencyReader interface {
	GetAccountSettings(ctx context.Context, in *lambda.GetAccountSettingsInput, opts ...func(*lambda.Options)) (*lambda.GetAccountSettingsOutput, error)
	GetFunctionConcurrency(ctx context.Context, in *lambda.GetFunctionConcurrencyInput, opts ...func(*lambda.Options)) (*lambda.GetFunctionConcurrencyOutput, error)
}

// minUnreserved is what Lambda keeps for functions without a reservation:
// a reservation that would leave less is refused.
const minUnreserved = 100

// concurrencyParameters checks that the account can spare the
// reservations the stack asks for, before CloudFormation fails halfway on
// them. The guardian's single slot comes first (it serialises the runs that
// move IPs); the relay's cap is dropped, with a message, when it does not
// fit. Nothing is returned when everything fits or the quota cannot be read.
func concurrencyParameters(ctx context.Context, api ConcurrencyReader, o stack.TemplateOptions, prev *Deployed, say func(string, ...any)) map[string]string {
	out, err := api.GetAccountSettings(ctx, &lambda.GetAccountSettingsInput{})
	if err != nil || out.AccountLimit == nil {
		say("could not read the account's Lambda concurrency quota (%v): reserving as asked; if the stack fails on ReservedConcurrentExecutions, see docs/deploy.md, \"Cost guard\"", err)
		return nil
	}
	spare := int(aws.ToInt32(out.AccountLimit.UnreservedConcurrentExecutions)) - minUnreserved
	// What this deployment already holds is given back by the update.
	if prev != nil {
		for _, id := range []string{"Relay", "Guardian"} {
			if fn := prev.Resources[id]; fn != "" {
				if c, err := api.GetFunctionConcurrency(ctx, &lambda.GetFunctionConcurrencyInput{FunctionName: aws.String(fn)}); err == nil {
					spare += int(aws.ToInt32(c.ReservedConcurrentExecutions))
				}
			}
		}
	}
	params := map[string]string{}
	total := out.AccountLimit.ConcurrentExecutions
	if o.Mode == "eni" {
		if spare < 1 {
			params[stack.ParamGuardianCap] = "0"
			say("WARNING: the account's concurrency quota (%d, of which Lambda keeps %d unreserved) cannot spare one execution for the guardian: its runs may overlap. Ask AWS for a higher quota (Service Quotas, Lambda \"Concurrent executions\") and run up again", total, minUnreserved)
		} else {
			spare--
		}
	}
	want := o.RelayConcurrency
	if want > 0 && want > spare {
		params[stack.ParamRelayCap] = "0"
		say("WARNING: the account's concurrency quota (%d, of which Lambda keeps %d unreserved) leaves %s to reserve, not the relay's %d: the relay runs without a cap, so a flood of calls has no ceiling on cost. Ask AWS for a higher quota, or lower --relay-concurrency", total, minUnreserved, strconv.Itoa(max(spare, 0)), want)
	}
	return params
}
