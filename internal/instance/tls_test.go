package instance

import (
	"context"
	"crypto/x509"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/outgate/outgate/internal/guardian"
	"github.com/outgate/outgate/internal/ownca"
	"github.com/outgate/outgate/internal/testutil"
)

// TestOwnCATLS: the instance's listener certificate, from the deployment's
// own CA in SSM (moto), names every IP tagged for the deployment and no
// other deployment's, and verifies against the CA alone (what callers
// trust after `outgate ca`). A domain, a missing CA and a deployment
// without IPs are refused with what is wrong.
func TestOwnCATLS(t *testing.T) {
	testutil.Moto(t)
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	params, api := ssm.NewFromConfig(cfg), ec2.NewFromConfig(cfg)
	s := Settings{Deployment: "pay", CACertParameter: ownca.CertParameter("pay"), CAKeyParameter: ownca.KeyParameter("pay")}

	if _, err := OwnCATLS(ctx, s, params, api); err == nil || !strings.Contains(err.Error(), "CA") {
		t.Errorf("no CA yet: %v, want an error about the CA", err)
	}
	caCert, _, err := ownca.EnsureCA(ctx, params, "pay")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OwnCATLS(ctx, s, params, api); err == nil || !strings.Contains(err.Error(), "no IPs") {
		t.Errorf("no IPs: %v, want an error naming the missing IPs", err)
	}
	for _, a := range []struct{ ip, deployment string }{{"203.0.113.10", "pay"}, {"203.0.113.11", "pay"}, {"203.0.113.12", "other"}} {
		if _, err := api.AllocateAddress(ctx, &ec2.AllocateAddressInput{Domain: ec2types.DomainTypeVpc, Address: aws.String(a.ip),
			TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeElasticIp,
				Tags: []ec2types.Tag{{Key: aws.String(guardian.TagDeployment), Value: aws.String(a.deployment)}}}}}); err != nil {
			t.Fatal(err)
		}
	}
	tc, err := OwnCATLS(ctx, s, params, api)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := tc.GetCertificate(nil)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(caCert)
	for ip, want := range map[string]bool{"203.0.113.10": true, "203.0.113.11": true, "203.0.113.12": false} {
		_, err := leaf.Leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: ip})
		if (err == nil) != want {
			t.Errorf("certificate for %s: %v, want valid=%v", ip, err, want)
		}
	}

	s.Domain = "gw.example.com"
	if _, err := OwnCATLS(ctx, s, params, api); err == nil || !strings.Contains(err.Error(), "domain") {
		t.Errorf("with a domain: %v, want a refusal naming the domain", err)
	}
}
