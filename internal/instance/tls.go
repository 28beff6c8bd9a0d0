package instance

import (
	"context"
	"io"
	"log/slog"
	"net/netip"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/outgate/outgate/internal/claim"
	"github.com/outgate/outgate/internal/imds"
	"github.com/outgate/outgate/internal/instancetls"
	"github.com/outgate/outgate/internal/server"
)

// WithTLS is the Deps.Server of a real instance: the shared listener
// serves TLS from the certificate source the settings call for (ACME for
// Settings.Domain, kept in the deployment's S3 prefix; else a certificate
// for every one of the deployment's IPs from its own CA in SSM), started
// once the listener is bound (the ACME CA's TLS-ALPN-01 validation
// connects to it), and the plain listener only if the settings ask.
func WithTLS(s Settings, ac aws.Config, logOut io.Writer) func(context.Context, imds.Facts, claim.Claimed, []netip.Addr, *server.Options) error {
	return func(ctx context.Context, _ imds.Facts, _ claim.Claimed, ips []netip.Addr, o *server.Options) error {
		src, err := instancetls.New(ctx, instancetls.Params{
			Deployment: s.Deployment, Domain: s.Domain, ACMECA: s.ACMECA, ACMEEmail: s.ACMEEmail,
			CertBucket: s.CertBucket, CertPrefix: s.CertPrefix,
			CACertParameter: s.CACertParameter, CAKeyParameter: s.CAKeyParameter,
			IPs: ips, Log: logOut,
		}, s3.NewFromConfig(ac), ssm.NewFromConfig(ac))
		if err != nil {
			return err
		}
		log := slog.New(slog.NewJSONHandler(logOut, nil)).With("component", "instance")
		o.TLS = src.TLS
		o.PlainListen = s.PlainListen
		// No certificate yet (the ACME CA not reached): not ready, so
		// /readyz and the load of the plain listener agree with what a
		// TLS caller meets.
		o.Gate = src.Ready
		o.Ready = func(server.Addrs) {
			if err := src.Start(ctx); err != nil {
				log.Error("the certificate could not be started; TLS handshakes fail until it is", "error", err.Error())
			}
		}
		return nil
	}
}
