package deploy

import (
	"context"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
)

// alarmIDs are the logical ids of the stack's alarms; each alarm is named
// <stack>-<id>.
var alarmIDs = []string{"EgressIpAlarm", "RelayKeepaliveMissingAlarm", "Relay5xxAlarm", "RelayThrottlesAlarm",
	"EnisWithoutIpAlarm", "GuardianErrorsAlarm", "GuardianNotRunningAlarm"}

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
func alarmNotice(o TemplateOptions, say func(string, ...any)) {
	switch {
	case o.NotifyTopic != "":
		say("alarms publish to %s", o.NotifyTopic)
	case len(o.Notify) > 0:
		say("alarms mail %s: AWS sends each a confirmation link, and nothing is delivered until it is clicked", strings.Join(o.Notify, ", "))
	default:
		say("WARNING: no --notify or --notify-topic: the alarms publish to the stack's topic (output %s), which nobody is subscribed to", OutputAlarmTopic)
	}
}
