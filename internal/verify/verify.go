// Package verify is `outgate verify`: calls through the deployed relay to
// check that they leave from the deployment's IPs, and only from those (in
// instance mode, through each instance's relay and proxy: instances.go).
package verify

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/outgate/outgate/internal/deploy"
)

// IPCheck is what verify found for one of the deployment's IPs.
type IPCheck struct {
	PublicIP string `json:"public_ip"`
	Seen     bool   `json:"seen"`                  // a call through the relay left from it
	On       string `json:"attached_to,omitempty"` // else: the ENI or NAT gateway interface holding it
	OK       bool   `json:"ok"`
}

// callsPerIP bounds verify: the relay is called up to this many times per
// IP, until every IP has been seen. Lambda picks the instance (and so the
// AZ and IP) of each call, so some IPs may stay unseen; those are checked by
// where they are attached instead.
const callsPerIP = 4

// Egress asks the deployed relay which IP its calls leave from, several
// times, and checks every one of the deployment's IPs: each must be seen as
// the egress of a call or be attached (to a relay ENI or a NAT gateway). It
// fails if any call leaves from an IP that is not the deployment's, or if
// an IP is neither seen nor attached.
func Egress(ctx context.Context, hc *http.Client, relayURL, key string, ips []deploy.IP) ([]IPCheck, error) {
	if relayURL == "" {
		return nil, fmt.Errorf("the deployment reports no relay URL")
	}
	if key == "" {
		return nil, fmt.Errorf("a client key is needed: pass --key or set OUTGATE_KEY")
	}
	if len(ips) == 0 {
		return nil, fmt.Errorf("the deployment has no IPs")
	}
	checks := make([]IPCheck, len(ips))
	index := map[string]int{}
	var known []string
	for i, ip := range ips {
		checks[i] = IPCheck{PublicIP: ip.PublicIP, On: ip.AttachedTo}
		index[ip.PublicIP] = i
		known = append(known, ip.PublicIP)
	}
	unseen := len(ips)
	for call := 0; call < callsPerIP*len(ips) && unseen > 0; call++ {
		egress, err := whoami(ctx, hc, relayURL, key)
		if err != nil {
			return nil, err
		}
		i, ok := index[egress]
		if !ok {
			return nil, fmt.Errorf("calls leave from %s, which is not one of the deployment's IPs (%s)", egress, strings.Join(known, ", "))
		}
		if !checks[i].Seen {
			checks[i].Seen = true
			unseen--
		}
	}
	var bad []string
	for i := range checks {
		checks[i].OK = checks[i].Seen || checks[i].On != ""
		if !checks[i].OK {
			bad = append(bad, checks[i].PublicIP)
		}
	}
	if len(bad) > 0 {
		return checks, fmt.Errorf("%s: no call left from it in %d tries and it is attached to nothing, so the relay cannot use it (see `outgate status`)", strings.Join(bad, ", "), callsPerIP*len(ips))
	}
	return checks, nil
}

// whoami makes one call to the relay's /_outgate/whoami.
func whoami(ctx context.Context, hc *http.Client, relayURL, key string) (string, error) {
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
	ip, err := egressIPOf(resp)
	if err != nil {
		return "", fmt.Errorf("the relay %w", err)
	}
	return ip, nil
}

// egressIPOf reads a /_outgate/whoami answer (a Lambda relay's or an
// instance's): the egress_ip of a 200, or what was answered instead.
func egressIPOf(resp *http.Response) (string, error) {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("answered %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	var who struct {
		EgressIP string `json:"egress_ip"`
	}
	if err := json.Unmarshal(body, &who); err != nil || who.EgressIP == "" {
		return "", fmt.Errorf("answered without an egress_ip: %s", body)
	}
	return who.EgressIP, nil
}
