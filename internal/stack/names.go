package stack

import (
	"errors"
	"fmt"
)

// MaxNameLen is the longest deployment name. The name is the stack name
// (CloudFormation: [a-zA-Z][-a-zA-Z0-9]*, at most 128 characters; AWS
// CloudFormation User Guide, "Stack name"), a tag value, the start of an
// SSM path and S3 keys, and the prefix of names built from it, which must
// fit the 64 characters AWS allows for Lambda function and IAM role names
// (Lambda API CreateFunction FunctionName; IAM API CreateRole RoleName):
// 32 leaves room for the longest suffix the template adds
// (TestLongestNameFitsDerivedNames holds the template to it).
const MaxNameLen = 32

// ValidateName checks a deployment name before anything is made or
// allocated, so a name AWS would refuse fails here, in one line, and not at
// CreateChangeSet with Elastic IPs already allocated and billed. It is the
// one check of a name: every command calls it.
func ValidateName(name string) error {
	if name == "" {
		return errors.New("--name is required")
	}
	if len(name) > MaxNameLen {
		return fmt.Errorf("--name %q is %d characters; at most %d (it prefixes AWS resource names limited to 64)", name, len(name), MaxNameLen)
	}
	if c := name[0]; c < 'a' || c > 'z' {
		return fmt.Errorf("--name %q must start with a lower-case letter (CloudFormation stack names start with a letter)", name)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return fmt.Errorf("--name %q: use lower-case letters, digits and '-'", name)
		}
	}
	return nil
}
