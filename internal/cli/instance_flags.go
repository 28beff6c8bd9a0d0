package cli

import (
	"crypto/x509"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/outgate/outgate/internal/deploy"
	"github.com/outgate/outgate/internal/stack"
	"github.com/outgate/outgate/internal/verify"
)

// instanceFlags are --mode instance's options, shared by up and template.
func instanceFlags(cmd *cobra.Command, o *stack.TemplateOptions) {
	f := cmd.Flags()
	f.StringVar(&o.Instance.Type, "instance-type", "", "instance mode: an arm64 (Graviton) instance type (default t4g.nano)")
	f.Var(newList(&o.Instance.AllowFrom), "allow-from", "instance mode: CIDR blocks admitted on 443 (repeat or comma-separate; default anywhere: the key authenticates)")
	f.StringVar(&o.Instance.Domain, "domain", "", "instance mode: the DNS name callers use, with a certificate from an ACME CA; it must resolve to the deployment's IPs (without it, the deployment's own CA)")
	f.StringVar(&o.Instance.ACMECA, "acme-ca", "", "instance mode with --domain: the ACME directory URL (default Let's Encrypt)")
	f.StringVar(&o.Instance.ACMEEmail, "acme-email", "", "instance mode with --domain: contact address for the ACME account")
}

func orNone(s string) string {
	if s == "" {
		return "no IP"
	}
	return s
}

// verifyInstances proves each IP of an instance-mode deployment through
// the instance's relay and its proxy, dialing that IP.
func verifyInstances(cmd *cobra.Command, c deploy.Clients, name, client, key, checkURL string, ips []deploy.IP) error {
	if key == "" {
		key = os.Getenv("OUTGATE_KEY")
	}
	a, err := deploy.ReadInstanceAccess(cmd.Context(), c, name)
	if err != nil {
		return err
	}
	t := verify.InstanceTarget{Host: a.Domain, Client: client, Key: key, CheckURL: a.CheckURL}
	if checkURL != "" {
		t.CheckURL = checkURL
	}
	if len(a.CAPEM) > 0 {
		// The instances' certificate is the own CA's; the check URL's,
		// through the tunnel, a public CA's.
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(a.CAPEM) {
			return fmt.Errorf("the deployment's CA certificate in SSM is not PEM")
		}
		t.Roots = pool
	}
	var addrs []string
	for _, ip := range ips {
		addrs = append(addrs, ip.PublicIP)
	}
	checks, err := verify.Instances(cmd.Context(), t, addrs)
	w := cmd.OutOrStdout()
	for _, ch := range checks {
		if ch.OK {
			fmt.Fprintf(w, "  %-15s ok: through its relay and its proxy, calls left from it\n", ch.IP)
		} else {
			fmt.Fprintf(w, "  %-15s FAILED: %s\n", ch.IP, ch.Problem)
		}
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "ok: every instance's relay and proxy leave from its own static IP")
	return nil
}
