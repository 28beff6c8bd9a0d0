package deploy

import (
	"context"

	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"

	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/resourcegroupstaggingapi"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/outgate/outgate/internal/attach"
	"github.com/outgate/outgate/internal/attached"
	"github.com/outgate/outgate/internal/awserr"
	"github.com/outgate/outgate/internal/deployedconfig"
	"github.com/outgate/outgate/internal/fleet"
	"github.com/outgate/outgate/internal/guardian"
	"github.com/outgate/outgate/internal/preflight"
)

// The AWS calls the control plane makes, one narrow interface per service.
// The SDK clients satisfy them; tests use moto through the same SDK.

// CloudFormation deploys and removes the stack.
type CloudFormation interface {
	DescribeStacks(ctx context.Context, in *cloudformation.DescribeStacksInput, opts ...func(*cloudformation.Options)) (*cloudformation.DescribeStacksOutput, error)
	CreateChangeSet(ctx context.Context, in *cloudformation.CreateChangeSetInput, opts ...func(*cloudformation.Options)) (*cloudformation.CreateChangeSetOutput, error)
	DescribeChangeSet(ctx context.Context, in *cloudformation.DescribeChangeSetInput, opts ...func(*cloudformation.Options)) (*cloudformation.DescribeChangeSetOutput, error)
	ExecuteChangeSet(ctx context.Context, in *cloudformation.ExecuteChangeSetInput, opts ...func(*cloudformation.Options)) (*cloudformation.ExecuteChangeSetOutput, error)
	DeleteChangeSet(ctx context.Context, in *cloudformation.DeleteChangeSetInput, opts ...func(*cloudformation.Options)) (*cloudformation.DeleteChangeSetOutput, error)
	DescribeStackEvents(ctx context.Context, in *cloudformation.DescribeStackEventsInput, opts ...func(*cloudformation.Options)) (*cloudformation.DescribeStackEventsOutput, error)
	ListStackResources(ctx context.Context, in *cloudformation.ListStackResourcesInput, opts ...func(*cloudformation.Options)) (*cloudformation.ListStackResourcesOutput, error)
	DeleteStack(ctx context.Context, in *cloudformation.DeleteStackInput, opts ...func(*cloudformation.Options)) (*cloudformation.DeleteStackOutput, error)
	// GetTemplate: who the running stack's alarms page, kept on a re-run.
	GetTemplate(ctx context.Context, in *cloudformation.GetTemplateInput, opts ...func(*cloudformation.Options)) (*cloudformation.GetTemplateOutput, error)
}

// S3 stages the function zips.
type S3 interface {
	HeadBucket(ctx context.Context, in *s3.HeadBucketInput, opts ...func(*s3.Options)) (*s3.HeadBucketOutput, error)
	CreateBucket(ctx context.Context, in *s3.CreateBucketInput, opts ...func(*s3.Options)) (*s3.CreateBucketOutput, error)
	PutBucketVersioning(ctx context.Context, in *s3.PutBucketVersioningInput, opts ...func(*s3.Options)) (*s3.PutBucketVersioningOutput, error)
	PutBucketEncryption(ctx context.Context, in *s3.PutBucketEncryptionInput, opts ...func(*s3.Options)) (*s3.PutBucketEncryptionOutput, error)
	PutPublicAccessBlock(ctx context.Context, in *s3.PutPublicAccessBlockInput, opts ...func(*s3.Options)) (*s3.PutPublicAccessBlockOutput, error)
	PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error)
}

// EC2 finds, allocates and tags the deployment's IPs, and reads ENIs. It
// has no ReleaseAddress: only IPReleaser does, used by `outgate ips release`.
type EC2 interface {
	guardian.EC2
	VPCReader
	ShapeReader
}

// IPReleaser is the one destructive IP call, kept apart on purpose.
type IPReleaser interface {
	ReleaseAddress(ctx context.Context, in *ec2.ReleaseAddressInput, opts ...func(*ec2.Options)) (*ec2.ReleaseAddressOutput, error)
}

// Lambda reads the relay's state and edits functions for attach/detach.
type Lambda interface {
	guardian.Lambda
	attach.FunctionEditor
	GetFunctionUrlConfig(ctx context.Context, in *lambda.GetFunctionUrlConfigInput, opts ...func(*lambda.Options)) (*lambda.GetFunctionUrlConfigOutput, error)
	// Stopping and restarting the guardian around an eni -> nat switch.
	PutFunctionConcurrency(ctx context.Context, in *lambda.PutFunctionConcurrencyInput, opts ...func(*lambda.Options)) (*lambda.PutFunctionConcurrencyOutput, error)
	DeleteFunctionConcurrency(ctx context.Context, in *lambda.DeleteFunctionConcurrencyInput, opts ...func(*lambda.Options)) (*lambda.DeleteFunctionConcurrencyOutput, error)
	// Finding functions attached to the deployment (lambda:ListFunctions).
	ListFunctions(ctx context.Context, in *lambda.ListFunctionsInput, opts ...func(*lambda.Options)) (*lambda.ListFunctionsOutput, error)
}

// CloudWatch reads the guardian's metrics and the alarms for status.
type CloudWatch interface {
	GetMetricStatistics(ctx context.Context, in *cloudwatch.GetMetricStatisticsInput, opts ...func(*cloudwatch.Options)) (*cloudwatch.GetMetricStatisticsOutput, error)
	DescribeAlarms(ctx context.Context, in *cloudwatch.DescribeAlarmsInput, opts ...func(*cloudwatch.Options)) (*cloudwatch.DescribeAlarmsOutput, error)
}

// STS tells who the caller is (and that credentials work at all).
type STS interface {
	GetCallerIdentity(ctx context.Context, in *sts.GetCallerIdentityInput, opts ...func(*sts.Options)) (*sts.GetCallerIdentityOutput, error)
}

// RetryMaxAttempts is how often the SDK tries a call that fails with a
// retryable error (throttling, 5xx) before outgate sees the error.
const RetryMaxAttempts = 8

// retryBackoff replaces the SDK's backoff in tests (nil: the SDK's).
var retryBackoff retry.BackoffDelayer

// Clients bundles the clients of one account and region.
type Clients struct {
	Region         string
	CloudFormation CloudFormation
	S3             S3
	EC2            EC2
	Releaser       IPReleaser
	SSM            deployedconfig.SSM
	Lambda         Lambda
	STS            STS
	IAM            attach.RolePolicyAttacher
	CloudWatch     CloudWatch
	Logs           Logs
	Tagging        attached.Tagging // the functions attached to a deployment (status)
	// Instance mode: the refusals' EC2 reads, the Auto Scaling groups, and
	// the instances' EC2 reads (status, up's wait, a switch's hand-over).
	Preflight preflight.EC2
	// SecurityGroups reads the instances' security group back, so a
	// re-run keeps --allow-from (ec2:DescribeSecurityGroups).
	SecurityGroups SecurityGroups
	AutoScaling    fleet.AutoScaling
	Fleet          fleet.EC2
}

// NewClients makes the SDK clients of one account and region. pathStyleS3
// keeps bucket names out of DNS, which emulators (moto) need.
func NewClients(ac aws.Config, pathStyleS3 bool) Clients {
	// The SDK's retryer is the one retry loop for AWS calls (throttling
	// included): outgate's own loops only poll for state, so attempts never
	// multiply. AWS_MAX_ATTEMPTS / AWS_RETRY_MODE, when set, win.
	if ac.RetryMaxAttempts == 0 && ac.RetryMode == "" {
		ac.Retryer = func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts, o.MaxBackoff = RetryMaxAttempts, 20*time.Second
				if retryBackoff != nil {
					o.Backoff = retryBackoff
				}
			})
		}
	}
	// A failure to get credentials gets a type of its own, so awserr.Explain
	// says so without reading the SDK's text, and it is not retried.
	ac.Credentials = awserr.Credentials(ac.Credentials)
	e := ec2.NewFromConfig(ac)
	return Clients{Region: ac.Region, CloudFormation: cloudformation.NewFromConfig(ac),
		S3: s3.NewFromConfig(ac, func(o *s3.Options) { o.UsePathStyle = pathStyleS3 }), EC2: e, Releaser: e,
		SSM: ssm.NewFromConfig(ac), Lambda: lambda.NewFromConfig(ac), STS: sts.NewFromConfig(ac), IAM: iam.NewFromConfig(ac),
		CloudWatch: cloudwatch.NewFromConfig(ac), Logs: cloudwatchlogs.NewFromConfig(ac), Tagging: resourcegroupstaggingapi.NewFromConfig(ac),
		Preflight: e, AutoScaling: autoscaling.NewFromConfig(ac), Fleet: e, SecurityGroups: e}
}
