package stack

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/outgate/outgate/internal/guardian"
)

// TestDriftAlarmWatchesWhatTheGuardianEmits: AttachedFunctionDriftAlarm
// watches the metric the guardian writes as EMF, in the same namespace, with
// the same single dimension, whose value the alarm and the guardian's
// OUTGATE_DEPLOYMENT both take from the stack name. Dimensions "are part
// of the unique identifier for a metric" (CloudWatch API Reference,
// Dimension) and an alarm's dimension name "must have been included when
// the metric was published" (CloudFormation, AWS::CloudWatch::Alarm
// Dimension), so a rename on either side leaves the alarm watching nothing,
// and with TreatMissingData notBreaching it would never page. (That the
// alarm publishes to the topic is TestEveryAlarmPagesSomeone.)
func TestDriftAlarmWatchesWhatTheGuardianEmits(t *testing.T) {
	res := resources(t, TemplateOptions{})
	p := res["AttachedFunctionDriftAlarm"]["Properties"].(map[string]any)

	var line bytes.Buffer
	guardian.Report(&line, guardian.Summary{Deployment: "pay", AttachedChecked: true, DriftedFunctions: []string{"sms: no VPC config"}})
	var emf struct {
		AWS struct {
			CloudWatchMetrics []struct {
				Namespace  string
				Dimensions [][]string
				Metrics    []struct{ Name string }
			}
		} `json:"_aws"`
	}
	dec := json.NewDecoder(&line)
	var root map[string]any
	for dec.More() { // the summary line, then the EMF line
		root = nil
		if err := dec.Decode(&root); err != nil {
			t.Fatal(err)
		}
	}
	raw, _ := json.Marshal(root)
	if err := json.Unmarshal(raw, &emf); err != nil || len(emf.AWS.CloudWatchMetrics) != 1 {
		t.Fatalf("no EMF directive in the guardian's report: %s (%v)", raw, err)
	}
	d := emf.AWS.CloudWatchMetrics[0]
	emitted := false
	for _, m := range d.Metrics {
		emitted = emitted || m.Name == p["MetricName"]
	}
	if !emitted || p["Namespace"] != d.Namespace {
		t.Errorf("alarm watches %v/%v; the guardian emits %s/%v", p["Namespace"], p["MetricName"], d.Namespace, d.Metrics)
	}
	if root[fmt.Sprint(p["MetricName"])] != float64(1) {
		t.Errorf("one drifted function reported as %v", root[fmt.Sprint(p["MetricName"])])
	}
	dims, _ := p["Dimensions"].([]any)
	if len(d.Dimensions) != 1 || len(d.Dimensions[0]) != 1 || len(dims) != 1 {
		t.Fatalf("alarm dimensions %v, emitted %v: want exactly one on each side", dims, d.Dimensions)
	}
	dim := dims[0].(map[string]any)
	if dim["Name"] != d.Dimensions[0][0] || root[d.Dimensions[0][0]] != "pay" {
		t.Errorf("alarm dimension %v; the guardian emits %s=%v", dim, d.Dimensions[0][0], root[d.Dimensions[0][0]])
	}
	env := res["Guardian"]["Properties"].(map[string]any)["Environment"].(map[string]any)["Variables"].(map[string]any)
	if fmt.Sprint(env[guardian.EnvDeployment]) != fmt.Sprint(dim["Value"]) {
		t.Errorf("alarm dimension value %v, guardian's %s %v: they must be the same name", dim["Value"], guardian.EnvDeployment, env[guardian.EnvDeployment])
	}
}
