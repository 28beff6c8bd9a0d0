package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/outgate/outgate/internal/config"
	"github.com/outgate/outgate/internal/idempotency"
	"github.com/outgate/outgate/internal/server"
)

func idempotencyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "idempotency",
		Short: "Work with the idempotency keys the gateway keeps",
	}
	var cfgFlag, client, upstream string
	clear := &cobra.Command{
		Use:   "clear --config FILE --client NAME --upstream NAME KEY",
		Short: "Forget one idempotency key, so the next request with it is sent to the partner",
		Long: `Delete the record of one idempotency key: the next request with it goes to
the partner again. Use it after reconciling a key that answers 409
outcome_unknown: first find out from the partner whether the first request
was processed, because clearing the key lets a retry send it a second time.

With the gateway running, the command asks it through admin_listen (from the
gateway host only); with the gateway stopped, it opens the store itself.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path, err := configPath(cfgFlag)
			if err != nil {
				return err
			}
			if client == "" || upstream == "" {
				return usageError{fmt.Errorf("--client and --upstream are required")}
			}
			cfg, err := config.Load(path)
			if err != nil {
				return err
			}
			k := idempotency.Key{Client: client, Upstream: upstream, Key: args[0]}
			ok, err := server.ClearKey(cmd.Context(), cfg, k)
			if err != nil {
				return err
			}
			if ok {
				fmt.Fprintf(cmd.OutOrStdout(), "cleared: the next request with this key to %s from %s is sent\n", upstream, client)
			} else {
				fmt.Fprintln(cmd.OutOrStdout(), "no such key (or it had expired): nothing to clear")
			}
			return nil
		},
	}
	clear.Flags().StringVarP(&cfgFlag, "config", "c", "", "config file (default: $OUTGATE_CONFIG_FILE)")
	clear.Flags().StringVar(&client, "client", "", "client name (clients[].name)")
	clear.Flags().StringVar(&upstream, "upstream", "", "upstream name")
	cmd.AddCommand(clear)
	return cmd
}
