// Command outgate-guardian is the bootstrap of outgate's guardian Lambda
// function, run on a schedule (every minute by default) and once right after
// deploy. Each invocation is one guardian pass; see internal/guardian.
//
//	GOOS=linux GOARCH=arm64 go build -tags lambda.norpc -trimpath -ldflags='-s -w' -o bootstrap ./cmd/outgate-guardian
package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	awslambda "github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/resourcegroupstaggingapi"

	"github.com/outgate/outgate/internal/buildinfo"
	"github.com/outgate/outgate/internal/guardian"
)

// log is the function's one logger: JSON lines on stdout, which Lambda
// sends to CloudWatch Logs whole.
var log = slog.New(slog.NewJSONHandler(os.Stdout, nil))

func main() {
	ctx := context.Background()
	// One line per cold start that says which build runs, as `outgate
	// version` and serve's outgate_build_info metric do.
	log.Info("outgate-guardian starting", buildinfo.Get().Attrs()...)
	cfg, err := guardian.ConfigFromEnv(os.Getenv)
	if err != nil {
		fatal(err)
	}
	ac, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRetryer(guardian.SDKRetryer))
	if err != nil {
		fatal(err)
	}
	g, err := guardian.New(cfg, ec2.NewFromConfig(ac), awslambda.NewFromConfig(ac))
	if err != nil {
		fatal(err)
	}
	// Every run also checks the functions attached to the deployment.
	if err := g.CheckAttached(resourcegroupstaggingapi.NewFromConfig(ac)); err != nil {
		fatal(err)
	}
	lambda.Start(func(ctx context.Context, _ json.RawMessage) (guardian.Summary, error) {
		// Leave time to report before Lambda's own timeout.
		if dl, ok := ctx.Deadline(); ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, dl.Add(-2*time.Second))
			defer cancel()
		}
		s := g.Run(ctx)
		guardian.Report(os.Stdout, s)
		// A failed run fails the invocation, so Lambda's own Errors
		// metric counts it too, beside GuardianErrors.
		return s, s.Err()
	})
}

// fatal ends a cold start that cannot go on with one JSON line on stderr
// (the reason, not a stack trace) and exit status 1.
func fatal(err error) {
	slog.New(slog.NewJSONHandler(os.Stderr, nil)).Error("outgate-guardian cannot start", "error", err.Error())
	os.Exit(1)
}
