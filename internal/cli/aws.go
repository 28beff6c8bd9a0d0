package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/spf13/cobra"

	"github.com/outgate/outgate/internal/attach"
	"github.com/outgate/outgate/internal/config"
	"github.com/outgate/outgate/internal/deploy"
	"github.com/outgate/outgate/internal/deployedconfig"
	"github.com/outgate/outgate/internal/iacsnippet"
	"github.com/outgate/outgate/internal/preflight"
	"github.com/outgate/outgate/internal/stack"
	"github.com/outgate/outgate/internal/verify"
)

// defaultAWS loads the AWS configuration from the default chain
// (environment, profile, role), for secrets the config references.
func defaultAWS(ctx context.Context) (aws.Config, error) { return awsconfig.LoadDefaultConfig(ctx) }

func printJSON(cmd *cobra.Command, v any) error {
	enc := json.NewEncoder(cmd.OutOrStdout())
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func upCmd(g *globals) *cobra.Command {
	var (
		o       deploy.UpOptions
		cfgPath string
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "up --name N --config FILE",
		Short: "Deploy (or update) a static-IP gateway on AWS and print the IPs to give partners",
		Long: `Deploy or update a deployment through a CloudFormation change set:

  1. find or allocate the deployment's Elastic IPs (tagged outgate:deployment=N; --adopt-eip
     reuses IPs partners already know). They live outside the stack: down keeps them.
  2. stage the function code in s3://outgate-ACCOUNT-REGION (versioned, encrypted, private)
     and the gateway config in SSM (/outgate/N/config, SecureString)
  3. create and run a change set (--dry-run prints it and stops), showing progress
  4. in eni mode, run guardian passes until the IPs sit on the relay's ENIs (--wait)

With --vpc-id, --subnet-ids name public subnets of that VPC (a default route to an internet
gateway; checked first), one per AZ. In eni mode the relay runs in them. In nat mode the NAT
gateways go there and outgate adds private subnets for the relay, with route tables of its
own, so your subnets' routes are never touched: blocks from the top of the VPC's range, or
--private-cidrs. Switching modes (up --mode nat on an eni deployment, and back) keeps the IPs.

--mode instance runs the gateway itself on one small arm64 instance per AZ (--instance-type,
default t4g.nano), proxy and relay over TLS on :443, each instance holding its AZ's IP and
replaced automatically. --domain gets a certificate from an ACME CA (a first run allocates the
IPs and stops until the name points at them); without it the deployment's own CA signs.
--allow-from limits who may connect (default anywhere: the key authenticates).

On a running deployment up keeps what is deployed (mode, AZs, VPC and subnets, front door,
arch, memory, endpoints) and changes only what a flag given says. It prints each change; one
that moves the IPs or changes the relay URL asks for confirmation on a terminal, and needs
--yes otherwise (without it nothing is changed, exit 2). Functions attached with
outgate attach block a change of the relay's subnets: detach them first.

The function code travels with the CLI: release builds embed it; from a checkout it is built
with the Go toolchain.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Ctrl-C or SIGTERM cancels the context instead of killing the
			// process, so an interrupted switch still restarts the guardian
			// it stopped (or prints the command that does).
			sigCtx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			ctx, cancel := context.WithTimeout(sigCtx, timeout)
			defer cancel()
			if cfgPath == "" {
				return usageError{errors.New("--config FILE is required: the gateway config to deploy (see docs/config.md)")}
			}
			data, err := os.ReadFile(cfgPath)
			if err != nil {
				return err
			}
			if _, err := config.Parse(data, cfgPath); err != nil {
				return err
			}
			o.Name, o.ConfigYAML, o.Out, o.Zips = g.name, data, cmd.ErrOrStderr(), deploy.BuildZips
			o.Set = map[string]bool{}
			for _, name := range []string{deploy.FlagMode, deploy.FlagAZs, deploy.FlagVPC, deploy.FlagSubnets, deploy.FlagEndpoints,
				deploy.FlagFront, deploy.FlagSharedNAT, deploy.FlagArch, deploy.FlagMemory, deploy.FlagNotify, deploy.FlagNotifyTopic,
				deploy.FlagInstanceType, deploy.FlagDomain, deploy.FlagAllowFrom} {
				o.Set[name] = cmd.Flags().Changed(name)
			}
			declined := false
			if g.env.interactive() {
				o.Confirm = func([]deploy.Change) bool {
					declined = !confirm(cmd.InOrStdin(), cmd.ErrOrStderr())
					return !declined
				}
			}
			c, err := g.clients(ctx)
			if err != nil {
				return err
			}
			res, err := deploy.Up(ctx, c, o)
			var needsYes deploy.ErrNeedsYes
			var bad deploy.ErrOptions
			if declined && errors.As(err, &needsYes) {
				return errors.New("not confirmed; nothing was changed") // as every question answered no
			}
			if errors.As(err, &needsYes) || errors.As(err, &bad) {
				return usageError{err}
			}
			var dns preflight.ErrPointDNS
			if errors.As(err, &dns) && res != nil {
				// The IPs exist now: say them on stdout, then the error.
				fmt.Fprintln(cmd.OutOrStdout(), "static IPs (allocated and kept; point the domain at them, and give them to your partners):")
				for _, ip := range res.IPs {
					fmt.Fprintf(cmd.OutOrStdout(), "  %s  (%s)\n", ip.PublicIP, ip.AllocationID)
				}
			}
			if err != nil {
				return err
			}
			if g.output == "json" {
				return printJSON(cmd, res)
			}
			w := cmd.OutOrStdout()
			if o.DryRun {
				fmt.Fprintf(w, "%s: dry run, nothing changed\n", res.Stack)
				return nil
			}
			fmt.Fprintf(w, "\n%s: %s\n", res.Stack, res.Status)
			if host := res.Host; host != "" {
				fmt.Fprintf(w, "proxy: HTTPS_PROXY=https://CLIENT:KEY@%s:443\nrelay URL: https://%s (with Outgate-Key)\n", host, host)
			} else {
				fmt.Fprintf(w, "relay URL: %s\n", res.RelayURL)
			}
			fmt.Fprintln(w, "static IPs to give your partners:")
			for _, ip := range res.IPs {
				fmt.Fprintf(w, "  %s  (%s)\n", ip.PublicIP, ip.AllocationID)
			}
			if !res.Attached {
				fmt.Fprintln(w, "(not attached yet: check with `outgate status --name "+res.Stack+"`)")
			}
			return nil
		},
	}
	usesAWS(usesName(usesOutput(cmd, "text", "json")))
	f := cmd.Flags()
	f.StringVar(&cfgPath, "config", "", "gateway config file to deploy")
	f.StringVar(&o.Template.Mode, "mode", "eni", "eni, nat or instance (switching between eni and nat keeps the same IPs); default: what is deployed, eni for a new deployment")
	f.IntVar(&o.Template.AZs, "azs", 0, "availability zones, 1-3, one IP each; default: what is deployed, 2 for a new deployment (1 is the cheapest)")
	f.StringVar(&o.Template.VPCID, "vpc-id", "", "use an existing VPC instead of creating one")
	f.Var(newList(&o.Template.SubnetIDs), "subnet-ids", "public subnets of --vpc-id, one per AZ (repeat or comma-separate)")
	f.Var(newList(&o.PrivateCIDRs), "private-cidrs", "nat mode with --vpc-id: blocks for the relay's private subnets, one per AZ (repeat or comma-separate; default: free /24s)")
	f.Var(newList(&o.Template.Endpoints), "endpoints", "nat mode: VPC endpoints, e.g. s3,dynamodb,sqs (repeat or comma-separate)")
	f.StringVar(&o.Template.Front, "front", "url", "url (Function URL) or apigw (API Gateway HTTP API)")
	f.BoolVar(&o.Template.SharedNAT, "shared-nat", false, "nat mode: one NAT gateway for all AZs")
	f.StringVar(&o.Template.Arch, "arch", "arm64", "architecture of the relay and the guardian: arm64 or x86_64")
	templateAlarmFlags(cmd, &o.Template)
	f.IntVar(&o.Template.MemoryMB, "memory", stack.RelayMemoryMB, "the relay's memory in MB (128-10240)")
	f.BoolVar(&o.Yes, "yes", false, "go ahead with changes that move the IPs or the relay URL (mode, AZs, VPC, subnets, front door) without asking (needed when stdin is not a terminal)")
	f.Var(newList(&o.AdoptEIPs), "adopt-eip", "Elastic IP allocation ids to reuse (repeat or comma-separate)")
	f.IntVar(&o.SpareIPs, "spare-ips", 0, "eni mode: extra Elastic IPs beyond one per AZ, for an extra ENI to use without a human (give them to partners too)")
	f.BoolVar(&o.DryRun, "dry-run", false, "print the change set and stop")
	instanceFlags(cmd, &o.Template)
	f.DurationVar(&o.Wait, "wait", 3*time.Minute, "how long to wait for the IPs to be attached (0: don't)")
	f.DurationVar(&o.Poll, "poll", 5*time.Second, "how often to poll CloudFormation")
	f.DurationVar(&timeout, "timeout", time.Hour, "give up after this long (the stack operation goes on in AWS)")
	completeValues(cmd)
	return cmd
}

func statusCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status --name N",
		Short: "Show a deployment: IPs and their attachment, ENIs, the relay's state, what needs a human",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.clients(cmd.Context())
			if err != nil {
				return err
			}
			s, err := deploy.ReadStatus(cmd.Context(), c, g.name)
			if err != nil {
				return err
			}
			if g.output == "json" {
				return printJSON(cmd, s)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "%s: stack %s\n", s.Name, s.StackStatus)
			if len(s.Instances) == 0 {
				fmt.Fprintf(w, "relay: %s %s\nrelay URL: %s\n", s.Relay, s.RelayState, s.RelayURL)
			}
			fmt.Fprintln(w, "IPs:")
			for _, ip := range s.IPs {
				at := ip.AttachedTo
				if at == "" {
					at = "not attached"
				}
				fmt.Fprintf(w, "  %-15s %s  subnet %s  %s\n", ip.PublicIP, ip.AllocationID, ip.Subnet, at)
			}
			if s.Guardian != nil {
				fmt.Fprintf(w, "guardian: last run %s, %.0f ENI(s) without IP\n", s.Guardian.At.Format(time.RFC3339), s.Guardian.ENIsWithoutIP)
			}
			if len(s.Instances) == 0 {
				fmt.Fprintln(w, "ENIs:")
			}
			for _, e := range s.ENIs {
				fmt.Fprintf(w, "  %s  %s  %s  %s\n", e.ID, e.Subnet, e.Status, e.PublicIP)
			}
			if len(s.Instances) > 0 {
				fmt.Fprintln(w, "instances (one per AZ):")
			}
			for _, gr := range s.Instances {
				ready, last := "no report", ""
				if gr.Ready != nil {
					ready = map[bool]string{true: "ready", false: "NOT READY"}[*gr.Ready]
					last = ", last check " + gr.LastCheck.Format(time.RFC3339)
				}
				fmt.Fprintf(w, "  %s  %s  IP %s  %s%s\n", gr.AZ, gr.Subnet, gr.PoolIP, ready, last)
				for _, i := range gr.Instances {
					fmt.Fprintf(w, "    %s  %s/%s/%s  holds %s\n", i.ID, i.State, i.Lifecycle, i.Health, orNone(i.IP))
				}
			}
			if len(s.Attached) > 0 {
				fmt.Fprintln(w, "attached functions:")
			}
			for _, f := range s.Attached {
				fmt.Fprintf(w, "  %-8s %s", f.State, f.Name)
				if len(f.Differs) > 0 {
					fmt.Fprint(w, ": "+strings.Join(f.Differs, "; "))
				}
				fmt.Fprintln(w)
			}
			if len(s.Alarms) > 0 {
				fmt.Fprintln(w, "alarms:")
			}
			for _, a := range s.Alarms {
				fmt.Fprintf(w, "  %-17s %s\n", a.State, a.Name)
			}
			if len(s.NeedsAttention) == 0 {
				fmt.Fprintln(w, "nothing needs attention")
			}
			for _, n := range s.NeedsAttention {
				fmt.Fprintln(w, "NEEDS ATTENTION: "+n)
			}
			return nil
		},
	}
	return usesAWS(usesName(usesOutput(cmd, "text", "json")))
}

func downCmd(g *globals) *cobra.Command {
	var (
		poll            time.Duration
		deleteLogs, yes bool
	)
	cmd := &cobra.Command{
		Use:   "down --name N",
		Short: "Delete a deployment's stack; its Elastic IPs are kept and printed",
		Long: `Delete a deployment's stack: its functions, its VPC (if outgate made it), alarms and
config. The Elastic IPs are kept (and billed) so partners' allowlists stay valid; up reuses
them. On a terminal down asks first; in a script it needs --yes (without it nothing is
deleted, exit 2).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			name := g.name
			what := "down deletes deployment " + name + " (its stack; the Elastic IPs are kept)"
			if deleteLogs {
				what += ", and its log groups"
			}
			if err := g.mayAct(cmd, yes, what); err != nil {
				return err
			}
			c, err := g.clients(cmd.Context())
			if err != nil {
				return err
			}
			ips, err := deploy.Down(cmd.Context(), c, name, poll, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if deleteLogs {
				if err := deploy.DeleteLogGroups(cmd.Context(), c.Logs, name, cmd.ErrOrStderr()); err != nil {
					return err
				}
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "%s is down. Its IPs are kept (and billed, $3.65/month each) so partners' allowlists stay valid:\n", name)
			for _, ip := range ips {
				fmt.Fprintf(w, "  %s  (%s)\n", ip.PublicIP, ip.AllocationID)
			}
			fmt.Fprintf(w, "`outgate up --name %s` reuses them; `outgate ips release --name %s IP...` gives them back to AWS.\n", name, name)
			return nil
		},
	}
	usesAWS(usesName(cmd))
	yesFlag(cmd, &yes)
	cmd.Flags().DurationVar(&poll, "poll", 5*time.Second, "how often to poll CloudFormation")
	cmd.Flags().BoolVar(&deleteLogs, "delete-logs", false, "also delete the functions' log groups (kept by default: the logs of an incident outlive the deployment)")
	return cmd
}

func ipsCmd(g *globals) *cobra.Command {
	root := &cobra.Command{Use: "ips", Short: "List or release a deployment's Elastic IPs"}
	list := &cobra.Command{
		Use:   "list --name N",
		Short: "List the deployment's Elastic IPs",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.clients(cmd.Context())
			if err != nil {
				return err
			}
			ips, err := deploy.ListIPs(cmd.Context(), c.EC2, g.name)
			if err != nil {
				return err
			}
			if g.output == "json" {
				return printJSON(cmd, ips)
			}
			for _, ip := range ips {
				fmt.Fprintf(cmd.OutOrStdout(), "%s\t%s\t%s\t%s\n", ip.PublicIP, ip.AllocationID, ip.Subnet, ip.AttachedTo)
			}
			return nil
		},
	}
	usesAWS(usesName(usesOutput(list, "text", "json")))

	var yes bool
	release := &cobra.Command{
		Use:   "release --name N IP [IP...]",
		Short: "Give IPs back to AWS (partners' allowlists stop working for them)",
		Long: `Release Elastic IPs of a deployment. This cannot be undone: a released IP is gone, and
partners that allowlisted it must be told a new one. Type each IP; on a terminal you are
asked to type them again to confirm; in a script it needs --yes (without it nothing is
released, exit 2).`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !yes && !g.env.interactive() {
				return usageError{fmt.Errorf("releasing %s cannot be undone and stdin is not a terminal, so nobody can confirm; nothing was released. Pass --yes to go ahead", strings.Join(args, " "))}
			}
			if !yes {
				fmt.Fprintf(cmd.ErrOrStderr(), "Releasing %s cannot be undone. Type the IP(s) again to confirm: ", strings.Join(args, " "))
				var typed []string
				for range args {
					var s string
					if _, err := fmt.Fscan(cmd.InOrStdin(), &s); err != nil {
						return errors.New("not confirmed; nothing was released")
					}
					typed = append(typed, s)
				}
				if strings.Join(typed, " ") != strings.Join(args, " ") {
					return errors.New("the IPs typed do not match; nothing was released")
				}
			}
			c, err := g.clients(cmd.Context())
			if err != nil {
				return err
			}
			if err := deploy.ReleaseIPs(cmd.Context(), c, g.name, args); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "released %s\n", strings.Join(args, " "))
			return nil
		},
	}
	usesAWS(usesName(release))
	yesFlag(release, &yes)
	root.AddCommand(list, release)
	return root
}

func verifyCmd(g *globals) *cobra.Command {
	var key, client, checkURL string
	cmd := &cobra.Command{
		Use:   "verify --name N --key KEY",
		Short: "Check through the deployed relay that calls leave from the deployment's IPs",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if key == "" {
				key = os.Getenv("OUTGATE_KEY")
			}
			c, err := g.clients(cmd.Context())
			if err != nil {
				return err
			}
			s, err := deploy.ReadStatus(cmd.Context(), c, g.name)
			if err != nil {
				return err
			}
			if len(s.Instances) > 0 {
				return verifyInstances(cmd, c, g.name, client, key, checkURL, s.IPs)
			}
			checks, err := verify.Egress(cmd.Context(), &http.Client{Timeout: 30 * time.Second}, s.RelayURL, key, s.IPs)
			w := cmd.OutOrStdout()
			for _, c := range checks {
				switch {
				case c.Seen:
					fmt.Fprintf(w, "  %-15s ok: calls through the relay left from it\n", c.PublicIP)
				case c.OK:
					fmt.Fprintf(w, "  %-15s ok: attached to %s (no call happened to leave from it: Lambda picks the AZ)\n", c.PublicIP, c.On)
				default:
					fmt.Fprintf(w, "  %-15s FAILED: attached to nothing and no call left from it\n", c.PublicIP)
				}
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(w, "ok: calls through %s leave only from the deployment's IPs, and every one of them is in use\n", s.RelayURL)
			return nil
		},
	}
	usesAWS(usesName(cmd))
	cmd.Flags().StringVar(&key, "key", "", "a client key of the deployment (default: $OUTGATE_KEY)")
	cmd.Flags().StringVar(&client, "client", "", "instance mode: the key's client name (the proxy takes client:key)")
	cmd.Flags().StringVar(&checkURL, "check-url", "", "instance mode: what to fetch through the proxy, a service answering with the caller's IP (default: the deployed config's egress_check_url); the client's hosts must allow it")
	return cmd
}

func attachCmd(g *globals) *cobra.Command {
	var (
		function, format string
		poll             time.Duration
	)
	cmd := &cobra.Command{
		Use:   "attach --name N (--function F | --print FORMAT [--function ID])",
		Short: "Put an existing Lambda function behind the deployment's static IPs",
		Long: `Move an existing function into the deployment's subnets with exactly its security group.
Lambda shares one network interface per (security groups x subnet), so the function then leaves
from the relay's interfaces and their static IPs, with no code change. Its role gets the
AWSLambdaVPCAccessExecutionRole policy; its previous VPC config is kept in a tag, and
` + "`outgate detach --function F`" + ` restores it. The function's subnets are public: it reaches the
internet only through the static IP, and AWS services only over the internet.

The next deploy of the function by its own tool undoes this. --print FORMAT (` + strings.Join(iacsnippet.Formats, ", ") + `)
changes nothing and prints the snippet that makes your own infrastructure code carry the
VPC config, the deployment's tag (so the guardian and status notice a deploy that drops it)
and the IAM the function's role needs; with --print, --function is the function's name in
that code (omit it for the provider-level / Globals form).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "" {
				if !slices.Contains(iacsnippet.Formats, format) {
					return usageError{fmt.Errorf("--print must be one of %s, got %q", strings.Join(iacsnippet.Formats, ", "), format)}
				}
				c, err := g.clients(cmd.Context())
				if err != nil {
					return err
				}
				st, err := deploy.DescribeDeployed(cmd.Context(), c.CloudFormation, g.name)
				if err != nil {
					return err
				}
				s, err := attach.Snippet(cmd.Context(), c.Lambda, c.EC2, st.AttachTarget(), format, function)
				if err != nil {
					return err
				}
				_, err = io.WriteString(cmd.OutOrStdout(), s)
				return err
			}
			if function == "" {
				return usageError{errors.New("--function is required")}
			}
			c, err := g.clients(cmd.Context())
			if err != nil {
				return err
			}
			st, err := deploy.DescribeDeployed(cmd.Context(), c.CloudFormation, g.name)
			if err != nil {
				return err
			}
			if err := attach.Attach(cmd.Context(), c.Lambda, c.IAM, st.AttachTarget(), function, poll, cmd.ErrOrStderr()); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s now leaves through deployment %s\n", function, g.name)
			return nil
		},
	}
	usesAWS(usesName(cmd))
	cmd.Flags().StringVar(&function, "function", "", "function name or ARN (with --print: its name in your code)")
	cmd.Flags().StringVar(&format, "print", "", "print the snippet for your own IaC instead of changing the function: "+strings.Join(iacsnippet.Formats, ", "))
	cmd.Flags().DurationVar(&poll, "poll", 3*time.Second, "how often to check the function's state")
	return cmd
}

func detachCmd(g *globals) *cobra.Command {
	var (
		function string
		poll     time.Duration
		yes      bool
	)
	cmd := &cobra.Command{
		Use:   "detach --function F",
		Short: "Restore the VPC config a function had before outgate attach",
		Long: `Restore the VPC config a function had before outgate attach: from then on it leaves
from wherever it left before, not from the deployment's static IPs, so partners that allowlist
them refuse its calls. On a terminal detach asks first; in a script it needs --yes (without it
nothing is changed, exit 2).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if function == "" {
				return usageError{errors.New("--function is required")}
			}
			if err := g.mayAct(cmd, yes, "detach moves "+function+" off the deployment's static IPs"); err != nil {
				return err
			}
			c, err := g.clients(cmd.Context())
			if err != nil {
				return err
			}
			return attach.Detach(cmd.Context(), c.Lambda, function, poll, cmd.ErrOrStderr())
		},
	}
	usesAWS(cmd)
	yesFlag(cmd, &yes)
	cmd.Flags().StringVar(&function, "function", "", "function name or ARN")
	cmd.Flags().DurationVar(&poll, "poll", 3*time.Second, "how often to check the function's state")
	return cmd
}

func keysAddCmd(g *globals) *cobra.Command {
	var k deployedconfig.KeyEdit
	cmd := &cobra.Command{
		Use:   "add --name N --client C [--config FILE]",
		Short: "Give a client of a deployment a new key (old keys keep working until revoked)",
		Long: `Make a new key for a client of a deployment and store its hash in the deployed config
(SSM /outgate/N/config); running relays pick it up within a minute. With --config, the file
you deploy from is edited too, so the next up keeps the key. The key is printed once.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if k.Client == "" {
				return usageError{errors.New("--client is required")}
			}
			k.Name = g.name
			c, err := g.clients(cmd.Context())
			if err != nil {
				return err
			}
			key, hash, err := deployedconfig.AddKey(cmd.Context(), c.SSM, k)
			if err != nil {
				return err
			}
			if g.output == "json" {
				return printJSON(cmd, map[string]string{"client": k.Client, "key": key, "key_sha256": hash})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "client:     %s\nkey:        %s\nkey_sha256: %s\n", k.Client, key, hash)
			if k.File == "" {
				fmt.Fprintln(cmd.ErrOrStderr(), "note: without --config your config file does not have this key; add key_sha256 there before the next up")
			}
			return nil
		},
	}
	usesAWS(usesName(usesOutput(cmd, "text", "json")))
	cmd.Flags().StringVar(&k.Client, "client", "", "client name in the config")
	cmd.Flags().StringVar(&k.File, "config", "", "the config file you deploy from (edited too)")
	return cmd
}

func keysRevokeCmd(g *globals) *cobra.Command {
	var (
		k    deployedconfig.KeyEdit
		hash string
	)
	cmd := &cobra.Command{
		Use:   "revoke --name N --client C --key-sha256 H [--config FILE]",
		Short: "Remove a client's key from a deployment (relays stop accepting it within a minute)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if k.Client == "" || hash == "" {
				return usageError{errors.New("--client and --key-sha256 are required")}
			}
			k.Name = g.name
			c, err := g.clients(cmd.Context())
			if err != nil {
				return err
			}
			if err := deployedconfig.RevokeKey(cmd.Context(), c.SSM, k, hash); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "revoked %s... for %s\n", hash[:min(12, len(hash))], k.Client)
			return nil
		},
	}
	usesAWS(usesName(cmd))
	cmd.Flags().StringVar(&k.Client, "client", "", "client name in the config")
	cmd.Flags().StringVar(&hash, "key-sha256", "", "the key's SHA-256, as printed by keys add")
	cmd.Flags().StringVar(&k.File, "config", "", "the config file you deploy from (edited too)")
	return cmd
}

func keysListCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list --name N",
		Short: "List the clients of a deployment and the hashes of their keys",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			name := g.name
			c, err := g.clients(cmd.Context())
			if err != nil {
				return err
			}
			data, err := deployedconfig.Read(cmd.Context(), c.SSM, name)
			if err != nil {
				return err
			}
			cfg, err := config.Parse(data, "ssm:"+deployedconfig.Parameter(name))
			if err != nil {
				return err
			}
			list := map[string][]string{}
			for _, cl := range cfg.Clients {
				list[cl.Name] = cl.KeySHA256
			}
			if g.output == "json" {
				return printJSON(cmd, list)
			}
			for _, cl := range cfg.Clients {
				fmt.Fprintf(cmd.OutOrStdout(), "%s\t%s\n", cl.Name, strings.Join(cl.KeySHA256, " "))
			}
			return nil
		},
	}
	return usesAWS(usesName(usesOutput(cmd, "text", "json")))
}
