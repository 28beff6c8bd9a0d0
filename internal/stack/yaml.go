package stack

import "go.yaml.in/yaml/v3"

// toYAML renders a decoded JSON document as YAML. Intrinsics stay in their
// long form (Fn::GetAtt: [...]), which CloudFormation accepts in YAML.
func toYAML(doc map[string]any) ([]byte, error) { return yaml.Marshal(doc) }
