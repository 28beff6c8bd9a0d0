package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/outgate/outgate/internal/preflight"
	"github.com/outgate/outgate/internal/pricing"
	"github.com/outgate/outgate/internal/stack"
)

func planCmd(g *globals) *cobra.Command {
	var (
		u                  = pricing.DefaultUsage()
		mode, instanceType string
	)
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Show what a static IP on AWS will cost each month, mode by mode",
		Long: `Show the monthly cost of each way outgate can give your functions a static IP on AWS,
line by line, from the price table in the repository (its date and source are printed), with
the most a month can cost when every call the relay's concurrency cap lets in is billed.

  eni  the cheapest: an Elastic IP on the relay's own Lambda ENI, kept there by the guardian
  nat  AWS-managed: the relay in private subnets behind a NAT gateway (hourly and per-GB fees)
  instance  one small arm64 instance per AZ holding the IP, HTTPS proxy and relay on :443
       (for callers outside AWS that set HTTPS_PROXY); --instance-type prices another t4g size

The defaults are what ` + "`outgate up`" + ` deploys with no options (arm64, 256 MB, two AZs, the default
relay cap) under a light workload: 1M requests a month of 500 ms.

The region is the one every command uses (--region, AWS_REGION, or the profile's); with none,
plan prices us-east-1 and says so. No credentials are needed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if mode != "" && mode != "eni" && mode != "nat" && mode != "instance" {
				return usageError{fmt.Errorf("--mode must be eni, nat or instance, got %q", mode)}
			}
			if u.Arch != "arm64" && u.Arch != "x86_64" {
				return usageError{fmt.Errorf("--arch must be arm64 or x86_64, got %q", u.Arch)}
			}
			if u.AZs < 1 || u.AZs > 3 {
				return usageError{fmt.Errorf("--azs must be 1, 2 or 3, got %d", u.AZs)}
			}
			if u.Front != "url" && u.Front != "apigw" {
				return usageError{fmt.Errorf("--front must be url or apigw, got %q", u.Front)}
			}
			for name, v := range map[string]float64{"--requests-per-month": u.RequestsPerMonth, "--avg-duration-ms": u.AvgDurationMs, "--gb-per-month": u.GBPerMonth,
				"--idempotent-requests": u.IdempotentPerMonth, "--idempotent-answer-kb": u.IdempotentAnswerKB} {
				if v < 0 {
					return usageError{fmt.Errorf("%s cannot be negative", name)}
				}
			}
			if u.RelayConcurrency < 0 || u.RelayConcurrency > 1000 {
				return usageError{fmt.Errorf("--relay-concurrency must be from 0 (no cap) to 1000, got %d", u.RelayConcurrency)}
			}
			if u.LogRetentionDays < 1 || u.LogRetentionDays > 3653 {
				return usageError{fmt.Errorf("--log-retention-days must be from 1 to 3653, got %d", u.LogRetentionDays)}
			}
			if u.MemoryMB < 128 || u.MemoryMB > 10240 {
				return usageError{fmt.Errorf("--memory-mb must be from 128 to 10240, got %v", u.MemoryMB)}
			}
			region, err := g.planRegion(cmd)
			if err != nil {
				return err
			}
			p, err := pricing.PricesFor(region)
			if err != nil {
				return usageError{err}
			}
			est := pricing.Plan(p, u)
			ip, err := pricing.InstancePricesFor(region)
			if err != nil {
				return usageError{err}
			}
			if err := preflight.InstanceTypeName(instanceType); err != nil {
				return usageError{err}
			}
			inst := pricing.PlanInstance(p, ip, u, instanceType)
			if n := pricing.InstanceBreakEven(p, ip, u, instanceType); n > 0 {
				inst.Summary += fmt.Sprintf("; cheaper than eni from about %.0f calls a month of this kind", n)
			}
			est = append(est, inst)
			if mode != "" {
				for _, e := range est {
					if e.Mode == mode {
						est = []pricing.Estimate{e}
					}
				}
			}
			w := cmd.OutOrStdout()
			if g.output == "json" {
				return json.NewEncoder(w).Encode(map[string]any{"region": region, "prices_recorded": p.Recorded, "prices_source": p.Source, "prices_note": p.Note, "usage": u, "modes": est})
			}
			printPlan(w, region, p, u, est)
			return nil
		},
	}
	usesAWS(cmd)
	usesOutput(cmd, "text", "json")
	f := cmd.Flags()
	f.StringVar(&mode, "mode", "", "show one mode only: eni, nat or instance (default: all)")
	f.StringVar(&instanceType, "instance-type", preflight.DefaultInstanceType, "instance mode: the instance type (t4g sizes are priced)")
	f.IntVar(&u.AZs, "azs", u.AZs, "availability zones (1-3): one static IP each")
	f.Float64Var(&u.RequestsPerMonth, "requests-per-month", u.RequestsPerMonth, "relay requests a month")
	f.Float64Var(&u.AvgDurationMs, "avg-duration-ms", u.AvgDurationMs, "average relay duration in ms (mostly the partner's answer time)")
	f.Float64Var(&u.MemoryMB, "memory-mb", u.MemoryMB, "relay memory in MB (up deploys 256)")
	f.Float64Var(&u.GBPerMonth, "gb-per-month", u.GBPerMonth, "GB a month through the gateway")
	f.StringVar(&u.Arch, "arch", u.Arch, "architecture of the relay and the guardian: arm64 or x86_64")
	f.IntVar(&u.RelayConcurrency, "relay-concurrency", u.RelayConcurrency, "the relay's reserved concurrency, as given to up (0: no cap)")
	f.IntVar(&u.LogRetentionDays, "log-retention-days", u.LogRetentionDays, "days the functions' logs are kept, as given to up")
	f.Float64Var(&u.LogBytesPerRequest, "log-bytes-per-request", u.LogBytesPerRequest, "bytes of log one relay call writes")
	f.Float64Var(&u.IdempotentPerMonth, "idempotent-requests", 0, "relay requests a month with an idempotency key (the DynamoDB table)")
	f.Float64Var(&u.IdempotentAnswerKB, "idempotent-answer-kb", u.IdempotentAnswerKB, "average answer size in KB of those requests (stored for replays)")
	f.BoolVar(&u.FreeTier, "free-tier", false, "subtract the AWS free tier")
	f.StringVar(&u.Front, "front", "url", "front door: url (Function URL) or apigw (API Gateway HTTP API)")
	f.Var(newList(&u.Endpoints), "endpoints", "nat mode: VPC endpoints, e.g. s3,dynamodb,sqs (repeat or comma-separate)")
	f.BoolVar(&u.SharedNAT, "shared-nat", false, "nat mode: one NAT gateway for all AZs (cheaper; an AZ outage cuts egress)")
	completeValues(cmd)
	return cmd
}

func printPlan(w io.Writer, region string, p pricing.Prices, u pricing.Usage, est []pricing.Estimate) {
	fmt.Fprintf(w, "outgate plan: %s, %.0f requests/month x %.0f ms x %.0f MB (%s), %.0f GB/month, %d AZ\n",
		region, u.RequestsPerMonth, u.AvgDurationMs, u.MemoryMB, u.Arch, u.GBPerMonth, u.AZs)
	fmt.Fprintf(w, "prices: %s, recorded %s (list prices; check the pricing pages before you budget)\n", p.Source, p.Recorded)
	if p.Note != "" {
		fmt.Fprintf(w, "NOTE: %s\n", p.Note)
	}
	for _, e := range est {
		fmt.Fprintf(w, "\n== %s: %s\n", e.Mode, e.Summary)
		fmt.Fprintln(w, indent(pricing.Diagram(e.Mode, u.AZs, u.Front)))
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		for _, l := range e.Lines {
			fmt.Fprintf(tw, "  %s\t$%8.2f\t%s\n", l.Item, l.USD, l.Note)
		}
		fmt.Fprintf(tw, "  TOTAL\t$%8.2f\t/month\n", e.Total)
		for _, l := range e.AtCap {
			fmt.Fprintf(tw, "  + %s\t$%8.2f\t%s\n", l.Item, l.USD, l.Note)
		}
		if len(e.AtCap) > 0 {
			fmt.Fprintf(tw, "  WORST CASE AT THE CAP\t$%8.2f\t/month (%d concurrent relay calls; %s)\n", e.AtCapUSD, u.RelayConcurrency, e.AtCapNote)
		} else {
			fmt.Fprintf(tw, "  WORST CASE\t\t%s\n", e.AtCapNote)
		}
		tw.Flush()
	}
}

// planRegion is the region every command would use; plan alone needs no
// region (no AWS call), so with none it prices us-east-1 and says so.
func (g *globals) planRegion(cmd *cobra.Command) (string, error) {
	ac, err := g.awsConfig(cmd.Context())
	if err != nil {
		return "", err
	}
	if ac.Region == "" {
		fmt.Fprintln(cmd.ErrOrStderr(), "no region given (--region, AWS_REGION or the profile's): prices for us-east-1")
		return "us-east-1", nil
	}
	return ac.Region, nil
}

func indent(s string) string { return "  " + strings.ReplaceAll(s, "\n", "\n  ") }

func templateCmd(g *globals) *cobra.Command {
	var o stack.TemplateOptions
	cmd := &cobra.Command{
		Use:   "template",
		Short: "Print the CloudFormation template, for deploying through your own pipeline",
		Long: `Print the CloudFormation template outgate deploys. It works on its own: deploy it with
your pipeline, giving the S3 location of the function zips and the SSM parameter that holds
the outgate config. With EipAllocationIds empty it creates the Elastic IPs and keeps them when
the stack is deleted; in eni mode the guardian attaches them within a minute. In instance mode
give BinaryKey and BinarySha256 (the linux/arm64 outgate binary in CodeBucket) instead of the zips;
the IPs the stack creates are tagged with the subnet each serves.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, err := stack.Template(o)
			if err != nil {
				return usageError{err}
			}
			out, err := stack.Render(t, g.output)
			if err != nil {
				return usageError{err}
			}
			_, err = cmd.OutOrStdout().Write(append(out, '\n'))
			return err
		},
	}
	usesOutput(cmd, "json", "yaml")
	f := cmd.Flags()
	f.StringVar(&o.Mode, "mode", "eni", "eni (Elastic IP on the Lambda ENI), nat (NAT gateway) or instance (an instance per AZ)")
	f.IntVar(&o.AZs, "azs", 0, "availability zones, 1-3 (default 1, or the number of --subnet-ids)")
	f.StringVar(&o.VPCID, "vpc-id", "", "use this VPC instead of creating one")
	f.Var(newList(&o.SubnetIDs), "subnet-ids", "public subnets of --vpc-id, one per AZ, comma-separated (eni: the relay's; nat: the NAT gateways', with parameters PrivateSubnetCidrs and PublicSubnetAzs for the relay's private subnets)")
	f.Var(newList(&o.Endpoints), "endpoints", "nat mode: VPC endpoints, e.g. s3,dynamodb,sqs (repeat or comma-separate)")
	f.StringVar(&o.Front, "front", "url", "url (Function URL) or apigw (API Gateway HTTP API)")
	f.BoolVar(&o.SharedNAT, "shared-nat", false, "nat mode: one NAT gateway for all AZs")
	f.StringVar(&o.Arch, "arch", "arm64", "architecture of the relay and the guardian: arm64 or x86_64")
	templateAlarmFlags(cmd, &o)
	instanceFlags(cmd, &o)
	completeValues(cmd)
	return cmd
}

// templateAlarmFlags are the options up and template share for alarms,
// logs and the cost guard. --relay-concurrency 0 asks for no cap; the
// template spells that NoRelayCap, as 0 there means "the default".
func templateAlarmFlags(cmd *cobra.Command, o *stack.TemplateOptions) {
	f := cmd.Flags()
	f.Var(newList(&o.Notify), "notify", "email address the stack's alarm topic mails (repeat or comma-separate; each must confirm AWS's subscription mail)")
	f.StringVar(&o.NotifyTopic, "notify-topic", "", "an existing SNS topic ARN every alarm publishes to, instead of a topic of the stack's own")
	f.IntVar(&o.LogRetentionDays, "log-retention-days", stack.DefaultLogRetentionDays, "days CloudWatch Logs keeps the functions' logs (1, 3, 5, 7, 14, 30, 60, 90, ... 3653)")
	f.Var(relayCap{&o.RelayConcurrency}, "relay-concurrency", "the relay's reserved concurrency: at most this many calls at once, which caps what a flood of calls can cost; 0 for no cap")
}

// relayCap maps the flag's 0 ("no cap") to stack.NoRelayCap.
type relayCap struct{ n *int }

func (r relayCap) String() string {
	if r.n == nil || *r.n == 0 {
		return fmt.Sprint(stack.DefaultRelayConcurrency)
	}
	if *r.n == stack.NoRelayCap {
		return "0"
	}
	return fmt.Sprint(*r.n)
}

func (r relayCap) Set(s string) error {
	v, err := strconv.Atoi(s)
	if err != nil || v < 0 {
		return fmt.Errorf("want a number from 0 (no cap) to 1000")
	}
	if v == 0 {
		v = stack.NoRelayCap
	}
	*r.n = v
	return nil
}

func (relayCap) Type() string { return "int" }
