package guardian

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestConfigFromEnv(t *testing.T) {
	env := map[string]string{
		EnvDeployment: "prod", EnvSecurityGroup: "sg-1", EnvSubnets: "subnet-a, subnet-b,",
		EnvAllowAllocate: "true", EnvRelayFunction: "relay", EnvKeepaliveEvery: "6h",
	}
	c, err := ConfigFromEnv(func(k string) string { return env[k] })
	if err != nil || len(c.SubnetIDs) != 2 || !c.AllowAllocate || c.KeepaliveEvery != 6*time.Hour || c.RelayFunction != "relay" {
		t.Fatalf("%+v %v", c, err)
	}
	for k, bad := range map[string]string{EnvAllowAllocate: "yes please", EnvKeepaliveEvery: "daily", EnvSubnets: ""} {
		e := map[string]string{}
		for kk, v := range env {
			e[kk] = v
		}
		e[k] = bad
		if _, err := ConfigFromEnv(func(x string) string { return e[x] }); err == nil || !strings.Contains(err.Error(), "OUTGATE_") {
			t.Errorf("%s=%q: %v", k, bad, err)
		}
	}
}

// report is what Report writes.
func report(s Summary) string {
	var b bytes.Buffer
	Report(&b, s)
	return b.String()
}

func TestReport(t *testing.T) {
	out := report(Summary{Deployment: "prod", ENIsSeen: 2, ENIsWithoutIP: 1, IPs: map[string]string{"eni-1": "198.51.100.1", "eni-2": ""}})
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("want a summary line and an EMF line:\n%s", out)
	}
	var sum map[string]any
	json.Unmarshal([]byte(lines[0]), &sum)
	if sum["level"] != "ERROR" || sum["enis_without_ip"] != float64(1) || sum["msg"] != "guardian run" || sum["time"] == nil {
		t.Errorf("summary %v", sum)
	}
	if !strings.Contains(lines[1], `"EnisWithoutIp":1`) || !strings.Contains(lines[1], `"Deployment":"prod"`) {
		t.Errorf("EMF %s", lines[1])
	}
}

// TestReportHasEverySummaryField: the log line carries every field of the
// Summary under the same name and value as the invocation's JSON result,
// set or not (so a field added to Summary and forgotten in attrs fails
// here), and nothing else beside slog's time, level and msg.
func TestReportHasEverySummaryField(t *testing.T) {
	var full Summary
	v := reflect.ValueOf(&full).Elem()
	for i := range v.NumField() {
		switch f := v.Field(i); f.Kind() {
		case reflect.String:
			f.SetString("x")
		case reflect.Int:
			f.SetInt(int64(i + 1))
		case reflect.Bool:
			f.SetBool(true)
		case reflect.Slice:
			f.Set(reflect.ValueOf([]string{"a", "b"}))
		case reflect.Map:
			f.Set(reflect.ValueOf(map[string]string{"eni-1": "198.51.100.1"}))
		default:
			t.Fatalf("Summary.%s: a %s field; teach this test its zero and set values", v.Type().Field(i).Name, f.Kind())
		}
	}
	for name, s := range map[string]Summary{"every field set": full, "nothing set": {}} {
		var logged, result map[string]any
		line, _, _ := strings.Cut(report(s), "\n")
		if err := json.Unmarshal([]byte(line), &logged); err != nil {
			t.Fatal(err)
		}
		delete(logged, "time")
		delete(logged, "level")
		delete(logged, "msg")
		b, _ := json.Marshal(s)
		json.Unmarshal(b, &result)
		if !reflect.DeepEqual(logged, result) {
			t.Errorf("%s: logged\n%v\nwant the invocation's result\n%v", name, logged, result)
		}
	}
}
