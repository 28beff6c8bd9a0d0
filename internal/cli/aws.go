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

	"github.com/outgate/outgate/internal/config"
	"github.com/outgate/outgate/internal/deploy"
	"github.com/outgate/outgate/internal/iacsnippet"
)

// defaultAWS loads the AWS configuration from the default chain
// (environment, profile, role), for secrets the config references.
func defaultAWS(ctx context.Context) (aws.Config, error) { return awsconfig.LoadDefaultConfig(ctx) }

type awsFlags struct{ profile, region string }

func (f *awsFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.profile, "profile", "", "AWS profile (default: the AWS default credential chain)")
	cmd.Flags().StringVar(&f.region, "region", "", "AWS region (default: AWS_REGION or the profile's)")
}

func (f *awsFlags) clients(ctx context.Context) (deploy.Clients, error) {
	var opts []func(*awsconfig.LoadOptions) error
	if f.profile != "" {
		opts = append(opts, awsconfig.WithSharedConfigProfile(f.profile))
	}
	if f.region != "" {
		opts = append(opts, awsconfig.WithRegion(f.region))
	}
	ac, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return deploy.Clients{}, fmt.Errorf("loading AWS configuration: %w", err)
	}
	if ac.Region == "" {
		return deploy.Clients{}, usageError{errors.New("no AWS region: pass --region or set AWS_REGION")}
	}
	return deploy.NewClients(ac, os.Getenv("AWS_ENDPOINT_URL") != ""), nil
}

// forDeployment checks a deployment name, then makes the clients.
func (f *awsFlags) forDeployment(ctx context.Context, name string) (deploy.Clients, error) {
	if err := deploy.ValidateName(name); err != nil {
		return deploy.Clients{}, usageError{err}
	}
	return f.clients(ctx)
}

func printJSON(cmd *cobra.Command, v any) error {
	enc := json.NewEncoder(cmd.OutOrStdout())
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func upCmd() *cobra.Command {
	var (
		af                    awsFlags
		o                     deploy.UpOptions
		cfgPath, subnets, eps string
		adopt                 []string
		timeout               time.Duration
		output                string
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
			o.ConfigYAML, o.AdoptEIPs, o.Out, o.Zips = data, adopt, cmd.ErrOrStderr(), deploy.BuildZips
			if subnets != "" {
				o.Template.SubnetIDs = strings.Split(subnets, ",")
			}
			if eps != "" {
				o.Template.Endpoints = strings.Split(eps, ",")
			}
			if err := deploy.ValidateName(o.Name); err != nil {
				return usageError{err}
			}
			o.Set = map[string]bool{}
			for _, name := range []string{deploy.FlagMode, deploy.FlagAZs, deploy.FlagVPC, deploy.FlagSubnets, deploy.FlagEndpoints,
				deploy.FlagFront, deploy.FlagSharedNAT, deploy.FlagArch, deploy.FlagMemory, deploy.FlagNotify, deploy.FlagNotifyTopic} {
				o.Set[name] = cmd.Flags().Changed(name)
			}
			if isTerminal(os.Stdin) {
				o.Confirm = func([]deploy.Change) bool { return confirm(cmd.InOrStdin(), cmd.ErrOrStderr()) }
			}
			c, err := af.clients(ctx)
			if err != nil {
				return err
			}
			res, err := deploy.Up(ctx, c, o)
			var needsYes deploy.ErrNeedsYes
			var bad deploy.ErrOptions
			if errors.As(err, &needsYes) || errors.As(err, &bad) {
				return usageError{err}
			}
			if err != nil {
				return err
			}
			if output == "json" {
				return printJSON(cmd, res)
			}
			w := cmd.OutOrStdout()
			if o.DryRun {
				fmt.Fprintf(w, "%s: dry run, nothing changed\n", res.Stack)
				return nil
			}
			fmt.Fprintf(w, "\n%s: %s\n", res.Stack, res.Status)
			fmt.Fprintf(w, "relay URL: %s\n", res.RelayURL)
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
	af.add(cmd)
	f := cmd.Flags()
	f.StringVar(&o.Name, "name", "", "deployment name (the stack name)")
	f.StringVar(&cfgPath, "config", "", "gateway config file to deploy")
	f.StringVar(&o.Template.Mode, "mode", "eni", "eni or nat (switching keeps the same IPs); default: what is deployed, eni for a new deployment")
	f.IntVar(&o.Template.AZs, "azs", 0, "availability zones, 1-3, one IP each; default: what is deployed, 2 for a new deployment (1 is the cheapest)")
	f.StringVar(&o.Template.VPCID, "vpc-id", "", "use an existing VPC instead of creating one")
	f.StringVar(&subnets, "subnet-ids", "", "public subnets of --vpc-id, one per AZ, comma-separated")
	f.StringSliceVar(&o.PrivateCIDRs, "private-cidrs", nil, "nat mode with --vpc-id: blocks for the relay's private subnets, one per AZ (default: free /24s)")
	f.StringVar(&eps, "endpoints", "", "nat mode: VPC endpoints, e.g. s3,dynamodb,sqs")
	f.StringVar(&o.Template.Front, "front", "url", "url (Function URL) or apigw (API Gateway HTTP API)")
	f.BoolVar(&o.Template.SharedNAT, "shared-nat", false, "nat mode: one NAT gateway for all AZs")
	f.StringVar(&o.Template.Arch, "arch", "arm64", "architecture of the relay and the guardian: arm64 or x86_64")
	templateAlarmFlags(cmd, &o.Template)
	f.IntVar(&o.Template.MemoryMB, "memory", deploy.RelayMemoryMB, "the relay's memory in MB (128-10240)")
	f.BoolVar(&o.Yes, "yes", false, "go ahead with changes that move the IPs or the relay URL (mode, AZs, VPC, subnets, front door) without asking")
	f.StringSliceVar(&adopt, "adopt-eip", nil, "Elastic IP allocation ids to reuse (repeat or comma-separate)")
	f.IntVar(&o.SpareIPs, "spare-ips", 0, "eni mode: extra Elastic IPs beyond one per AZ, for an extra ENI to use without a human (give them to partners too)")
	f.BoolVar(&o.DryRun, "dry-run", false, "print the change set and stop")
	f.DurationVar(&o.Wait, "wait", 3*time.Minute, "how long to wait for the IPs to be attached (0: don't)")
	f.DurationVar(&o.Poll, "poll", 5*time.Second, "how often to poll CloudFormation")
	f.DurationVar(&timeout, "timeout", time.Hour, "give up after this long (the stack operation goes on in AWS)")
	f.StringVarP(&output, "output", "o", "text", "text or json")
	return cmd
}

func statusCmd() *cobra.Command {
	var (
		af           awsFlags
		name, output string
		ifType       string
	)
	cmd := &cobra.Command{
		Use:   "status --name N",
		Short: "Show a deployment: IPs and their attachment, ENIs, the relay's state, what needs a human",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := af.forDeployment(cmd.Context(), name)
			if err != nil {
				return err
			}
			s, err := deploy.ReadStatus(cmd.Context(), c, name, ifType)
			if err != nil {
				return err
			}
			if output == "json" {
				return printJSON(cmd, s)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "%s: stack %s\nrelay: %s %s\nrelay URL: %s\nIPs:\n", s.Name, s.StackStatus, s.Relay, s.RelayState, s.RelayURL)
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
			fmt.Fprintln(w, "ENIs:")
			for _, e := range s.ENIs {
				fmt.Fprintf(w, "  %s  %s  %s  %s\n", e.ID, e.Subnet, e.Status, e.PublicIP)
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
	af.add(cmd)
	cmd.Flags().StringVar(&name, "name", "", "deployment name")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	cmd.Flags().StringVar(&ifType, "interface-type", "lambda", "ENI type to list (tests against emulators use interface)")
	cmd.Flags().MarkHidden("interface-type")
	return cmd
}

func downCmd() *cobra.Command {
	var (
		af         awsFlags
		name       string
		poll       time.Duration
		deleteLogs bool
	)
	cmd := &cobra.Command{
		Use:   "down --name N",
		Short: "Delete a deployment's stack; its Elastic IPs are kept and printed",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := af.forDeployment(cmd.Context(), name)
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
	af.add(cmd)
	cmd.Flags().StringVar(&name, "name", "", "deployment name")
	cmd.Flags().DurationVar(&poll, "poll", 5*time.Second, "how often to poll CloudFormation")
	cmd.Flags().BoolVar(&deleteLogs, "delete-logs", false, "also delete the functions' log groups (kept by default: the logs of an incident outlive the deployment)")
	return cmd
}

func ipsCmd() *cobra.Command {
	root := &cobra.Command{Use: "ips", Short: "List or release a deployment's Elastic IPs"}
	var (
		af           awsFlags
		name, output string
	)
	list := &cobra.Command{
		Use:   "list --name N",
		Short: "List the deployment's Elastic IPs",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := af.forDeployment(cmd.Context(), name)
			if err != nil {
				return err
			}
			ips, err := deploy.ListIPs(cmd.Context(), c.EC2, name)
			if err != nil {
				return err
			}
			if output == "json" {
				return printJSON(cmd, ips)
			}
			for _, ip := range ips {
				fmt.Fprintf(cmd.OutOrStdout(), "%s\t%s\t%s\t%s\n", ip.PublicIP, ip.AllocationID, ip.Subnet, ip.AttachedTo)
			}
			return nil
		},
	}
	af.add(list)
	list.Flags().StringVar(&name, "name", "", "deployment name")
	list.Flags().StringVarP(&output, "output", "o", "text", "text or json")

	var (
		raf   awsFlags
		rname string
		yes   bool
	)
	release := &cobra.Command{
		Use:   "release --name N IP [IP...]",
		Short: "Give IPs back to AWS (partners' allowlists stop working for them)",
		Long: `Release Elastic IPs of a deployment. This cannot be undone: a released IP is gone, and
partners that allowlisted it must be told a new one. Type each IP; without --yes you are asked
to type them again to confirm.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := deploy.ValidateName(rname); err != nil {
				return usageError{err}
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
			c, err := raf.clients(cmd.Context())
			if err != nil {
				return err
			}
			if err := deploy.ReleaseIPs(cmd.Context(), c, rname, args); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "released %s\n", strings.Join(args, " "))
			return nil
		},
	}
	raf.add(release)
	release.Flags().StringVar(&rname, "name", "", "deployment name")
	release.Flags().BoolVar(&yes, "yes", false, "do not ask for confirmation")
	root.AddCommand(list, release)
	return root
}

func verifyCmd() *cobra.Command {
	var (
		af        awsFlags
		name, key string
	)
	cmd := &cobra.Command{
		Use:   "verify --name N --key KEY",
		Short: "Check through the deployed relay that calls leave from the deployment's IPs",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := deploy.ValidateName(name); err != nil {
				return usageError{err}
			}
			if key == "" {
				key = os.Getenv("OUTGATE_KEY")
			}
			c, err := af.clients(cmd.Context())
			if err != nil {
				return err
			}
			s, err := deploy.ReadStatus(cmd.Context(), c, name, "")
			if err != nil {
				return err
			}
			checks, err := deploy.Verify(cmd.Context(), &http.Client{Timeout: 30 * time.Second}, s.RelayURL, key, s.IPs)
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
	af.add(cmd)
	cmd.Flags().StringVar(&name, "name", "", "deployment name")
	cmd.Flags().StringVar(&key, "key", "", "a client key of the deployment (default: $OUTGATE_KEY)")
	return cmd
}

func attachCmd() *cobra.Command {
	var (
		af             awsFlags
		name, function string
		format         string
		poll           time.Duration
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
			if err := deploy.ValidateName(name); err != nil {
				return usageError{err}
			}
			if format != "" {
				if !slices.Contains(iacsnippet.Formats, format) {
					return usageError{fmt.Errorf("--print must be one of %s, got %q", strings.Join(iacsnippet.Formats, ", "), format)}
				}
				c, err := af.clients(cmd.Context())
				if err != nil {
					return err
				}
				st, err := deploy.DescribeDeployed(cmd.Context(), c.CloudFormation, name)
				if err != nil {
					return err
				}
				s, err := deploy.AttachSnippet(cmd.Context(), c.Lambda, c.EC2, st, format, function)
				if err != nil {
					return err
				}
				_, err = io.WriteString(cmd.OutOrStdout(), s)
				return err
			}
			if function == "" {
				return usageError{errors.New("--function is required")}
			}
			c, err := af.clients(cmd.Context())
			if err != nil {
				return err
			}
			st, err := deploy.DescribeDeployed(cmd.Context(), c.CloudFormation, name)
			if err != nil {
				return err
			}
			if err := deploy.Attach(cmd.Context(), c.Lambda, c.IAM, st, function, poll, cmd.ErrOrStderr()); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s now leaves through deployment %s\n", function, name)
			return nil
		},
	}
	af.add(cmd)
	cmd.Flags().StringVar(&name, "name", "", "deployment name")
	cmd.Flags().StringVar(&function, "function", "", "function name or ARN (with --print: its name in your code)")
	cmd.Flags().StringVar(&format, "print", "", "print the snippet for your own IaC instead of changing the function: "+strings.Join(iacsnippet.Formats, ", "))
	cmd.Flags().DurationVar(&poll, "poll", 3*time.Second, "how often to check the function's state")
	return cmd
}

func detachCmd() *cobra.Command {
	var (
		af       awsFlags
		function string
		poll     time.Duration
	)
	cmd := &cobra.Command{
		Use:   "detach --function F",
		Short: "Restore the VPC config a function had before outgate attach",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if function == "" {
				return usageError{errors.New("--function is required")}
			}
			c, err := af.clients(cmd.Context())
			if err != nil {
				return err
			}
			return deploy.Detach(cmd.Context(), c.Lambda, function, poll, cmd.ErrOrStderr())
		},
	}
	af.add(cmd)
	cmd.Flags().StringVar(&function, "function", "", "function name or ARN")
	cmd.Flags().DurationVar(&poll, "poll", 3*time.Second, "how often to check the function's state")
	return cmd
}

func keysAddCmd() *cobra.Command {
	var (
		af     awsFlags
		k      deploy.KeyEdit
		output string
	)
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
			c, err := af.forDeployment(cmd.Context(), k.Name)
			if err != nil {
				return err
			}
			key, hash, err := deploy.AddKey(cmd.Context(), c.SSM, k)
			if err != nil {
				return err
			}
			if output == "json" {
				return printJSON(cmd, map[string]string{"client": k.Client, "key": key, "key_sha256": hash})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "client:     %s\nkey:        %s\nkey_sha256: %s\n", k.Client, key, hash)
			if k.File == "" {
				fmt.Fprintln(cmd.ErrOrStderr(), "note: without --config your config file does not have this key; add key_sha256 there before the next up")
			}
			return nil
		},
	}
	af.add(cmd)
	cmd.Flags().StringVar(&k.Name, "name", "", "deployment name")
	cmd.Flags().StringVar(&k.Client, "client", "", "client name in the config")
	cmd.Flags().StringVar(&k.File, "config", "", "the config file you deploy from (edited too)")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	return cmd
}

func keysRevokeCmd() *cobra.Command {
	var (
		af   awsFlags
		k    deploy.KeyEdit
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
			c, err := af.forDeployment(cmd.Context(), k.Name)
			if err != nil {
				return err
			}
			if err := deploy.RevokeKey(cmd.Context(), c.SSM, k, hash); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "revoked %s... for %s\n", hash[:min(12, len(hash))], k.Client)
			return nil
		},
	}
	af.add(cmd)
	cmd.Flags().StringVar(&k.Name, "name", "", "deployment name")
	cmd.Flags().StringVar(&k.Client, "client", "", "client name in the config")
	cmd.Flags().StringVar(&hash, "key-sha256", "", "the key's SHA-256, as printed by keys add")
	cmd.Flags().StringVar(&k.File, "config", "", "the config file you deploy from (edited too)")
	return cmd
}

func keysListCmd() *cobra.Command {
	var (
		af           awsFlags
		name, output string
	)
	cmd := &cobra.Command{
		Use:   "list --name N",
		Short: "List the clients of a deployment and the hashes of their keys",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := af.forDeployment(cmd.Context(), name)
			if err != nil {
				return err
			}
			data, err := deploy.DeployedConfig(cmd.Context(), c.SSM, name)
			if err != nil {
				return err
			}
			cfg, err := config.Parse(data, "ssm:"+deploy.ConfigParameter(name))
			if err != nil {
				return err
			}
			list := map[string][]string{}
			for _, cl := range cfg.Clients {
				list[cl.Name] = cl.KeySHA256
			}
			if output == "json" {
				return printJSON(cmd, list)
			}
			for _, cl := range cfg.Clients {
				fmt.Fprintf(cmd.OutOrStdout(), "%s\t%s\n", cl.Name, strings.Join(cl.KeySHA256, " "))
			}
			return nil
		},
	}
	af.add(cmd)
	cmd.Flags().StringVar(&name, "name", "", "deployment name")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	return cmd
}

// isTerminal reports whether f is a terminal (a character device), where
// up may ask before a disruptive change.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// confirm asks on w and reads one answer from r: only "y" or "yes" go ahead.
func confirm(r io.Reader, w io.Writer) bool {
	fmt.Fprint(w, "Go ahead? [y/N] ")
	var answer string
	fmt.Fscanln(r, &answer)
	answer = strings.ToLower(strings.TrimSpace(answer))
	return answer == "y" || answer == "yes"
}
