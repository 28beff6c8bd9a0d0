package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/outgate/outgate/internal/awserr"
	"github.com/outgate/outgate/internal/stack"
)

// alarmIDs are the logical ids of the stack's alarms; each alarm is named
// <stack>-<id>.
var alarmIDs = []string{"EgressIpAlarm", "RelayKeepaliveMissingAlarm", "Relay5xxAlarm", "RelayThrottlesAlarm",
	"EnisWithoutIpAlarm", "GuardianErrorsAlarm", "GuardianNotRunningAlarm", "AttachedFunctionDriftAlarm"}

// Alarm is one of the deployment's alarms as status shows it.
type Alarm struct {
	Name   string `json:"name"`
	State  string `json:"state"` // OK, ALARM, INSUFFICIENT_DATA
	Reason string `json:"reason,omitempty"`
}

// readAlarms returns the state of the deployment's alarms.
func readAlarms(ctx context.Context, c CloudWatch, stack string) ([]Alarm, error) {
	var names []string
	for _, id := range alarmIDs {
		names = append(names, stack+"-"+id)
	}
	out, err := c.DescribeAlarms(ctx, &cloudwatch.DescribeAlarmsInput{AlarmNames: names})
	if err != nil {
		return nil, err
	}
	var list []Alarm
	for _, a := range out.MetricAlarms {
		list = append(list, Alarm{Name: aws.ToString(a.AlarmName), State: string(a.StateValue), Reason: aws.ToString(a.StateReason)})
	}
	return list, nil
}

// alarmNotice tells whoever runs up where the alarms go, and that a mail
// subscription delivers nothing until it is confirmed.
func alarmNotice(o stack.TemplateOptions, say func(string, ...any)) {
	switch {
	case o.NotifyTopic != "":
		say("alarms publish to %s", o.NotifyTopic)
	case len(o.Notify) > 0:
		say("alarms mail %s: AWS sends each a confirmation link, and nothing is delivered until it is clicked", strings.Join(o.Notify, ", "))
	default:
		say("WARNING: no --notify or --notify-topic: the alarms publish to the stack's topic (output %s), which nobody is subscribed to", stack.OutputAlarmTopic)
	}
}

// keepAlarmRouting fills --notify / --notify-topic, when neither is given,
// from the running stack's template: the addresses subscribed to its own
// topic, or the topic of the user's that its alarms publish to. CloudFormation
// updates a topic's Subscription list in place, so a template without them
// would unsubscribe the addresses (or move the alarms to a topic nobody
// reads) and the alarms would stop paging anyone, silently.
func keepAlarmRouting(ctx context.Context, c CloudFormation, name string, o *stack.TemplateOptions, set map[string]bool) error {
	if set[FlagNotify] || set[FlagNotifyTopic] {
		return nil
	}
	out, err := c.GetTemplate(ctx, &cloudformation.GetTemplateInput{StackName: aws.String(name)})
	if err != nil {
		return awserr.Explain("reading who the deployment's alarms page (cloudformation:GetTemplate); or give --notify or --notify-topic", err)
	}
	var doc struct {
		Resources map[string]struct {
			Properties struct {
				Subscription []struct{ Protocol, Endpoint string }
				AlarmActions []any
			}
		}
	}
	if err := json.Unmarshal([]byte(aws.ToString(out.TemplateBody)), &doc); err != nil {
		return fmt.Errorf("reading the deployment's template to keep who its alarms page: %w; give --notify or --notify-topic", err)
	}
	if topic, ok := doc.Resources["AlarmTopic"]; ok {
		o.Notify, o.NotifyTopic = nil, ""
		for _, s := range topic.Properties.Subscription {
			if s.Protocol == "email" {
				o.Notify = append(o.Notify, s.Endpoint)
			}
		}
		return nil
	}
	// No topic of its own: the alarms publish to the user's, by its ARN.
	for _, id := range alarmIDs {
		if a, ok := doc.Resources[id]; ok && len(a.Properties.AlarmActions) > 0 {
			if arn, ok := a.Properties.AlarmActions[0].(string); ok {
				o.Notify, o.NotifyTopic = nil, arn
				return nil
			}
		}
	}
	return nil
}
