package instance

import (
	"encoding/json"
	"fmt"
	"math"
	"testing"
)

// emfUnits are the units CloudWatch accepts (CloudWatch API Reference,
// MetricDatum, Unit), which the EMF specification's MetricDefinition.Unit
// takes.
var emfUnits = map[string]bool{}

func init() {
	for _, u := range []string{"Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes", "Gigabytes", "Terabytes",
		"Bits", "Kilobits", "Megabits", "Gigabits", "Terabits", "Percent", "Count", "Bytes/Second", "Kilobytes/Second",
		"Megabytes/Second", "Gigabytes/Second", "Terabytes/Second", "Bits/Second", "Kilobits/Second", "Megabits/Second",
		"Gigabits/Second", "Terabits/Second", "Count/Second", "None"} {
		emfUnits[u] = true
	}
}

// emfViolations checks one log line against "Specification: Embedded metric
// format" (docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/
// CloudWatch_Embedded_Metric_Format_Specification.html): nothing local
// ingests EMF, and CloudWatch drops a line that breaks the spec without an
// error to the writer, so the agent's metrics (and the alarms on them)
// would silently be missing.
func emfViolations(line []byte) []string {
	var bad []string
	var root map[string]any
	if err := json.Unmarshal(line, &root); err != nil {
		return []string{"not a JSON object: " + err.Error()}
	}
	meta, ok := root["_aws"].(map[string]any)
	if !ok {
		return []string{"no _aws object"}
	}
	if ts, ok := meta["Timestamp"].(float64); !ok || ts <= 0 || ts != math.Trunc(ts) {
		bad = append(bad, fmt.Sprintf("_aws.Timestamp %v is not milliseconds since the epoch", meta["Timestamp"]))
	}
	dirs, ok := meta["CloudWatchMetrics"].([]any)
	if !ok || len(dirs) == 0 {
		return append(bad, "_aws.CloudWatchMetrics is not a non-empty array")
	}
	for _, d := range dirs {
		dir, ok := d.(map[string]any)
		if !ok {
			bad = append(bad, "a MetricDirective is not an object")
			continue
		}
		if ns, ok := dir["Namespace"].(string); !ok || ns == "" || len(ns) > 255 {
			bad = append(bad, fmt.Sprintf("Namespace %v", dir["Namespace"]))
		}
		sets, ok := dir["Dimensions"].([]any)
		if !ok {
			bad = append(bad, "Dimensions is not an array of dimension sets")
		}
		for _, s := range sets {
			names, ok := s.([]any)
			if !ok || len(names) > 30 {
				bad = append(bad, fmt.Sprintf("dimension set %v is not an array of at most 30 names", s))
				continue
			}
			for _, n := range names {
				name, _ := n.(string)
				if v, ok := root[name].(string); !ok || v == "" || len(v) > 1024 {
					bad = append(bad, fmt.Sprintf("dimension %q has no string value at the root (%v)", name, root[name]))
				}
			}
		}
		metrics, ok := dir["Metrics"].([]any)
		if !ok || len(metrics) == 0 || len(metrics) > 100 {
			bad = append(bad, "Metrics is not an array of 1 to 100 definitions")
		}
		for _, m := range metrics {
			def, _ := m.(map[string]any)
			name, _ := def["Name"].(string)
			if name == "" || len(name) > 255 {
				bad = append(bad, fmt.Sprintf("metric name %v", def["Name"]))
			}
			if u, set := def["Unit"]; set && !emfUnits[fmt.Sprint(u)] {
				bad = append(bad, fmt.Sprintf("metric %q: unit %v is not a CloudWatch unit", name, u))
			}
			if _, ok := root[name].(float64); !ok {
				bad = append(bad, fmt.Sprintf("metric %q has no number at the root (%v)", name, root[name]))
			}
		}
	}
	return bad
}

// TestEMFSpecCheckFails: the check refuses what CloudWatch would drop (a
// unit in the wrong case, a dimension without a value, a metric without a
// number), so a pass means something.
func TestEMFSpecCheckFails(t *testing.T) {
	bad := `{"_aws":{"Timestamp":1700000000000,"CloudWatchMetrics":[{"Namespace":"Outgate","Dimensions":[["Deployment","AZ"]],` +
		`"Metrics":[{"Name":"InstanceReady","Unit":"count"},{"Name":"EgressWrongIP","Unit":"Count"}]}]},"Deployment":"pay","InstanceReady":1}`
	if v := emfViolations([]byte(bad)); len(v) != 3 {
		t.Fatalf("violations %q, want the unit, the AZ and EgressWrongIP", v)
	}
}
