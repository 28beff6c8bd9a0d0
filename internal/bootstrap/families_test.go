package bootstrap

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/outgate/outgate/internal/testutil"
)

// TestUnitAdmitsTheAgentsSocketFamilies runs what the agent does before it
// serves (instance.agent.reach lists this machine's addresses with
// net.InterfaceAddrs, so the gateway refuses requests that would loop back
// into it) under strace, and holds every socket family it opens to the
// unit's RestrictAddressFamilies. systemd applies that list with seccomp:
// socket(2) with any other family fails with EAFNOSUPPORT (systemd.exec(5),
// RestrictAddressFamilies=). Go lists addresses through a route netlink
// socket (net/interface_linux.go, syscall.NetlinkRIB), so without AF_NETLINK
// the agent stops at boot with "address family not supported by protocol",
// systemd restarts it every 5 s, and no instance ever serves (the same
// failure unbound's unit had: NLnetLabs/unbound#350).
func TestUnitAdmitsTheAgentsSocketFamilies(t *testing.T) {
	if os.Getenv("OUTGATE_TEST_LIST_ADDRS") == "1" {
		if _, err := net.InterfaceAddrs(); err != nil {
			t.Fatal(err)
		}
		return
	}
	strace := testutil.Tool(t, "strace")
	out := filepath.Join(t.TempDir(), "trace")
	cmd := exec.Command(strace, "-f", "-qq", "-e", "trace=socket", "-o", out, os.Args[0], "-test.run=^TestUnitAdmitsTheAgentsSocketFamilies$")
	cmd.Env = append(os.Environ(), "OUTGATE_TEST_LIST_ADDRS=1")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("strace: %v\n%s", err, b)
	}
	trace, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	allowed := map[string]bool{}
	for _, line := range strings.Split(Unit(DefaultLayout()), "\n") {
		if v, ok := strings.CutPrefix(line, "RestrictAddressFamilies="); ok {
			for _, f := range strings.Fields(v) {
				allowed[f] = true
			}
		}
	}
	used := regexp.MustCompile(`socket\((AF_[A-Z0-9]+)`).FindAllStringSubmatch(string(trace), -1)
	if len(used) == 0 {
		t.Fatalf("strace saw no socket call listing the addresses:\n%s", trace)
	}
	for _, m := range used {
		if !allowed[m[1]] {
			t.Errorf("the agent opens an %s socket, which the unit's RestrictAddressFamilies refuses (allowed: %v)", m[1], allowed)
		}
	}
}
