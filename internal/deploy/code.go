package deploy

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// Zip is a function's deployment package.
type Zip struct {
	Name string // outgate-relay or outgate-guardian
	Data []byte
}

// Key is where the zip goes in the staging bucket: content-addressed, so an
// unchanged function is not redeployed and old versions stay for rollback.
func (z Zip) Key(deployment string) string {
	sum := sha256.Sum256(z.Data)
	return fmt.Sprintf("%s/%s-%s.zip", deployment, z.Name, hex.EncodeToString(sum[:8]))
}

// BuildZips builds the relay and guardian bootstraps for Lambda. A released
// outgate binary carries them (see embedded.go); from a checkout they are
// built with the Go toolchain, as `go run ./cmd/outgate up` does.
func BuildZips(ctx context.Context, arch string) (relay, guardian Zip, err error) {
	if r, g, ok := embeddedZips(arch); ok {
		return r, g, nil
	}
	goarch := map[string]string{"arm64": "arm64", "x86_64": "amd64"}[arch]
	if goarch == "" {
		return Zip{}, Zip{}, fmt.Errorf("unknown architecture %q", arch)
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		return Zip{}, Zip{}, fmt.Errorf("this outgate binary carries no function code and there is no Go toolchain to build it: use a release build, or run from a checkout with Go installed")
	}
	dir, err := os.MkdirTemp("", "outgate-build")
	if err != nil {
		return Zip{}, Zip{}, err
	}
	defer os.RemoveAll(dir)
	build := func(name string) (Zip, error) {
		out := filepath.Join(dir, name)
		cmd := exec.CommandContext(ctx, gobin, "build", "-tags", "lambda.norpc", "-trimpath", "-ldflags=-s -w -buildid=", "-o", out, "github.com/outgate/outgate/cmd/"+name)
		cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH="+goarch, "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			return Zip{}, fmt.Errorf("building %s (run outgate from a checkout of its source): %v\n%s", name, err, b)
		}
		data, err := os.ReadFile(out)
		if err != nil {
			return Zip{}, err
		}
		return Zip{Name: name, Data: zipBootstrap(data)}, nil
	}
	if relay, err = build("outgate-relay"); err != nil {
		return
	}
	guardian, err = build("outgate-guardian")
	return
}

// zipBootstrap packs an executable as "bootstrap", with a fixed timestamp so
// the same binary gives the same zip (and the same S3 key).
func zipBootstrap(exe []byte) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	h := &zip.FileHeader{Name: "bootstrap", Method: zip.Deflate, Modified: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)}
	h.SetMode(0o755)
	w, _ := zw.CreateHeader(h)
	w.Write(exe)
	zw.Close()
	return buf.Bytes()
}
