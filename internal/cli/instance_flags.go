package cli

import (
	"github.com/spf13/cobra"

	"github.com/outgate/outgate/internal/deploy"
)

// instanceFlags are --mode instance's options, shared by up and template.
func instanceFlags(cmd *cobra.Command, o *deploy.TemplateOptions) {
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
