package guardian

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
)

// KeepalivePayload is what the relay function recognises as a keepalive.
const KeepalivePayload = `{"outgate":"keepalive"}`

// keepalive makes sure the relay function is invoked regularly, so Lambda
// does not reclaim its ENI for idleness (that happens after weeks, and the
// next real call would fail), and wakes it at once if it is already Inactive.
// The guardian keeps no state: it invokes on the first run after each
// KeepaliveEvery boundary.
func (g *Guardian) keepalive(ctx context.Context, s *Summary) {
	if g.cfg.RelayFunction == "" {
		return
	}
	fn := aws.String(g.cfg.RelayFunction)
	out, err := call(ctx, g, s, func() (*lambda.GetFunctionConfigurationOutput, error) {
		return g.lambda.GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: fn})
	})
	if err != nil {
		s.Errors = append(s.Errors, "reading the relay function's state: "+err.Error())
		return
	}
	s.FunctionState = string(out.State)
	if out.StateReasonCode != "" && out.State != lambdatypes.StateActive {
		s.FunctionState += " (" + string(out.StateReasonCode) + ")"
	}
	now := g.now()
	due := now.Sub(now.Truncate(g.cfg.KeepaliveEvery)) < g.cfg.RunEvery
	if !due && out.State != lambdatypes.StateInactive {
		return
	}
	_, err = call(ctx, g, s, func() (*lambda.InvokeOutput, error) {
		return g.lambda.Invoke(ctx, &lambda.InvokeInput{FunctionName: fn, InvocationType: lambdatypes.InvocationTypeEvent,
			Payload: []byte(KeepalivePayload)})
	})
	if err != nil {
		s.Errors = append(s.Errors, "invoking the relay function: "+err.Error())
		return
	}
	s.KeepaliveSent = true
}
