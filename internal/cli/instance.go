package cli

import (
	"context"
	"fmt"
	"io"
	"os/signal"
	"syscall"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/smithy-go/logging"
	"github.com/spf13/cobra"

	"github.com/outgate/outgate/internal/cwlogs"
	"github.com/outgate/outgate/internal/imds"
	"github.com/outgate/outgate/internal/instance"
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
			// The lines go to the journal (stderr) and, by the instance
			// itself, to the deployment's log group: one stream per
			// instance, named by its id, so the stream needs IMDS first.
			facts, err := imds.New(ac).Facts(ctx)
			if err != nil {
				return err
			}
			ship, err := cwlogs.New(cloudwatchlogs.NewFromConfig(ac), cwlogs.Options{Group: s.LogGroup, Stream: facts.InstanceID})
			if err != nil {
				return err
			}
			defer ship.Close() // after Run: the last lines (the drain) are sent
			out := io.MultiWriter(cmd.ErrOrStderr(), ship)
			return instance.Run(ctx, s, instance.Deps{AWS: ac, LogOutput: out, Server: instance.WithTLS(s, ac, out)})
		},
	}
	run.Flags().StringVar(&path, "settings", instance.SettingsPath, "the instance settings file the user data writes")
	cmd.AddCommand(run)
	return cmd
}
