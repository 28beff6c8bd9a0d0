// Command outgate-relay is the bootstrap of outgate's relay Lambda function
// (provided.al2023). Build it with:
//
//	GOOS=linux GOARCH=arm64 go build -tags lambda.norpc -trimpath -ldflags='-s -w' -o bootstrap ./cmd/outgate-relay
//
// It reads its config at cold start from OUTGATE_CONFIG (the YAML) or
// OUTGATE_CONFIG_SSM (an SSM parameter, SecureString allowed; then again at
// most once a minute, so outgate keys add/revoke take effect without a
// deploy). A bad config ends the cold start with one JSON log line, not a
// stack trace. Its first line says which build starts.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/outgate/outgate/internal/buildinfo"
	"github.com/outgate/outgate/internal/config"
	"github.com/outgate/outgate/internal/idempotency/dynamo"
	"github.com/outgate/outgate/internal/lambdarelay"
	"github.com/outgate/outgate/internal/secrets"
)

func main() {
	ctx := context.Background()
	// One line per cold start that says which build runs, as `outgate
	// version` and serve's outgate_build_info metric do.
	slog.New(slog.NewJSONHandler(os.Stdout, nil)).Info("outgate-relay starting", buildinfo.Get().Attrs()...)
	var (
		cfg     *config.Config
		version string
		reload  func(context.Context) (*config.Config, string, error)
		err     error
	)
	if param := os.Getenv(lambdarelay.EnvConfigSSM); param != "" && os.Getenv(lambdarelay.EnvConfig) == "" {
		ac, err := awsconfig.LoadDefaultConfig(ctx)
		if err != nil {
			fatal("config", err)
		}
		// With the config in SSM, warm instances pick up changes (outgate
		// keys add/revoke) within a minute.
		reload = lambdarelay.SSMSource(ssm.NewFromConfig(ac), param)
		cfg, version, err = firstConfig(ctx, reload, coldStartSSM)
	} else {
		cfg, err = lambdarelay.LoadConfig(ctx, os.Getenv, nil)
	}
	if err != nil {
		fatal("config", err)
	}
	expected, err := lambdarelay.ParseExpected(os.Getenv(lambdarelay.EnvExpectedIPs))
	if err != nil {
		fatal("config", err)
	}
	idem, err := lambdarelay.OpenIdempotency(cfg, os.Getenv, func() (dynamo.API, error) {
		ac, err := awsconfig.LoadDefaultConfig(ctx)
		if err != nil {
			return nil, err
		}
		return dynamodb.NewFromConfig(ac), nil
	})
	if err != nil {
		fatal("config", err)
	}
	h, err := lambdarelay.New(lambdarelay.Options{
		Config:      cfg,
		Function:    os.Getenv("AWS_LAMBDA_FUNCTION_NAME"),
		Expected:    expected,
		Log:         os.Stdout,
		Metrics:     os.Stdout,
		Reload:      reload,
		Version:     version,
		Secrets:     secrets.AWS(func(ctx context.Context) (aws.Config, error) { return awsconfig.LoadDefaultConfig(ctx) }),
		Idempotency: idem,
	})
	if err != nil {
		fatal("start", err)
	}
	lambda.Start(h.Handle)
}

// coldStartSSM bounds the cold start's read of the config. Without a way to
// SSM (no route out, no ssm endpoint) the call would hang until Lambda's own
// timeout, every cold start, with nothing in the log to say why.
const coldStartSSM = 5 * time.Second

// firstConfig reads the config once, within timeout, and says what to check
// when SSM does not answer.
func firstConfig(ctx context.Context, read func(context.Context) (*config.Config, string, error), timeout time.Duration) (*config.Config, string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cfg, version, err := read(ctx)
	if err != nil && ctx.Err() != nil {
		return nil, "", fmt.Errorf("no answer from SSM within %s reading the config: the relay's subnets need a way to SSM (a route to the internet, or an ssm VPC endpoint): %w", timeout, err)
	}
	return cfg, version, err
}

// fatal ends a cold start that cannot go on with one JSON line on stderr
// (CloudWatch shows it whole: the reason, not a stack trace) and exit
// status 1.
func fatal(stage string, err error) {
	slog.New(slog.NewJSONHandler(os.Stderr, nil)).Error("outgate-relay cannot start", "stage", stage, "error", err.Error())
	os.Exit(1)
}
