package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Verify asks the deployed relay which IP its calls leave from and fails
// unless it is one of the deployment's IPs.
func Verify(ctx context.Context, hc *http.Client, relayURL, key string, ips []IP) (string, error) {
	if relayURL == "" {
		return "", fmt.Errorf("the deployment reports no relay URL")
	}
	if key == "" {
		return "", fmt.Errorf("a client key is needed: pass --key or set OUTGATE_KEY")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(relayURL, "/")+"/_outgate/whoami", nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Outgate-Key", key)
	resp, err := hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("calling the relay: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("the relay answered %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	var who struct {
		EgressIP string `json:"egress_ip"`
	}
	if err := json.Unmarshal(body, &who); err != nil || who.EgressIP == "" {
		return "", fmt.Errorf("the relay's answer has no egress_ip: %s", body)
	}
	var known []string
	for _, ip := range ips {
		if ip.PublicIP == who.EgressIP {
			return who.EgressIP, nil
		}
		known = append(known, ip.PublicIP)
	}
	return who.EgressIP, fmt.Errorf("calls leave from %s, which is not one of the deployment's IPs (%s)", who.EgressIP, strings.Join(known, ", "))
}
