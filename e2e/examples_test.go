package e2e

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/outgate/outgate/internal/keys"
	"github.com/outgate/outgate/internal/testutil"
)

const keyPlaceholder = "REPLACE-with-the-key_sha256-from-outgate-keys-new"

// TestContainerExamples: the configs shipped in examples/kubernetes and
// examples/compose are refused as they are (their key is a placeholder, and
// nothing else is wrong), and pass `outgate config check` once it is
// replaced; the Kubernetes manifest keeps the shape the README promises.
// There is no cluster here: this checks the files, not a deployment.
func TestContainerExamples(t *testing.T) {
	bin := binary(t)
	_, hash := keys.New()
	cert, key := testutil.SelfSigned(t, "gw.example")

	k8s, err := os.ReadFile("../examples/kubernetes/outgate.yaml")
	if err != nil {
		t.Fatal(err)
	}
	docs := map[string]map[string]any{}
	dec := yaml.NewDecoder(bytes.NewReader(k8s))
	for i := 0; i < 20; i++ {
		var d map[string]any
		if err := dec.Decode(&d); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("examples/kubernetes/outgate.yaml: %v", err)
		}
		docs[d["kind"].(string)] = d
	}
	for _, kind := range []string{"ConfigMap", "Deployment", "Service", "PodDisruptionBudget"} {
		if docs[kind] == nil {
			t.Errorf("examples/kubernetes/outgate.yaml has no %s", kind)
		}
	}
	dep, _ := yaml.Marshal(docs["Deployment"])
	for _, want := range []string{"replicas: 2", "runAsNonRoot: true", "runAsUser: 65532", "readOnlyRootFilesystem: true",
		"allowPrivilegeEscalation: false", "path: /readyz", "path: /healthz", "memory: 512Mi", "- ALL"} {
		if !bytes.Contains(dep, []byte(want)) {
			t.Errorf("the Deployment lost %q", want)
		}
	}
	cm, _ := docs["ConfigMap"]["data"].(map[string]any)
	k8sConfig, _ := cm["outgate.yaml"].(string)
	// The Secret's mount point, here a certificate of the test's own.
	k8sConfig = strings.NewReplacer("/etc/outgate/tls/tls.crt", cert, "/etc/outgate/tls/tls.key", key).Replace(k8sConfig)
	compose, err := os.ReadFile("../examples/compose/outgate.yaml")
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	for name, cfg := range map[string]string{"kubernetes": k8sConfig, "compose": string(compose)} {
		t.Run(name, func(t *testing.T) {
			check := func(body string) (int, string) {
				p := filepath.Join(dir, name+".yaml")
				os.WriteFile(p, []byte(body), 0o600)
				cmd := exec.Command(bin, "config", "check", "--config", p)
				out, _ := cmd.CombinedOutput()
				return cmd.ProcessState.ExitCode(), string(out)
			}
			if !strings.Contains(cfg, keyPlaceholder) {
				t.Fatalf("no key placeholder in the %s config", name)
			}
			if code, out := check(cfg); code != 1 || !strings.Contains(out, "key_sha256: must be 64 hex digits") || !strings.Contains(out, ": 1 problem") {
				t.Errorf("as shipped: exit %d, %q; want only the placeholder refused", code, out)
			}
			if code, out := check(strings.ReplaceAll(cfg, keyPlaceholder, hash)); code != 0 {
				t.Errorf("with a real key hash: exit %d, %q", code, out)
			}
			for _, want := range []string{"listen: 0.0.0.0:8080", "proxy_listen: 0.0.0.0:3128", "admin_listen: 0.0.0.0:9090"} {
				if !strings.Contains(cfg, want) {
					t.Errorf("no %q: a container's listeners must take connections from outside it", want)
				}
			}
		})
	}
}
