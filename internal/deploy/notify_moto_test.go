package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/outgate/outgate/internal/stack"
)

// deployedTemplate is the template the stack runs now.
func deployedTemplate(t *testing.T, c Clients, name string) map[string]map[string]any {
	t.Helper()
	out, err := c.CloudFormation.GetTemplate(context.Background(), &cloudformation.GetTemplateInput{StackName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	var doc struct{ Resources map[string]map[string]any }
	if err := json.Unmarshal([]byte(aws.ToString(out.TemplateBody)), &doc); err != nil {
		t.Fatal(err)
	}
	return doc.Resources
}

// TestRerunKeepsWhoIsPaged: a plain re-run of up (no --notify, no
// --notify-topic) keeps the alarm routing the deployment has. An
// AWS::SNS::Topic's Subscription list is updated in place
// (CloudFormation User Guide, AWS::SNS::Topic Subscription: "Update
// requires: No interruption"), so a template without the addresses
// unsubscribes them, and one without the user's topic moves every alarm to
// a topic nobody reads: either way the alarms stop paging anyone, silently.
func TestRerunKeepsWhoIsPaged(t *testing.T) {
	c, _ := motoClients(t)
	ctx := context.Background()
	noGuardianRuns(t)

	mail := motoUp("paged", stack.TemplateOptions{Mode: "nat", Arch: "x86_64", AZs: 1, Notify: []string{"ops@example.com", "sre@example.com"}})
	mail.Set = map[string]bool{FlagMode: true, FlagArch: true, FlagAZs: true, FlagNotify: true}
	if _, err := Up(ctx, c, mail); err != nil {
		t.Fatal(err)
	}
	if _, err := Up(ctx, c, motoUp("paged", cliDefaults)); err != nil {
		t.Fatalf("plain re-run: %v", err)
	}
	if subs := fmt.Sprint(deployedTemplate(t, c, "paged")["AlarmTopic"]["Properties"].(map[string]any)["Subscription"]); subs !=
		"[map[Endpoint:ops@example.com Protocol:email] map[Endpoint:sre@example.com Protocol:email]]" {
		t.Errorf("a plain re-run changed the subscriptions to %s", subs)
	}

	// A topic of the user's own stays the alarms' target.
	topic := "arn:aws:sns:us-east-1:123456789012:pager"
	own := motoUp("paged", stack.TemplateOptions{NotifyTopic: topic})
	own.Set = map[string]bool{FlagNotifyTopic: true}
	if _, err := Up(ctx, c, own); err != nil {
		t.Fatal(err)
	}
	if _, err := Up(ctx, c, motoUp("paged", cliDefaults)); err != nil {
		t.Fatalf("plain re-run: %v", err)
	}
	res := deployedTemplate(t, c, "paged")
	if res["AlarmTopic"] != nil || fmt.Sprint(res["EgressIpAlarm"]["Properties"].(map[string]any)["AlarmActions"]) != "["+topic+"]" {
		t.Errorf("a plain re-run moved the alarms off %s: topic %v, actions %v", topic, res["AlarmTopic"], res["EgressIpAlarm"]["Properties"].(map[string]any)["AlarmActions"])
	}

	// Asking for it is how it changes: --notify replaces the topic.
	back := motoUp("paged", stack.TemplateOptions{Notify: []string{"ops@example.com"}})
	back.Set = map[string]bool{FlagNotify: true}
	if _, err := Up(ctx, c, back); err != nil {
		t.Fatal(err)
	}
	if subs := fmt.Sprint(deployedTemplate(t, c, "paged")["AlarmTopic"]["Properties"].(map[string]any)["Subscription"]); subs != "[map[Endpoint:ops@example.com Protocol:email]]" {
		t.Errorf("--notify after --notify-topic: %s", subs)
	}
}
