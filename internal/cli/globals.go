package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/smithy-go/logging"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/outgate/outgate/internal/deploy"
	"github.com/outgate/outgate/internal/pricing"
	"github.com/outgate/outgate/internal/stack"
)

// globals are the flags declared once, on the root, that mean the same on
// every command that takes them: --profile and --region (AWS commands and
// plan), --name (commands on one deployment) and -o (commands that print
// data). A command says which it takes with uses*; given to a command that
// does not take it, a global flag is a usage error, not silently ignored,
// and it is left out of that command's help.
type globals struct {
	profile, region, name, output string
	env                           env
}

// Annotations saying which global flags a command takes.
const (
	annAWS    = "outgate/aws"    // --profile, --region
	annName   = "outgate/name"   // --name, checked with stack.ValidateName
	annOutput = "outgate/output" // -o: the formats, the default first, comma-separated
)

func annotate(cmd *cobra.Command, key, value string) *cobra.Command {
	if cmd.Annotations == nil {
		cmd.Annotations = map[string]string{}
	}
	cmd.Annotations[key] = value
	return cmd
}

func usesAWS(cmd *cobra.Command) *cobra.Command  { return annotate(cmd, annAWS, "") }
func usesName(cmd *cobra.Command) *cobra.Command { return annotate(cmd, annName, "") }

// usesOutput: the command prints data in these formats, the first the default.
func usesOutput(cmd *cobra.Command, formats ...string) *cobra.Command {
	return annotate(cmd, annOutput, strings.Join(formats, ","))
}

func has(cmd *cobra.Command, key string) bool { _, ok := cmd.Annotations[key]; return ok }

func outputFormats(cmd *cobra.Command) []string {
	if v, ok := cmd.Annotations[annOutput]; ok {
		return strings.Split(v, ",")
	}
	return nil
}

// globalFlags maps each global flag to the annotation that admits it.
var globalFlags = []struct{ flag, ann string }{
	{"profile", annAWS}, {"region", annAWS}, {"name", annName}, {"output", annOutput},
}

func (g *globals) declare(root *cobra.Command) {
	f := root.PersistentFlags()
	f.StringVar(&g.profile, "profile", "", "AWS profile (default: AWS_PROFILE, or the default credential chain)")
	f.StringVar(&g.region, "region", "", "AWS region (default: AWS_REGION, or the profile's)")
	f.StringVar(&g.name, "name", "", "deployment name (the CloudFormation stack's)")
	f.StringVarP(&g.output, "output", "o", "", "output format")
	root.RegisterFlagCompletionFunc("region", fixed(pricing.Regions()...))
	root.RegisterFlagCompletionFunc("output", func(cmd *cobra.Command, _ []string, prefix string) ([]cobra.Completion, cobra.ShellCompDirective) {
		return startingWith(outputFormats(cmd), prefix), cobra.ShellCompDirectiveNoFileComp
	})
}

// check runs before every command: a global flag the command does not take,
// an -o it cannot print, or a bad deployment name is a usage error, found
// before anything calls AWS.
func (g *globals) check(cmd *cobra.Command) error {
	for _, gf := range globalFlags {
		if cmd.Flags().Changed(gf.flag) && !has(cmd, gf.ann) {
			return usageError{fmt.Errorf("--%s does not apply to %s", gf.flag, cmd.CommandPath())}
		}
	}
	if formats := outputFormats(cmd); formats != nil {
		if g.output == "" {
			g.output = formats[0]
		}
		if !slices.Contains(formats, g.output) {
			return usageError{fmt.Errorf("-o must be %s, got %q", strings.Join(formats, " or "), g.output)}
		}
	}
	if has(cmd, annName) {
		if err := stack.ValidateName(g.name); err != nil {
			return usageError{err}
		}
	}
	return nil
}

// fitHelp shows in cmd's help only the global flags it takes, with its own
// -o formats. Help is printed once per process, so changing the shared
// flags here is safe.
func fitHelp(cmd *cobra.Command) {
	f := cmd.Root().PersistentFlags()
	for _, gf := range globalFlags {
		if fl := f.Lookup(gf.flag); fl != nil {
			fl.Hidden = !has(cmd, gf.ann)
		}
	}
	if formats := outputFormats(cmd); formats != nil {
		o := f.Lookup("output")
		o.Usage = "output format: " + strings.Join(formats, " or ")
		o.DefValue = formats[0]
	}
}

// awsConfig loads the AWS configuration for --profile and --region. The
// SDK's own log lines (such as "SDK ... WARN falling back to IMDSv1" when
// no credentials are configured) are dropped: they are unformatted, on
// stderr, and say nothing the command's own one-line error does not.
func (g *globals) awsConfig(ctx context.Context) (aws.Config, error) {
	opts := []func(*awsconfig.LoadOptions) error{awsconfig.WithLogger(logging.Nop{})}
	if g.profile != "" {
		opts = append(opts, awsconfig.WithSharedConfigProfile(g.profile))
	}
	if g.region != "" {
		opts = append(opts, awsconfig.WithRegion(g.region))
	}
	ac, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("loading AWS configuration: %w", err)
	}
	return ac, nil
}

// clients makes the AWS clients; a region is required.
func (g *globals) clients(ctx context.Context) (deploy.Clients, error) {
	ac, err := g.awsConfig(ctx)
	if err != nil {
		return deploy.Clients{}, err
	}
	if ac.Region == "" {
		return deploy.Clients{}, usageError{errors.New("no AWS region: pass --region, set AWS_REGION, or give the profile a region")}
	}
	return deploy.NewClients(ac, os.Getenv("AWS_ENDPOINT_URL") != ""), nil
}

// listFlag is every list-valued flag: items comma-separated, the flag
// repeatable, spaces around items trimmed, and an empty item refused
// (a stray comma is a typo, not an item).
type listFlag struct {
	items *[]string
	set   bool
}

func newList(items *[]string) *listFlag { return &listFlag{items: items} }

func (l *listFlag) String() string {
	if l.items == nil {
		return ""
	}
	return strings.Join(*l.items, ",")
}

func (l *listFlag) Set(s string) error {
	var add []string
	for _, it := range strings.Split(s, ",") {
		it = strings.TrimSpace(it)
		if it == "" {
			return fmt.Errorf("empty item in %q", s)
		}
		add = append(add, it)
	}
	if !l.set {
		*l.items, l.set = nil, true // the first use replaces the default
	}
	*l.items = append(*l.items, add...)
	return nil
}

func (l *listFlag) Type() string { return "list" }

var _ pflag.Value = (*listFlag)(nil)

// fixed completes a flag's value from a fixed set.
func fixed(values ...string) cobra.CompletionFunc {
	return func(_ *cobra.Command, _ []string, prefix string) ([]cobra.Completion, cobra.ShellCompDirective) {
		return startingWith(values, prefix), cobra.ShellCompDirectiveNoFileComp
	}
}

func startingWith(values []string, prefix string) []string {
	var out []string
	for _, v := range values {
		if strings.HasPrefix(v, prefix) {
			out = append(out, v)
		}
	}
	return out
}

// completeValues registers the value completions of the shape flags the
// command has.
func completeValues(cmd *cobra.Command) {
	for flag, values := range map[string][]string{
		"mode":  {"eni", "nat", "instance"},
		"front": {"url", "apigw"},
		"arch":  {"arm64", "x86_64"},
	} {
		if cmd.Flags().Lookup(flag) != nil {
			cmd.RegisterFlagCompletionFunc(flag, fixed(values...))
		}
	}
}
