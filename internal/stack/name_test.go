package stack

import (
	"strings"
	"testing"
)

// TestValidateNameRejectsWhatAWSWould: CloudFormation stack names start with
// a letter; the function names built from the deployment name stop at 64.
func TestValidateNameRejectsWhatAWSWould(t *testing.T) {
	for _, bad := range []string{"", "1pay", "-pay", "Pay", "pay_1", "pay.eu", strings.Repeat("a", MaxNameLen+1)} {
		if ValidateName(bad) == nil {
			t.Errorf("ValidateName(%q) accepted", bad)
		}
	}
	for _, good := range []string{"pay", "pay-eu-1", "p1", strings.Repeat("a", MaxNameLen)} {
		if err := ValidateName(good); err != nil {
			t.Errorf("ValidateName(%q): %v", good, err)
		}
	}
}
