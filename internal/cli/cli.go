// Package cli defines outgate's commands. Each command only parses flags and
// calls into the package that does the work.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/outgate/outgate/internal/buildinfo"
	"github.com/outgate/outgate/internal/config"
	"github.com/outgate/outgate/internal/health"
	"github.com/outgate/outgate/internal/keys"
	"github.com/outgate/outgate/internal/secrets"
	"github.com/outgate/outgate/internal/server"
)

// usageError marks errors caused by how the command was called (exit 2).
type usageError struct{ error }

func (u usageError) Unwrap() error { return u.error }

// ExitCode is 2 for usage errors and 1 for everything else; exitStatus
// documents them for users.
func ExitCode(err error) int {
	var u usageError
	if errors.As(err, &u) {
		return 2
	}
	return 1
}

const exitStatus = `Exit status (every command):
  0  done
  1  failed: a bad config, an AWS or network error, a gateway that is not
     healthy, a question answered no
  2  usage error: an unknown command or flag, a bad flag value, flags that
     conflict or do not apply to the command, a missing required flag, or a
     destructive command (down, detach, ips release, an up that moves the
     IPs) without --yes when stdin is not a terminal. Nothing was changed.`

// Main runs the command line args and returns the exit status.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return run(processEnv(), args, stdin, stdout, stderr)
}

func run(e env, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRoot(e)
	if len(args) > 0 && (args[0] == cobra.ShellCompRequestCmd || args[0] == cobra.ShellCompNoDescRequestCmd) {
		// Shell completion offers the flags help shows: only the global
		// flags the command takes.
		if target, _, err := root.Find(args[1:]); err == nil {
			fitHelp(target)
		}
	}
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	if err := root.Execute(); err != nil {
		fmt.Fprintln(stderr, "outgate:", err)
		return ExitCode(err)
	}
	return 0
}

func newRoot(e env) *cobra.Command {
	g := &globals{env: e}
	root := &cobra.Command{
		Use:   "outgate",
		Short: "A static outbound IP for serverless code",
		Long: `outgate gives serverless functions (Lambda, Vercel, Netlify) a static outbound IP
for partner APIs that allowlist addresses. It runs as an authenticated relay
(https://gateway/{upstream}/... with an Outgate-Key header) and a forward proxy
(HTTPS_PROXY=http://client:key@gateway:3128) with a deny-by-default egress policy.

` + exitStatus,
		Version:           buildinfo.Get().Version,
		SilenceUsage:      true,
		SilenceErrors:     true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error { return g.check(cmd) },
	}
	root.SetVersionTemplate(versionText(buildinfo.Get()))
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	g.declare(root)
	root.AddCommand(serveCmd(), keysCmd(g), configCmd(), planCmd(g), templateCmd(g), upCmd(g), statusCmd(g), downCmd(g),
		ipsCmd(g), caCmd(g), verifyCmd(g), attachCmd(g), detachCmd(g), healthCmd(), idempotencyCmd(), versionCmd(g), instanceCmd())
	help := root.HelpFunc()
	root.SetHelpFunc(func(c *cobra.Command, args []string) { fitHelp(c); help(c, args) })
	usageArgs(root)
	return root
}

// usageArgs makes every wrong argument a usage error (exit 2): cobra's own
// argument checks return plain errors, and a command group given an
// unknown subcommand would otherwise print its help and exit 0.
func usageArgs(c *cobra.Command) {
	switch {
	case c.HasSubCommands() && c.Run == nil && c.RunE == nil:
		c.Args = func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return nil
			}
			msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
			if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
				msg += "; did you mean " + s[0] + "?"
			}
			return usageError{errors.New(msg)}
		}
		c.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
	case c.Args != nil:
		check := c.Args
		c.Args = func(cmd *cobra.Command, args []string) error {
			if err := check(cmd, args); err != nil {
				return usageError{err}
			}
			return nil
		}
	}
	for _, sub := range c.Commands() {
		usageArgs(sub)
	}
}

func configPath(flag string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	if env := os.Getenv("OUTGATE_CONFIG_FILE"); env != "" {
		return env, nil
	}
	return "", usageError{errors.New("no config: pass --config FILE or set OUTGATE_CONFIG_FILE")}
}

func serveCmd() *cobra.Command {
	var cfgFlag string
	cmd := &cobra.Command{
		Use:   "serve --config FILE",
		Short: "Run the gateway (relay, forward proxy, admin endpoints)",
		Long: `Run the gateway with a config file (--config, or OUTGATE_CONFIG_FILE).

Signals: SIGTERM or SIGINT stop accepting connections and finish requests and
tunnels in flight within limits.shutdown_grace, then exit 0. SIGHUP reloads the
config; a config that fails validation is refused, logged, and the old one keeps
serving.

Logs and audit lines are JSON on stderr, one audit line per request or tunnel.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, err := configPath(cfgFlag)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			reload := make(chan struct{}, 1)
			go func() {
				for range hup {
					select {
					case reload <- struct{}{}:
					default:
					}
				}
			}()
			return server.Run(ctx, server.Options{ConfigPath: path, Reload: reload, LogOutput: cmd.ErrOrStderr(), Secrets: secrets.AWS(defaultAWS)})
		},
	}
	cmd.Flags().StringVarP(&cfgFlag, "config", "c", "", "config file (default: $OUTGATE_CONFIG_FILE)")
	return cmd
}

func healthCmd() *cobra.Command {
	var cfgFlag, addr string
	var ready bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "health [--config FILE | --addr HOST:PORT] [--ready]",
		Short: "Ask a running gateway's admin listener whether it is alive (exit 0) or not (exit 1)",
		Long: `Ask the admin listener (admin_listen in the config, or --addr) of a gateway
running beside this command for /healthz, or /readyz with --ready, and exit 0
only if it answers 200. For container health checks that run a command (the
image's HEALTHCHECK): the image has no shell or curl. /healthz stays 200 while
SIGTERM drains; /readyz turns 503 at once.

Only admin_listen is read from the config, so a file edited but not yet
reloaded does not make the running gateway look unhealthy.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if timeout <= 0 {
				return usageError{fmt.Errorf("--timeout must be positive, got %s", timeout)}
			}
			target := addr
			if target != "" {
				a, err := health.DialAddr(target)
				if err != nil {
					return usageError{fmt.Errorf("--addr: %w", err)}
				}
				target = a
			} else {
				path, err := configPath(cfgFlag)
				if err != nil {
					return err
				}
				if target, err = health.AdminAddr(path); err != nil {
					return err
				}
			}
			probe := health.Live
			if ready {
				probe = health.Ready
			}
			return health.Check(cmd.Context(), target, probe, timeout)
		},
	}
	cmd.Flags().StringVarP(&cfgFlag, "config", "c", "", "config file whose admin_listen to ask (default: $OUTGATE_CONFIG_FILE)")
	cmd.Flags().StringVar(&addr, "addr", "", "admin listener to ask instead of the config's admin_listen")
	cmd.Flags().BoolVar(&ready, "ready", false, "ask /readyz (503 while draining) instead of /healthz")
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Second, "how long to wait for the answer")
	return cmd
}

func keysCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Make client keys, and add or revoke them on a deployment",
	}
	newCmd := &cobra.Command{
		Use:   "new [-o json]",
		Short: "Print a fresh client key and the key_sha256 to put in the config",
		Long: `Print a fresh random client key (256 bits, prefix og_) and its SHA-256.

Give the key to the client (Outgate-Key header, or the password in the proxy
URL) and put only key_sha256 in the config: outgate never stores keys.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			key, sum := keys.New()
			w := cmd.OutOrStdout()
			if g.output == "json" {
				return json.NewEncoder(w).Encode(map[string]string{"key": key, "key_sha256": sum})
			}
			fmt.Fprintf(w, "key:        %s\nkey_sha256: %s\n", key, sum)
			return nil
		},
	}
	usesOutput(newCmd, "text", "json")
	cmd.AddCommand(newCmd, keysAddCmd(g), keysRevokeCmd(g), keysListCmd(g))
	return cmd
}

func configCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Work with config files",
	}
	var cfgFlag string
	check := &cobra.Command{
		Use:   "check --config FILE",
		Short: "Validate a config file and report every problem with file:line",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, err := configPath(cfgFlag)
			if err != nil {
				return err
			}
			cfg, err := config.Load(path)
			if err != nil {
				var ce *config.Error
				if errors.As(err, &ce) {
					fmt.Fprintln(cmd.ErrOrStderr(), err)
					return fmt.Errorf("%s: %s", path, count(len(ce.Problems), "problem", "problems"))
				}
				return err
			}
			// Warnings do not fail the check: the config is valid, and a
			// loopback upstream is right in a test set-up.
			for _, w := range cfg.Warnings {
				fmt.Fprintln(cmd.ErrOrStderr(), cfg.Warning(w))
			}
			// Every secret is fetched (values never printed): a missing
			// one fails the check; a source that could not be reached
			// (no AWS credentials here) is a warning, since the gateway's
			// own role may reach it.
			missing := 0
			for _, err := range secrets.Check(cmd.Context(), secrets.AWS(defaultAWS), cfg.SecretRefs()) {
				var se *secrets.Error
				if !errors.As(err, &se) {
					return err
				}
				msg := se.Error()
				if se.Unreachable {
					fmt.Fprintln(cmd.ErrOrStderr(), cfg.SecretProblem(se.Ref, "could not check: "+msg, true))
					continue
				}
				fmt.Fprintln(cmd.ErrOrStderr(), cfg.SecretProblem(se.Ref, msg, false))
				missing++
			}
			if missing > 0 {
				return fmt.Errorf("%s: %d secret(s) cannot be read", path, missing)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: ok (%s, %s)\n", path, count(len(cfg.Clients), "client", "clients"), count(len(cfg.Upstreams), "upstream", "upstreams"))
			return nil
		},
	}
	check.Flags().StringVarP(&cfgFlag, "config", "c", "", "config file (default: $OUTGATE_CONFIG_FILE)")
	cmd.AddCommand(check)
	return cmd
}

// count says n things in English: "1 client", "2 clients".
func count(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
