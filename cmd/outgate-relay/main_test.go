package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/outgate/outgate/internal/lambdarelay"
)

// TestColdStartGivesUpOnASilentSSM: an SSM endpoint that accepts the
// connection and never answers (what a relay without a way to SSM sees) ends
// the cold start's read with an error that says what to check, instead of
// hanging until Lambda's timeout.
func TestColdStartGivesUpOnASilentSSM(t *testing.T) {
	release := make(chan struct{})
	silent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer silent.Close()
	defer close(release)
	client := ssm.New(ssm.Options{Region: "us-east-1", BaseEndpoint: aws.String(silent.URL),
		Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", "")})
	read := lambdarelay.SSMSource(client, "/outgate/pay/config")
	_, _, err := firstConfig(context.Background(), read, 100*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "no answer from SSM within 100ms") || !strings.Contains(err.Error(), "ssm VPC endpoint") {
		t.Fatalf("error %v, want one naming the timeout and what to check", err)
	}
}
