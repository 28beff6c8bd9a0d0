package instance

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/outgate/outgate/internal/claim"
	"github.com/outgate/outgate/internal/guardian"
	"github.com/outgate/outgate/internal/ownca"
)

// OwnCATLS is the listener TLS of an instance whose deployment has no
// domain: one certificate for every IP of the deployment (tagged
// outgate:deployment), minted from the deployment's own CA in SSM, so
// callers who trust the CA file (`outgate ca`) reach any instance on any
// of the IPs, including a replacement, with no re-issue.
//
// The IPs are read once: a deployment that gains an IP restarts its
// instances (the stack update replaces them), which mint again.
//
// IAM: ssm:GetParameter on the two CA parameters (and kms:Decrypt for the
// SecureString key), and ec2:DescribeAddresses (internal/claim's sdk.go).
func OwnCATLS(ctx context.Context, s Settings, params ownca.Reader, ec2API claim.EC2) (*tls.Config, error) {
	if s.Domain != "" {
		return nil, errors.New("instance settings: domain is set, but this build serves only the deployment's own CA (ACME is not wired into instance run yet)")
	}
	ca, err := ownca.Load(ctx, params, s.CACertParameter, s.CAKeyParameter)
	if err != nil {
		return nil, fmt.Errorf("loading the deployment's CA: %w", err)
	}
	set, err := claim.DeploymentIPs(ctx, ec2API, s.Deployment)
	if err != nil {
		return nil, err
	}
	if len(set) == 0 {
		return nil, fmt.Errorf("deployment %s has no IPs tagged %s=%s to certify", s.Deployment, guardian.TagDeployment, s.Deployment)
	}
	ips := make([]netip.Addr, 0, len(set))
	for ip := range set {
		ips = append(ips, ip)
	}
	slices.SortFunc(ips, func(a, b netip.Addr) int { return a.Compare(b) })
	m, err := ownca.NewMinter(ca, ips)
	if err != nil {
		return nil, fmt.Errorf("minting the instance certificate: %w", err)
	}
	return m.TLSConfig(), nil
}
