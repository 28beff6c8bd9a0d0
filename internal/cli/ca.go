package cli

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/outgate/outgate/internal/ownca"
)

// caCmd writes the certificate of a deployment's own CA (instance mode
// without a domain) for callers to trust.
func caCmd(g *globals) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "ca --name N [--out FILE]",
		Short: "Write the deployment's CA certificate, which callers trust to reach it by IP over TLS",
		Long: `Instance mode without --domain serves a certificate for the deployment's IPs from the
deployment's own CA (made once by up, kept in SSM). Callers trust that CA through one file:

  outgate ca --name N --out outgate-ca.pem
  NODE_EXTRA_CA_CERTS=outgate-ca.pem   (Node: added to its roots)
  REQUESTS_CA_BUNDLE=outgate-ca.pem    (Python requests: replaces its roots)
  SSL_CERT_FILE=outgate-ca.pem         (Go, OpenSSL-based tools: replaces their roots)
  curl --cacert outgate-ca.pem, or CURL_CA_BUNDLE

Without --out the PEM goes to stdout. The file is public (a certificate, no key): share it
with every caller. It stays the same across replaced instances and re-minted certificates.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.clients(cmd.Context())
			if err != nil {
				return err
			}
			param := ownca.CertParameter(g.name)
			cert, err := ownca.ReadCert(cmd.Context(), c.SSM, param)
			if errors.Is(err, ownca.ErrNoCA) {
				return fmt.Errorf("deployment %s has no CA (no SSM parameter %s): `outgate up --mode instance` without --domain makes it; with --domain, callers trust the ACME CA's certificate already", g.name, param)
			}
			if err != nil {
				return err
			}
			pem := ownca.PEM(cert)
			if out != "" {
				if err := os.WriteFile(out, pem, 0o644); err != nil {
					return fmt.Errorf("writing the CA certificate: %w", err)
				}
			}
			if g.output == "json" {
				return printJSON(cmd, struct {
					Name      string    `json:"name"`
					Parameter string    `json:"parameter"`
					File      string    `json:"file,omitempty"`
					Subject   string    `json:"subject"`
					SHA256    string    `json:"sha256"`
					NotAfter  time.Time `json:"not_after"`
					PEM       string    `json:"pem"`
				}{g.name, param, out, cert.Subject.CommonName, ownca.Fingerprint(cert), cert.NotAfter.UTC(), string(pem)})
			}
			if out == "" {
				_, err := cmd.OutOrStdout().Write(pem)
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote the CA certificate of %s to %s (SHA-256 %s)\n", g.name, out, ownca.Fingerprint(cert))
			fmt.Fprintf(cmd.OutOrStdout(), "callers: NODE_EXTRA_CA_CERTS=%s, REQUESTS_CA_BUNDLE=%s, SSL_CERT_FILE=%s, curl --cacert %s\n", out, out, out, out)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "write the PEM certificate to this file instead of stdout")
	usesAWS(usesName(usesOutput(cmd, "text", "json")))
	return cmd
}
