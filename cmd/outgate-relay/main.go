// Command outgate-relay is the bootstrap of outgate's relay Lambda function
// (provided.al2023). Build it with:
//
//	GOOS=linux GOARCH=arm64 go build -tags lambda.norpc -trimpath -ldflags='-s -w' -o bootstrap ./cmd/outgate-relay
//
// It reads its config once per cold start from OUTGATE_CONFIG (the YAML) or
// OUTGATE_CONFIG_SSM (an SSM parameter, SecureString allowed). A bad config
// ends the cold start with one JSON log line, not a stack trace.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/outgate/outgate/internal/config"
	"github.com/outgate/outgate/internal/lambdarelay"
)

func main() {
	ctx := context.Background()
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
		cfg, version, err = reload(ctx)
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
	h, err := lambdarelay.New(lambdarelay.Options{
		Config:   cfg,
		Function: os.Getenv("AWS_LAMBDA_FUNCTION_NAME"),
		Expected: expected,
		Log:      os.Stdout,
		Metrics:  os.Stdout,
		Reload:   reload,
		Version:  version,
	})
	if err != nil {
		fatal("start", err)
	}
	lambda.Start(h.Handle)
}

// fatal writes one JSON line that CloudWatch shows whole, and exits.
func fatal(stage string, err error) {
	line, _ := json.Marshal(map[string]string{"level": "ERROR", "msg": "outgate-relay cannot start", "stage": stage, "error": err.Error()})
	fmt.Fprintln(os.Stderr, string(line))
	os.Exit(1)
}
