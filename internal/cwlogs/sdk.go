package cwlogs

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
)

// API is every CloudWatch Logs call the shipper makes, and nothing else: it
// cannot create or delete a log group, change its retention or read logs
// back. The log group is the stack's (its retention and deletion policy are
// set there); an instance only adds its own stream and writes to it. The
// IAM action each call needs is beside it; one statement allowing both on
// arn:aws:logs:REGION:ACCOUNT:log-group:/outgate/NAME/instance:* covers
// both resources (CloudWatch Logs' IAM page: the group ARN with :* is the
// one for policies, and a stream's ARN begins with it).
type API interface {
	// logs:CreateLogStream on
	// arn:aws:logs:REGION:ACCOUNT:log-group:/outgate/NAME/instance:*
	// (the stream's ARN is the group's with :log-stream:ID; the group ARN
	// with :* covers both spellings IAM checks).
	CreateLogStream(ctx context.Context, in *cloudwatchlogs.CreateLogStreamInput, opts ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.CreateLogStreamOutput, error)
	// logs:PutLogEvents on
	// arn:aws:logs:REGION:ACCOUNT:log-group:/outgate/NAME/instance:log-stream:*
	// (the instance's own stream; its name, the instance id, is not known
	// when the role is made).
	PutLogEvents(ctx context.Context, in *cloudwatchlogs.PutLogEventsInput, opts ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.PutLogEventsOutput, error)
}
