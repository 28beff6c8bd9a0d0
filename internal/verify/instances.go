package verify

// Instance mode: each IP is its own instance, so each is called directly,
// through both of the ways its users call it.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// InstanceTarget is how to reach an instance-mode deployment.
type InstanceTarget struct {
	// Host is the name callers use (--domain), or "" to address each
	// instance by its IP (the deployment's own CA certifies the IPs).
	Host string
	// Roots verify the instances' certificates (and, through the proxy,
	// the check URL's): nil is the system's; with the deployment's own CA,
	// the system's plus that CA.
	Roots *x509.CertPool
	// Client and Key authenticate: the relay takes the key alone
	// (Outgate-Key), the proxy client:key (Proxy-Authorization).
	Client, Key string
	// CheckURL is fetched through the proxy: a service that answers with
	// the caller's IP (the config's egress_check_url). The client's hosts
	// must allow it.
	CheckURL string
	// Port is the instances' listener (443).
	Port int
	// Timeout bounds each call (default 30 s).
	Timeout time.Duration
	// Dial replaces the dialer (tests); the address is always IP:Port.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// InstanceCheck is what verify found at one IP.
type InstanceCheck struct {
	IP string `json:"ip"`
	// RelayEgress and ProxyEgress are where a call through that
	// instance's relay and proxy left from ("" when the call failed).
	RelayEgress string `json:"relay_egress,omitempty"`
	ProxyEgress string `json:"proxy_egress,omitempty"`
	OK          bool   `json:"ok"`
	Problem     string `json:"problem,omitempty"`
}

// Instances calls every IP's instance through both its relay
// (/_outgate/whoami) and its proxy (CheckURL through CONNECT), each
// connection dialed to that IP, and checks that both calls left from that
// same IP. Every IP is checked, whatever the others give.
func Instances(ctx context.Context, t InstanceTarget, ips []string) ([]InstanceCheck, error) {
	switch {
	case t.Key == "":
		return nil, fmt.Errorf("a client key is needed: pass --key or set OUTGATE_KEY")
	case t.Client == "":
		return nil, fmt.Errorf("the proxy needs the client's name with its key: pass --client")
	case len(ips) == 0:
		return nil, fmt.Errorf("the deployment has no IPs")
	}
	if t.Port == 0 {
		t.Port = 443
	}
	if t.Timeout == 0 {
		t.Timeout = 30 * time.Second
	}
	if t.Dial == nil {
		d := &net.Dialer{Timeout: 10 * time.Second}
		t.Dial = d.DialContext
	}
	var checks []InstanceCheck
	var bad []string
	for _, ip := range ips {
		c := InstanceCheck{IP: ip}
		relay, rerr := t.viaRelay(ctx, ip)
		proxy, perr := t.viaProxy(ctx, ip)
		c.RelayEgress, c.ProxyEgress = relay, proxy
		var probs []string
		if rerr != nil {
			probs = append(probs, "relay: "+rerr.Error())
		} else if relay != ip {
			probs = append(probs, "relay: calls leave from "+relay)
		}
		if perr != nil {
			probs = append(probs, "proxy: "+perr.Error())
		} else if proxy != ip {
			probs = append(probs, "proxy: calls leave from "+proxy)
		}
		c.OK = len(probs) == 0
		c.Problem = strings.Join(probs, "; ")
		if !c.OK {
			bad = append(bad, ip+" ("+c.Problem+")")
		}
		checks = append(checks, c)
	}
	if len(bad) > 0 {
		return checks, fmt.Errorf("not every IP proves itself: %s", strings.Join(bad, ", "))
	}
	return checks, nil
}

// name is what the instance's certificate is checked against.
func (t InstanceTarget) name(ip string) string {
	if t.Host != "" {
		return t.Host
	}
	return ip
}

// transport dials every connection to ip, whatever the URL's host, so a
// name with several A records still reaches the instance being checked.
func (t InstanceTarget) transport(ip string) *http.Transport {
	addr := net.JoinHostPort(ip, fmt.Sprint(t.Port))
	return &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return t.Dial(ctx, network, addr)
		},
		TLSClientConfig:     &tls.Config{RootCAs: t.Roots, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout: 10 * time.Second,
		DisableKeepAlives:   true,
		ForceAttemptHTTP2:   false,
	}
}

func (t InstanceTarget) viaRelay(ctx context.Context, ip string) (string, error) {
	hc := &http.Client{Transport: t.transport(ip), Timeout: t.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	u := "https://" + net.JoinHostPort(t.name(ip), fmt.Sprint(t.Port)) + "/_outgate/whoami"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Outgate-Key", t.Key)
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	return egressIPOf(resp)
}

func (t InstanceTarget) viaProxy(ctx context.Context, ip string) (string, error) {
	tr := t.transport(ip)
	proxy := &url.URL{Scheme: "https", Host: net.JoinHostPort(t.name(ip), fmt.Sprint(t.Port)), User: url.UserPassword(t.Client, t.Key)}
	tr.Proxy = http.ProxyURL(proxy)
	connectStatus := 0
	tr.OnProxyConnectResponse = func(_ context.Context, _ *url.URL, _ *http.Request, resp *http.Response) error {
		connectStatus = resp.StatusCode
		return nil
	}
	// Through the tunnel the check URL's own host is dialed by the
	// instance; only the proxy connection goes to ip.
	hc := &http.Client{Transport: tr, Timeout: t.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.CheckURL, nil)
	if err != nil {
		return "", fmt.Errorf("--check-url: %w", err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		if connectStatus == http.StatusForbidden || connectStatus == http.StatusProxyAuthRequired {
			return "", fmt.Errorf("CONNECT answered %d: client %s may not reach %s with this key (add its host to the client's hosts, or pass --check-url)", connectStatus, t.Client, t.CheckURL)
		}
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusProxyAuthRequired:
		return "", fmt.Errorf("answered %d: client %s may not reach %s (add its host to the client's hosts, or pass --check-url)", resp.StatusCode, t.Client, t.CheckURL)
	case resp.StatusCode != http.StatusOK:
		return "", fmt.Errorf("%s answered %d", t.CheckURL, resp.StatusCode)
	}
	a, ok := parseIP(body)
	if !ok {
		return "", fmt.Errorf("%s did not answer with an IP address", t.CheckURL)
	}
	return a.String(), nil
}

// parseIP reads the answer of an IP echo service: a plain-text address
// or JSON with an "ip" field, as the gateway's own egress check does.
func parseIP(b []byte) (netip.Addr, bool) {
	s := strings.TrimSpace(string(b))
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), true
	}
	var j struct {
		IP string `json:"ip"`
	}
	if json.Unmarshal(b, &j) == nil {
		if a, err := netip.ParseAddr(j.IP); err == nil {
			return a.Unmap(), true
		}
	}
	return netip.Addr{}, false
}
