package guardian

import (
	"bytes"
	"encoding/json"
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

func TestReport(t *testing.T) {
	var b bytes.Buffer
	Report(&b, Summary{Deployment: "prod", ENIsSeen: 2, ENIsWithoutIP: 1, IPs: map[string]string{"eni-1": "198.51.100.1", "eni-2": ""}})
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want a summary line and an EMF line:\n%s", b.String())
	}
	var sum map[string]any
	json.Unmarshal([]byte(lines[0]), &sum)
	if sum["level"] != "ERROR" || sum["enis_without_ip"] != float64(1) || sum["msg"] != "guardian run" {
		t.Errorf("summary %v", sum)
	}
	if !strings.Contains(lines[1], `"EnisWithoutIp":1`) || !strings.Contains(lines[1], `"Deployment":"prod"`) {
		t.Errorf("EMF %s", lines[1])
	}
}
