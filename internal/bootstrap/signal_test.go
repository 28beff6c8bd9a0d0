package bootstrap

import (
	"path/filepath"
	"strings"
	"testing"
)

// withIMDS adds stub curl and sleep commands: curl answers IMDSv2 (token,
// instance id, MAC, subnet) as EC2's metadata service does, and the
// gateway's /readyz with the exit status of the file ready (0: 200),
// logging every call; sleep returns at once.
func (m *machine) withIMDS(subnet string, ready bool) {
	m.t.Helper()
	status := "22" // curl -f on an HTTP error
	if ready {
		status = "0"
	}
	write(m.t, filepath.Join(m.bin, "curl"), `#!/bin/bash
for a; do url=$a; done
echo "curl $url" >> `+m.log+`
case "$url" in
  */latest/api/token) echo tok ;;
  */meta-data/instance-id) echo i-0123456789abcdef0 ;;
  */meta-data/mac) echo 0a:00:00:00:00:01 ;;
  */meta-data/network/interfaces/macs/0a:00:00:00:00:01/subnet-id) echo `+subnet+` ;;
  */readyz) exit `+status+` ;;
  *) exit 7 ;;
esac
`)
	write(m.t, filepath.Join(m.bin, "sleep"), "#!/bin/bash\necho \"sleep $*\" >> "+m.log+"\n")
}

func groupsInput(bin []byte) Input {
	in := input(bin)
	in.Stack = "pay"
	in.Groups = []Group{{Subnet: "subnet-0123456789abcdef0", LogicalID: "InstanceGroup0"}, {Subnet: "subnet-0123456789abcdef1", LogicalID: "InstanceGroup1"}}
	return in
}

// In a stack, once the gateway is ready the script signals the group
// whose subnet the instance is in (CloudFormation's AutoScalingRollingUpdate
// with WaitOnResourceSignals waits for one SUCCESS per new instance,
// UniqueId the instance id: CloudFormation User Guide, UpdatePolicy
// attribute; AWS CLI, cloudformation signal-resource).
func TestUserDataSignalsOnceReady(t *testing.T) {
	bin := []byte("#!/bin/sh\n")
	m := newMachine(t, bin)
	m.withIMDS("subnet-0123456789abcdef1", true)
	out, ok := m.run(groupsInput(bin), nil)
	if !ok {
		t.Fatalf("script failed:\n%s", out)
	}
	calls := m.calls()
	start := strings.Index(calls, "systemctl enable --now")
	ready := strings.Index(calls, "curl http://127.0.0.1:9901/readyz")
	sig := strings.Index(calls, "aws cloudformation signal-resource --region us-east-1 --stack-name pay --logical-resource-id InstanceGroup1 --unique-id i-0123456789abcdef0 --status SUCCESS")
	if start < 0 || ready < start || sig < ready {
		t.Errorf("want start, then readyz, then the signal for InstanceGroup1:\n%s", calls)
	}
}

// A gateway that never becomes ready is never signalled: the update
// waiting on it times out and rolls back rather than replace the next AZ.
// The wait is bounded (84 tries 10 s apart), and the gateway is left
// running.
func TestUserDataNeverReadyNoSignal(t *testing.T) {
	bin := []byte("#!/bin/sh\n")
	m := newMachine(t, bin)
	m.withIMDS("subnet-0123456789abcdef0", false)
	out, ok := m.run(groupsInput(bin), nil)
	calls := m.calls()
	if ok || !strings.Contains(out, "not ready after 14 minutes") || strings.Contains(calls, "signal-resource") {
		t.Errorf("ok=%v, output:\n%s\ncalls:\n%s", ok, out, calls)
	}
	if n := strings.Count(calls, "/readyz"); n != 84 {
		t.Errorf("%d readiness checks, want 84", n)
	}
	if !strings.Contains(calls, "systemctl enable --now") {
		t.Errorf("the gateway was not started: %s", calls)
	}
}

// An instance in a subnet none of the groups launches into signals nothing.
func TestUserDataUnknownSubnetNoSignal(t *testing.T) {
	bin := []byte("#!/bin/sh\n")
	m := newMachine(t, bin)
	m.withIMDS("subnet-0fffffffffffffff0", true)
	out, ok := m.run(groupsInput(bin), nil)
	if ok || !strings.Contains(out, "none of the stack's groups") || strings.Contains(m.calls(), "signal-resource") {
		t.Errorf("ok=%v:\n%s", ok, out)
	}
}

// Bad stack, subnet or logical id values are refused before any script
// exists (they land inside single quotes).
func TestUserDataRefusesBadGroups(t *testing.T) {
	for name, f := range map[string]func(*Input){
		"stack":      func(i *Input) { i.Stack = "pay'; reboot" },
		"subnet":     func(i *Input) { i.Groups[0].Subnet = "subnet-x' y" },
		"logical id": func(i *Input) { i.Groups[1].LogicalID = "Group-1" },
	} {
		in := groupsInput([]byte("x"))
		f(&in)
		if _, err := UserData(in, DefaultLayout()); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
