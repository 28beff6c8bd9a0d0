package stack

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestValidateName: names CloudFormation refuses as stack names ("Stack
// name": [a-zA-Z][-a-zA-Z0-9]*, AWS CloudFormation User Guide) are refused
// before anything is allocated, with the rule in the message.
func TestValidateName(t *testing.T) {
	for name, want := range map[string]string{
		"":                                "required",
		"1pay":                            "start with a lower-case letter",
		"-pay":                            "start with a lower-case letter",
		"Pay":                             "start with a lower-case letter",
		"pay_1":                           "lower-case letters, digits",
		"pay.eu":                          "lower-case letters, digits",
		strings.Repeat("a", MaxNameLen+1): "at most",
	} {
		err := ValidateName(name)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ValidateName(%q) = %v, want an error saying %q", name, err, want)
		}
	}
	for _, name := range []string{"pay", "p", "pay-eu-1", strings.Repeat("a", MaxNameLen)} {
		if err := ValidateName(name); err != nil {
			t.Errorf("ValidateName(%q): %v", name, err)
		}
	}
}

// TestLongestNameFitsDerivedNames: every name the template builds from the
// stack name fits AWS's limit for the longest deployment name accepted:
// Lambda FunctionName and IAM RoleName at most 64 (Lambda API
// CreateFunction; IAM API CreateRole), EventBridge Scheduler Name 64
// (Scheduler API CreateSchedule), the rest 255.
func TestLongestNameFitsDerivedNames(t *testing.T) {
	limits := map[string]int{"FunctionName": 64, "RoleName": 64, "Name": 64}
	longest := strings.Repeat("a", MaxNameLen)
	for _, o := range []TemplateOptions{{Mode: "eni", AZs: 3, Front: "apigw"}, {Mode: "nat", AZs: 3, Endpoints: []string{"s3", "sqs"}}} {
		st, err := Template(o)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := Render(st, "json")
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Resources map[string]struct {
				Type       string
				Properties map[string]any
			}
		}
		if err := json.Unmarshal(raw, &doc); err != nil {
			t.Fatal(err)
		}
		for id, r := range doc.Resources {
			for prop, v := range r.Properties {
				if !strings.HasSuffix(prop, "Name") {
					continue
				}
				s, ok := stackNamed(v)
				if !ok {
					continue
				}
				limit, ok := limits[prop]
				if !ok {
					limit = 255
				}
				if got := strings.ReplaceAll(s, "${AWS::StackName}", longest); len(got) > limit {
					t.Errorf("%s (%s).%s is %d characters for a %d-character deployment name; AWS allows %d", id, r.Type, prop, len(got), MaxNameLen, limit)
				}
			}
		}
	}
}

// stackNamed returns a name property built from the stack name as a Sub
// string ({"Ref": "AWS::StackName"} becomes "${AWS::StackName}").
func stackNamed(v any) (string, bool) {
	m, ok := v.(map[string]any)
	if !ok {
		return "", false
	}
	if m["Ref"] == "AWS::StackName" {
		return "${AWS::StackName}", true
	}
	if s, ok := m["Fn::Sub"].(string); ok && strings.Contains(s, "${AWS::StackName}") {
		return s, true
	}
	return "", false
}
