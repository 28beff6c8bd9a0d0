package cli

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"os/signal"
	"slices"
	"syscall"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/smithy-go/logging"
	"github.com/spf13/cobra"

	"github.com/outgate/outgate/internal/claim"
	"github.com/outgate/outgate/internal/imds"
	"github.com/outgate/outgate/internal/instance"
	"github.com/outgate/outgate/internal/instancetls"
	"github.com/outgate/outgate/internal/server"
)

// instanceCmd is what runs on an instance-mode EC2 instance, started by
// its systemd unit; hidden from the main help, since nobody types it.
func instanceCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:    "instance",
		Short:  "Commands run on an instance-mode EC2 instance by its systemd unit",
		Hidden: true,
		Args:   cobra.NoArgs,
	}
	var path string
	run := &cobra.Command{
		Use:   "run [--settings FILE]",
		Short: "Claim the AZ's IP, prove the egress IP, and serve the gateway",
		Long: `Run outgate on an EC2 instance of an instance-mode deployment (its systemd
unit does): read the instance's facts over IMDSv2, claim the deployment's
Elastic IP for its subnet, read the config from the deployment's SSM
parameter, and serve with every request refused (503 egress_unverified) until
egress_check_url says calls leave from one of the deployment's IPs. The
egress is checked again every minute and the config parameter polled; an
instance that cannot serve from the right address has itself replaced.

SIGTERM or SIGINT drain and stop, as for serve.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := instance.LoadSettings(path)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			ac, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(s.Region), awsconfig.WithLogger(logging.Nop{}))
			if err != nil {
				return fmt.Errorf("loading AWS configuration: %w", err)
			}
			// MERGE(h-logship): LogOutput becomes the CloudWatch Logs
			// shipper for Settings.LogGroup.
			return instance.Run(ctx, s, instance.Deps{AWS: ac, LogOutput: cmd.ErrOrStderr(),
				Server: instanceTLS(s, ac, cmd.ErrOrStderr())})
		},
	}
	run.Flags().StringVar(&path, "settings", instance.SettingsPath, "the instance settings file the user data writes")
	cmd.AddCommand(run)
	return cmd
}

// instanceTLS plugs the instance's certificate source (internal/instancetls:
// ACME with a domain, the deployment's own CA without) into the gateway's
// options once the IP is claimed. The own CA's certificate names every IP
// tagged for the deployment, so callers reach any instance on any of them.
//
// MERGE(h-claim, h-tls): with a domain, Source.Ready belongs in the
// agent's gate and Source.Start after the listener serves; until the agent
// takes them, Start runs here (certmagic retries in the background until
// the listener answers the CA's challenge) and a handshake before the
// certificate exists fails, which refuses as the gate would.
func instanceTLS(s instance.Settings, ac aws.Config, log io.Writer) func(context.Context, imds.Facts, claim.Claimed, *server.Options) error {
	return func(ctx context.Context, _ imds.Facts, _ claim.Claimed, o *server.Options) error {
		set, err := claim.DeploymentIPs(ctx, ec2.NewFromConfig(ac), s.Deployment)
		if err != nil {
			return err
		}
		ips := make([]netip.Addr, 0, len(set))
		for ip := range set {
			ips = append(ips, ip)
		}
		slices.SortFunc(ips, func(a, b netip.Addr) int { return a.Compare(b) })
		src, err := instancetls.New(ctx, instancetls.Params{Deployment: s.Deployment, Domain: s.Domain, ACMECA: s.ACMECA,
			ACMEEmail: s.ACMEEmail, CertBucket: s.CertBucket, CertPrefix: s.CertPrefix,
			CACertParameter: s.CACertParameter, CAKeyParameter: s.CAKeyParameter, IPs: ips, Log: log},
			s3.NewFromConfig(ac), ssm.NewFromConfig(ac))
		if err != nil {
			return fmt.Errorf("the instance's certificate: %w", err)
		}
		o.TLS = src.TLS
		return src.Start(ctx)
	}
}
