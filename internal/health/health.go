// Package health is `outgate health`: one GET of the admin listener's
// /healthz (or /readyz) from inside the gateway's own container, for
// runtimes whose health check runs a command (Docker's and podman's
// HEALTHCHECK). The image has no shell and no curl, so the check is outgate
// itself. Kubernetes and load balancers probe the endpoints over HTTP and
// need none of this.
package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Probe names what is asked: Live is /healthz (200 until the process exits,
// draining included: do not restart it), Ready is /readyz (503 once SIGTERM
// starts the drain: send it no more traffic).
type Probe string

const (
	Live  Probe = "/healthz"
	Ready Probe = "/readyz"
)

// AdminAddr reads admin_listen from the config file at path and returns the
// address to dial for it. Only that key is read, not the whole config: a
// file edited on disk but not yet reloaded (SIGHUP refuses a bad one and the
// old config keeps serving) must not make a healthy gateway look unhealthy,
// and a health check that fails would get it restarted onto the bad file.
func AdminAddr(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("reading config: %w", err)
	}
	var doc struct {
		AdminListen yaml.Node `yaml:"admin_listen"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	n := doc.AdminListen
	if n.Kind == 0 || n.Value == "" {
		return "", fmt.Errorf("%s: admin_listen is off, so there is no /healthz to ask; set it (for example admin_listen: 0.0.0.0:9090)", path)
	}
	addr, err := DialAddr(n.Value)
	if err != nil {
		return "", fmt.Errorf("%s:%d:%d: admin_listen: %w", path, n.Line, n.Column, err)
	}
	return addr, nil
}

// DialAddr turns a listen address into one to dial from the same network
// namespace: a wildcard host (empty, 0.0.0.0, ::) becomes 127.0.0.1, which
// Go's wildcard listeners accept on both stacks and which exists even in a
// container without IPv6.
func DialAddr(listen string) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("must be host:port, got %q", listen)
	}
	if port == "0" {
		return "", errors.New("port 0 picks a free port at start, so a health check cannot know it; give a fixed port")
	}
	switch host {
	case "", "0.0.0.0", "::":
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}

// Check asks the admin listener at addr for p and returns nil only for a 200.
// The request goes straight to addr: no proxy from the environment (a
// container often has HTTP_PROXY set, and it would answer instead), no
// redirects, a bounded wait and a bounded read.
func Check(ctx context.Context, addr string, p Probe, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	url := "http://" + addr + string(p)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	c := &http.Client{
		Transport:     &http.Transport{Proxy: nil, DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}
