package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	cftypes "github.com/aws/aws-sdk-go-v2/service/cloudformation/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/outgate/outgate/internal/awserr"
	"github.com/outgate/outgate/internal/awspage"
	"github.com/outgate/outgate/internal/config"
	"github.com/outgate/outgate/internal/ctxutil"
	"github.com/outgate/outgate/internal/deployedconfig"
	"github.com/outgate/outgate/internal/guardian"
	"github.com/outgate/outgate/internal/preflight"
	"github.com/outgate/outgate/internal/stack"
)

// UpOptions are the inputs of `outgate up`.
type UpOptions struct {
	Name     string // deployment (and stack) name
	Template stack.TemplateOptions
	// Set names the shape flags the user gave (FlagMode, FlagAZs...). On a
	// running deployment every other option keeps what is deployed, so a
	// plain re-run never reshapes it.
	Set        map[string]bool
	ConfigYAML []byte   // the gateway config, validated by the caller
	AdoptEIPs  []string // allocation ids to reuse
	// SpareIPs are extra pool IPs beyond one per AZ (eni mode): tagged for
	// the deployment and for no subnet, so the guardian gives one to an
	// extra ENI (past 65,000 connections, or while Lambda replaces one)
	// without a human. Partners allowlist them with the others.
	SpareIPs int
	// PrivateCIDRs are the blocks of the relay's private subnets in nat mode
	// with an existing VPC; empty keeps the deployment's, or picks free ones.
	PrivateCIDRs []string
	DryRun       bool
	// Yes accepts changes that move the IPs or the relay URL. Without it
	// such a change needs Confirm to say yes; with no Confirm (no terminal)
	// it is refused with ErrNeedsYes.
	Yes     bool
	Confirm func(changes []Change) bool
	Wait    time.Duration // how long to wait for the IPs to be attached (0: don't)
	Poll    time.Duration // how often to poll CloudFormation (default 5s)
	Out     io.Writer     // progress
	Zips    func(ctx context.Context, arch string) (relay, guardian Zip, err error)
	// Binary builds the instances' binary (instance mode; nil: BuildBinary).
	Binary func(ctx context.Context) (Binary, error)
	// Resolver checks --domain (instance mode; nil: the system's).
	Resolver preflight.Resolver
}

// ErrNeedsYes refuses an update that moves the IPs or the relay URL when
// nobody confirmed it.
type ErrNeedsYes struct{ Changes []Change }

func (e ErrNeedsYes) Error() string {
	var list []string
	for _, c := range e.Changes {
		if c.Disruptive {
			list = append(list, c.String())
		}
	}
	return "this update changes what partners and callers see: " + strings.Join(list, "; ") +
		". Nothing was changed: run again with --yes to go ahead (or answer the question on a terminal)"
}

// ErrOptions: the options (with what is deployed) make no valid deployment.
type ErrOptions struct{ error }

func (e ErrOptions) Unwrap() error { return e.error }

// UpResult is what `up` ends with.
type UpResult struct {
	Stack    string `json:"stack"`
	Status   string `json:"status"`
	RelayURL string `json:"relay_url,omitempty"`
	IPs      []IP   `json:"ips"`
	Attached bool   `json:"ips_attached"`
	NoChange bool   `json:"no_change,omitempty"`
	// Host is what callers of an instance-mode deployment dial (the
	// domain, or an IP with the deployment's own CA).
	Host    string   `json:"host,omitempty"`
	Changes []Change `json:"changes,omitempty"`
}

// MaxSpareIPs bounds --spare-ips: AWS's default quota is 5 Elastic IPs per
// Region, and a typo must not allocate dozens of addresses.
const MaxSpareIPs = 10

// checkSpareIPs refuses spare IPs that could not serve: a NAT gateway takes
// exactly one IP, so spares only help the guardian (eni mode).
func (o UpOptions) checkSpareIPs() error {
	switch {
	case o.SpareIPs < 0 || o.SpareIPs > MaxSpareIPs:
		return fmt.Errorf("--spare-ips %d: use 0 to %d", o.SpareIPs, MaxSpareIPs)
	case o.SpareIPs > 0 && o.Template.Mode != "eni":
		return fmt.Errorf("--spare-ips applies to --mode eni (in nat mode each NAT gateway holds one IP and nothing else uses a spare)")
	}
	return nil
}

// Up deploys or updates a deployment through a change set. On a running
// deployment it first reads what is deployed and keeps it, except what the
// user's flags change; a change that moves the IPs or the relay URL needs
// --yes or a confirmation.
func Up(ctx context.Context, c Clients, o UpOptions) (_ *UpResult, retErr error) {
	if err := stack.ValidateName(o.Name); err != nil {
		return nil, err
	}
	if o.Poll == 0 {
		o.Poll = 5 * time.Second
	}
	say := func(format string, args ...any) { fmt.Fprintf(o.Out, format+"\n", args...) }
	id, err := c.STS.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		return nil, awserr.Explain("checking credentials (sts:GetCallerIdentity)", err)
	}
	account := aws.ToString(id.Account)
	exists, err := stackExists(ctx, c.CloudFormation, o.Name)
	if err != nil {
		return nil, err
	}
	var (
		prev  *Deployed
		shape *Shape
		// leaving are an instance-mode deployment's groups, emptied before
		// a switch to eni or nat runs so the IPs leave the instances.
		leaving []string
	)
	if exists {
		if prev, err = DescribeDeployed(ctx, c.CloudFormation, o.Name); err != nil {
			return nil, err
		}
		switching := isInstance(prev) && o.Set[FlagMode] && o.Template.Mode != "instance"
		if !switching && (isInstance(prev) || o.Set[FlagMode] && o.Template.Mode == "instance") {
			return upInstance(ctx, c, o, account, prev, say)
		}
		if switching {
			// Instance -> eni or nat: the AZs, VPC and subnets are kept
			// (the relay's defaults for the rest), and the groups are
			// emptied just before the change set runs.
			is, groups, err := readInstanceShape(ctx, c, prev)
			if err != nil {
				return nil, err
			}
			shape = &Shape{Template: stack.TemplateOptions{Mode: "instance", AZs: is.AZs, VPCID: is.VPCID, SubnetIDs: is.SubnetIDs,
				Front: "url", Arch: "arm64", MemoryMB: stack.RelayMemoryMB}}
			leaving = groups
		} else if shape, err = ReadShape(ctx, c, prev); err != nil {
			return nil, err
		}
		o.Template = keepShape(o.Template, o.Set, &shape.Template)
		if err := keepAlarmRouting(ctx, c.CloudFormation, o.Name, &o.Template, o.Set); err != nil {
			return nil, err
		}
	} else {
		if o.Template.Mode == "instance" {
			return upInstance(ctx, c, o, account, nil, say)
		}
		o.Template = keepShape(o.Template, o.Set, nil)
	}
	// The relay's role reads exactly the secrets the config names.
	cfg, err := config.Parse(o.ConfigYAML, "the config")
	if err != nil {
		return nil, err
	}
	o.Template.Secrets = cfg.SecretRefs()
	if err := o.Template.Normalize(); err != nil {
		return nil, ErrOptions{err}
	}
	if err := o.checkSpareIPs(); err != nil {
		return nil, ErrOptions{err}
	}
	say("account %s, region %s, deployment %s (mode %s, %d AZ, front %s, %s, %d MB)", account, c.Region, o.Name,
		o.Template.Mode, o.Template.AZs, o.Template.Front, o.Template.Arch, o.Template.MemoryMB)
	var changes []Change
	if shape != nil {
		changes = diffShape(shape.Template, o.Template)
		disruptive := false
		for _, ch := range changes {
			say("  change: %s", ch)
			disruptive = disruptive || ch.Disruptive
		}
		if disruptive && !o.DryRun && !o.Yes && (o.Confirm == nil || !o.Confirm(changes)) {
			return nil, ErrNeedsYes{Changes: changes}
		}
		if leaving == nil && movesRelay(shape.Template, o.Template) {
			fns, err := AttachedFunctions(ctx, c.Lambda, shape.SG, shape.Relay, prev.Resources["Guardian"])
			if err != nil {
				return nil, err
			}
			if len(fns) > 0 {
				return nil, fmt.Errorf("%w, and this update moves the relay to other subnets, which they would not follow: %s; nothing was changed",
					ErrAttached{Deployment: o.Name, Functions: fns}, detachHint(fns))
			}
		}
	}
	if err := deployedconfig.CheckRevoked(ctx, c.SSM, o.Name, o.ConfigYAML); err != nil {
		return nil, err
	}
	vpcParams, err := vpcParameters(ctx, c, &o, prev, say)
	if err != nil {
		return nil, err
	}

	// The template too: one CloudFormation would refuse must fail before
	// any IP is allocated.
	body, err := stack.TemplateBody(o.Template)
	if err != nil {
		return nil, err
	}
	// Build the code before anything is allocated, so a failed build costs nothing.
	relayZip, guardianZip, err := o.Zips(ctx, o.Template.Arch)
	if err != nil {
		return nil, err
	}
	n := o.Template.AZs
	if o.Template.Mode == "nat" && o.Template.SharedNAT {
		n = 1
	}
	var ips []IP
	if o.DryRun {
		ips, err = ListIPs(ctx, c.EC2, o.Name)
	} else {
		var created []IP
		ips, created, err = EnsureIPs(ctx, c.EC2, o.Name, n+o.SpareIPs, o.AdoptEIPs)
		for _, ip := range created {
			say("allocated Elastic IP %s (%s): new, so no partner has it yet", ip.PublicIP, ip.AllocationID)
		}
	}
	if err != nil {
		return nil, err
	}
	if !o.DryRun && len(ips) < n+o.SpareIPs {
		return nil, fmt.Errorf("deployment %s has %d IPs, needs %d", o.Name, len(ips), n+o.SpareIPs)
	}
	// In eni mode the guardian's pool is every IP tagged for the deployment
	// (spares included), so calls may leave from any of them: all are
	// expected by the egress check and all go to partners. In nat mode the
	// i-th IP feeds the i-th NAT gateway, and only those carry traffic.
	pool := ips
	if shape != nil && o.Template.Mode == "nat" {
		ips = keepNATMapping(ips, shape.NATAlloc)
	}
	ips = ips[:min(len(ips), max(n, 0))]
	if o.Template.Mode != "eni" {
		pool = ips
	}

	bucket := fmt.Sprintf("outgate-%s-%s", account, c.Region)
	if !o.DryRun {
		if err := stageBucket(ctx, c.S3, bucket, c.Region); err != nil {
			return nil, err
		}
		for _, z := range []Zip{relayZip, guardianZip} {
			if _, err := c.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(z.Key(o.Name)), Body: strings.NewReader(string(z.Data))}); err != nil {
				return nil, awserr.Explain("uploading "+z.Name+" (s3:PutObject)", err)
			}
		}
		say("staged the function code in s3://%s/%s/", bucket, o.Name)
		if _, err := c.SSM.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String(deployedconfig.Parameter(o.Name)), Value: aws.String(string(o.ConfigYAML)),
			Type: ssmtypes.ParameterTypeSecureString, Overwrite: aws.Bool(true), Description: aws.String("outgate gateway config (only key hashes)")}); err != nil {
			return nil, awserr.Explain("storing the config (ssm:PutParameter)", err)
		}
	}

	var allocs, pubs []string
	for _, ip := range ips {
		allocs = append(allocs, ip.AllocationID)
	}
	for _, ip := range pool {
		pubs = append(pubs, ip.PublicIP)
	}
	params := map[string]string{
		stack.ParamCodeBucket: bucket, stack.ParamRelayKey: relayZip.Key(o.Name), stack.ParamConfig: deployedconfig.Parameter(o.Name),
		stack.ParamEIPs: strings.Join(allocs, ","), stack.ParamExpectedIPs: strings.Join(pubs, ","),
	}
	if o.Template.Mode == "eni" {
		params[stack.ParamGuardianKey] = guardianZip.Key(o.Name)
	}
	for k, v := range vpcParams {
		params[k] = v
	}
	if !o.DryRun {
		logParams, err := logParameters(ctx, c.Logs, o.Name, o.Template, prev, say)
		if err != nil {
			return nil, err
		}
		for k, v := range logParams {
			params[k] = v
		}
	}
	if cr, ok := c.Lambda.(ConcurrencyReader); ok {
		for k, v := range concurrencyParameters(ctx, cr, o.Template, prev, say) {
			params[k] = v
		}
	}
	alarmNotice(o.Template, say)
	cs, dry, err := proposeChangeSet(ctx, c.CloudFormation, o.Name, body, params, stack.Tags(o.Name, o.Template), exists, o.DryRun, o.Poll, say)
	if err != nil {
		return nil, err
	}
	res := &UpResult{Stack: o.Name, IPs: pool, Changes: changes}
	if dry {
		res.Status = "DRY_RUN"
		return res, nil
	}
	if cs == nil {
		res.NoChange = true
	} else {
		if exists {
			// Only now, with the change set made and ready, are the IPs taken
			// off the relay's ENIs for a switch to nat: egress pauses from
			// here until the NAT gateways hold them, and no earlier.
			paused, err := handOverIPs(ctx, c, o, prev, say)
			defer func() {
				if retErr != nil {
					resumeGuardian(context.WithoutCancel(ctx), c, o.Name, paused, say)
				}
			}()
			if err != nil {
				return nil, err
			}
			if leaving != nil {
				if err := releaseInstances(ctx, c, o, leaving, say); err != nil {
					return nil, err
				}
				defer func() {
					if retErr != nil {
						restoreInstances(context.WithoutCancel(ctx), c, o.Name, leaving, say)
					}
				}()
			}
		}
		if _, err := c.CloudFormation.ExecuteChangeSet(ctx, &cloudformation.ExecuteChangeSetInput{StackName: aws.String(o.Name), ChangeSetName: cs.ChangeSetName}); err != nil {
			return nil, awserr.Explain("executing the change set (cloudformation:ExecuteChangeSet)", err)
		}
		total := len(cs.Changes)
		if err := WaitStack(ctx, c.CloudFormation, o.Name, total, o.Poll, o.Out); err != nil {
			return nil, err
		}
	}
	st, err := DescribeDeployed(ctx, c.CloudFormation, o.Name)
	if err != nil {
		return nil, err
	}
	res.Status, res.RelayURL = st.Status, st.Outputs[stack.OutputRelayURL]

	if o.Template.Mode == "eni" {
		res.Attached = attachNow(ctx, c, o, st, say)
	} else {
		res.Attached = true // the NAT gateways hold the IPs
	}
	return res, nil
}

// keepNATMapping orders the IPs so that the i-th NAT gateway keeps the IP it
// holds (natAlloc[i]); the others fill the gaps in their usual order.
// Sorting alone would hand a NAT gateway another IP when an AZ is added,
// replacing it and changing the IP its AZ leaves from.
func keepNATMapping(ips []IP, natAlloc []string) []IP {
	byAlloc := map[string]IP{}
	for _, ip := range ips {
		byAlloc[ip.AllocationID] = ip
	}
	slots := make([]*IP, len(natAlloc))
	taken := map[string]bool{}
	for i, a := range natAlloc {
		if ip, ok := byAlloc[a]; ok && !taken[a] {
			slots[i], taken[a] = &ip, true
		}
	}
	var rest []IP
	for _, ip := range ips {
		if !taken[ip.AllocationID] {
			rest = append(rest, ip)
		}
	}
	var out []IP
	for _, s := range slots {
		switch {
		case s != nil:
			out = append(out, *s)
		case len(rest) > 0:
			out, rest = append(out, rest[0]), rest[1:]
		}
	}
	return append(out, rest...)
}

// vpcParameters checks an existing VPC and, in nat mode, chooses the
// blocks of outgate's private subnets: those the deployment already has
// (moving them would replace the relay's subnets), the ones given, or free
// ones.
func vpcParameters(ctx context.Context, c Clients, o *UpOptions, prev *Deployed, say func(string, ...any)) (map[string]string, error) {
	if o.Template.VPCID == "" {
		if len(o.PrivateCIDRs) > 0 {
			return nil, ErrOptions{errors.New("--private-cidrs apply to --mode nat with --vpc-id (outgate picks the blocks of a VPC it creates)")}
		}
		return nil, nil
	}
	v, err := inspectVPC(ctx, c.EC2, o.Template.VPCID, o.Template.SubnetIDs)
	if err != nil {
		return nil, err
	}
	if o.Template.Mode != "nat" {
		if len(o.PrivateCIDRs) > 0 {
			return nil, ErrOptions{errors.New("--private-cidrs apply to --mode nat (in eni mode the relay runs in the public subnets given)")}
		}
		return nil, nil
	}
	current, err := deployedPrivateCIDRs(ctx, c.EC2, prev)
	if err != nil {
		return nil, err
	}
	cidrs := o.PrivateCIDRs
	switch {
	case len(cidrs) == 0 && current != "":
		cidrs = strings.Split(current, ",")
		if n := o.Template.AZs; len(cidrs) > n {
			cidrs = cidrs[:n]
		} else if len(cidrs) < n {
			more, err := freeBlocks(v.CIDR, v.used, n-len(cidrs))
			if err != nil {
				return nil, err
			}
			cidrs = append(cidrs, more...)
		}
	case len(cidrs) == 0:
		if cidrs, err = freeBlocks(v.CIDR, v.used, o.Template.AZs); err != nil {
			return nil, err
		}
		say("private subnets for the relay: %s (free blocks of %s; --private-cidrs to choose)", strings.Join(cidrs, ", "), v.CIDR)
	case strings.Join(cidrs, ",") != current:
		if err := checkPrivateCIDRs(v, cidrs, o.Template.AZs); err != nil {
			return nil, ErrOptions{err} // the blocks given are wrong: a usage error
		}
	}
	if o.Template.InterfaceEndpoints() {
		own := map[string]bool{}
		if prev != nil {
			for id, phys := range prev.Resources {
				if strings.HasPrefix(id, "Endpoint") {
					own[phys] = true
				}
			}
		}
		existing, err := existingPrivateDNSEndpoints(ctx, c.EC2, o.Template.VPCID, c.Region, own)
		if err != nil {
			return nil, err
		}
		var keep []string
		for _, e := range o.Template.Endpoints {
			if id, ok := existing[e]; ok && !stack.IsGatewayEndpoint(e) {
				say("endpoint %s: the VPC already has %s with private DNS, which the relay's calls to %s use; outgate adds none (AWS allows one per service). Its security group must admit the relay's private subnets on 443", e, id, e)
				continue
			}
			keep = append(keep, e)
		}
		o.Template.Endpoints = keep
	}
	p := map[string]string{stack.ParamPrivateCIDRs: strings.Join(cidrs, ","), stack.ParamPublicAZs: strings.Join(v.AZs, ",")}
	if o.Template.InterfaceEndpoints() {
		// Every block of the VPC, not only the primary: a client in a
		// secondary block resolves the service to the endpoint too.
		p[stack.ParamVPCCIDR] = strings.Join(v.Blocks, ",")
		o.Template.VPCBlocks = len(v.Blocks)
	}
	return p, nil
}

// deployedPrivateCIDRs reads the blocks of the private subnets a nat
// deployment in an existing VPC already has, from the subnets themselves.
func deployedPrivateCIDRs(ctx context.Context, api VPCReader, prev *Deployed) (string, error) {
	if prev == nil {
		return "", nil
	}
	if _, ok := prev.Parameters[stack.ParamPrivateCIDRs]; !ok {
		return "", nil // a stack of its own VPC, or in eni mode
	}
	var ids []string
	for i := 0; i < stack.MaxAZs; i++ {
		if id := prev.Resources[fmt.Sprintf("PrivateSubnet%d", i)]; id != "" {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return "", nil
	}
	cidr := map[string]string{}
	pages := ec2.NewDescribeSubnetsPaginator(api, &ec2.DescribeSubnetsInput{SubnetIds: ids})
	if err := awspage.Each(ctx, pages, maxVPCPages, func(out *ec2.DescribeSubnetsOutput) {
		for _, s := range out.Subnets {
			cidr[aws.ToString(s.SubnetId)] = aws.ToString(s.CidrBlock)
		}
	}); err != nil {
		return "", awserr.Explain("reading the deployment's private subnets (ec2:DescribeSubnets)", err)
	}
	var blocks []string
	for _, id := range ids {
		blocks = append(blocks, cidr[id])
	}
	return strings.Join(blocks, ","), nil
}

// guardianRunMax is how long a guardian run may take (its Lambda Timeout,
// plus a margin): after throttling it, a run already in flight could still
// put an IP back for this long.
var guardianRunMax = 55 * time.Second

// handOverIPs prepares a switch from eni to nat mode. The NAT gateways the
// update creates need the deployment's IPs, which sit on the relay's Lambda
// ENIs and which the guardian would put back. So: stop the guardian
// (reserved concurrency 0 throttles every invocation at once, with no stack
// update), let a run in flight end, then take the IPs off the ENIs. Egress
// pauses until the NAT gateways are up (a few minutes); the IPs never
// change. st is the running stack. It returns the paused guardian's name
// ("" if none was paused), for resumeGuardian should the update fail.
func handOverIPs(ctx context.Context, c Clients, o UpOptions, st *Deployed, say func(string, ...any)) (string, error) {
	if o.Template.Mode == "eni" || o.DryRun {
		return "", nil
	}
	fn, eni := st.Resources["Guardian"]
	if !eni {
		return "", nil
	}
	say("switching eni -> %s: stopping the guardian and moving the IPs to their new holders; egress pauses until they hold them", o.Template.Mode)
	if _, err := c.Lambda.PutFunctionConcurrency(ctx, &lambda.PutFunctionConcurrencyInput{FunctionName: aws.String(fn),
		ReservedConcurrentExecutions: aws.Int32(0)}); err != nil {
		return "", awserr.Explain("stopping the guardian (lambda:PutFunctionConcurrency)", err)
	}
	say("  waiting %s for a guardian run in flight to end", guardianRunMax)
	if err := ctxutil.Sleep(ctx, guardianRunMax); err != nil {
		return fn, err
	}
	ips, err := ListIPs(ctx, c.EC2, o.Name)
	if err != nil {
		return fn, err
	}
	for _, ip := range ips {
		if ip.Association == "" {
			continue
		}
		if _, err := c.EC2.DisassociateAddress(ctx, &ec2.DisassociateAddressInput{AssociationId: aws.String(ip.Association)}); err != nil {
			return fn, awserr.Explain("freeing "+ip.PublicIP+" for its new holder (ec2:DisassociateAddress)", err)
		}
		say("  %s freed from %s", ip.PublicIP, ip.AttachedTo)
	}
	return fn, nil
}

// resumeGuardian undoes handOverIPs after a failed switch, once the stack
// is back in eni mode and at rest: then the guardian puts the IPs back
// within a minute. While CloudFormation is still working (up gave up
// waiting), restarting it could take the IPs from the NAT gateways being
// made, so it only says how to restart it later.
func resumeGuardian(ctx context.Context, c Clients, stackName, fn string, say func(string, ...any)) {
	if fn == "" {
		return
	}
	// The stack gives the guardian a reserved concurrency of 1 (one run at
	// a time) unless the account's quota had no room for it: restarting it
	// puts back what the stack holds, not "no reservation", which would
	// let runs overlap until the next stack update.
	st, err := DescribeDeployed(ctx, c.CloudFormation, stackName)
	serial := err != nil || st.Parameters[stack.ParamGuardianCap] != "0"
	manual := fmt.Sprintf("aws lambda put-function-concurrency --function-name %s --reserved-concurrent-executions 1", fn)
	if !serial {
		manual = fmt.Sprintf("aws lambda delete-function-concurrency --function-name %s", fn)
	}
	if err != nil || strings.HasSuffix(st.Status, "_IN_PROGRESS") || st.Resources["Guardian"] != fn {
		say("the switch did not finish; once the stack is back in eni mode, restart the guardian with `%s` (it is stopped, so the IPs stay off the relay)", manual)
		return
	}
	if serial {
		_, err = c.Lambda.PutFunctionConcurrency(ctx, &lambda.PutFunctionConcurrencyInput{FunctionName: aws.String(fn), ReservedConcurrentExecutions: aws.Int32(1)})
	} else {
		_, err = c.Lambda.DeleteFunctionConcurrency(ctx, &lambda.DeleteFunctionConcurrencyInput{FunctionName: aws.String(fn)})
	}
	if err != nil {
		say("the switch failed and the guardian %s could not be restarted (%v): run `%s`, or the IPs stay off the relay", fn, err, manual)
		return
	}
	say("the switch failed: the guardian runs again and puts the IPs back on the relay's ENIs within a minute")
}

// attachNow runs guardian passes from the CLI itself (with the caller's
// credentials) until every relay ENI has its IP or o.Wait runs out, so the
// user leaves `up` with the IPs attached rather than "within a minute".
func attachNow(ctx context.Context, c Clients, o UpOptions, st *Deployed, say func(string, ...any)) bool {
	sg, subnets := st.Outputs[stack.OutputSecurityGrp], st.Outputs[stack.OutputSubnets]
	if subnets == "" {
		subnets = strings.Join(o.Template.SubnetIDs, ",")
	}
	if sg == "" || subnets == "" {
		say("the stack reports no security group or subnets yet; the guardian will attach the IPs within a minute")
		return false
	}
	// MaxAttempts 1: the SDK's retryer (NewClients) already retries
	// throttling; a loop of ours on top would multiply its attempts.
	g, err := guardian.New(guardian.Config{Deployment: o.Name, SecurityGroupID: sg, SubnetIDs: strings.Split(subnets, ","), MaxAttempts: 1}, c.EC2, nil)
	if err != nil {
		say("guardian pass skipped: %v", err)
		return false
	}
	deadline := time.Now().Add(o.Wait)
	for {
		s := g.Run(ctx)
		if s.ENIsSeen > 0 && s.ENIsWithoutIP == 0 && len(s.Errors) == 0 {
			say("guardian pass: %d ENI(s), every one on a static IP", s.ENIsSeen)
			return true
		}
		if !time.Now().Before(deadline) {
			say("IPs not attached yet (%d ENI(s) seen, %d without IP%s); the guardian attaches them within a minute of the ENIs appearing",
				s.ENIsSeen, s.ENIsWithoutIP, strings.Join(append([]string{""}, s.Errors...), "; "))
			return false
		}
		if err := ctxutil.Sleep(ctx, min(10*time.Second, time.Until(deadline))); err != nil {
			say("stopped waiting for the IPs to be attached: %v; the guardian attaches them within a minute", err)
			return false
		}
	}
}

func sortedKeys(m map[string]string) []string {
	var k []string
	for x := range m {
		k = append(k, x)
	}
	sort.Strings(k)
	return k
}

func stageBucket(ctx context.Context, c S3, bucket, region string) error {
	if _, err := c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(bucket)}); err != nil {
		in := &s3.CreateBucketInput{Bucket: aws.String(bucket)}
		if region != "us-east-1" {
			in.CreateBucketConfiguration = &s3types.CreateBucketConfiguration{LocationConstraint: s3types.BucketLocationConstraint(region)}
		}
		if _, err := c.CreateBucket(ctx, in); err != nil {
			return awserr.Explain("creating the staging bucket "+bucket+" (s3:CreateBucket)", err)
		}
	}
	// Applied every time, so a bucket someone loosened is tightened again.
	if _, err := c.PutPublicAccessBlock(ctx, &s3.PutPublicAccessBlockInput{Bucket: aws.String(bucket), PublicAccessBlockConfiguration: &s3types.PublicAccessBlockConfiguration{
		BlockPublicAcls: aws.Bool(true), BlockPublicPolicy: aws.Bool(true), IgnorePublicAcls: aws.Bool(true), RestrictPublicBuckets: aws.Bool(true)}}); err != nil {
		return awserr.Explain("blocking public access to "+bucket+" (s3:PutBucketPublicAccessBlock)", err)
	}
	if _, err := c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: aws.String(bucket),
		VersioningConfiguration: &s3types.VersioningConfiguration{Status: s3types.BucketVersioningStatusEnabled}}); err != nil {
		return awserr.Explain("versioning "+bucket+" (s3:PutBucketVersioning)", err)
	}
	if _, err := c.PutBucketEncryption(ctx, &s3.PutBucketEncryptionInput{Bucket: aws.String(bucket), ServerSideEncryptionConfiguration: &s3types.ServerSideEncryptionConfiguration{
		Rules: []s3types.ServerSideEncryptionRule{{ApplyServerSideEncryptionByDefault: &s3types.ServerSideEncryptionByDefault{SSEAlgorithm: s3types.ServerSideEncryptionAes256}}}}}); err != nil {
		return awserr.Explain("encrypting "+bucket+" (s3:PutEncryptionConfiguration)", err)
	}
	return nil
}

// stackExists reports whether up should update the stack rather than
// create it.
func stackExists(ctx context.Context, c CloudFormation, name string) (bool, error) {
	st, err := lookupStack(ctx, c, name)
	if st == nil || err != nil {
		return false, err
	}
	switch st.StackStatus {
	case cftypes.StackStatusReviewInProgress:
		return false, nil // a change set was made but never run
	case cftypes.StackStatusRollbackComplete:
		return false, fmt.Errorf("stack %s failed to create and is in ROLLBACK_COMPLETE: run `outgate down --name %s` first (the IPs are kept)", name, name)
	}
	return true, nil
}

// proposeChangeSet makes the change set that brings the stack to body and
// params, waits until it is ready and prints its changes; nil when there is
// nothing to change. On a dry run with changes it deletes the change set
// (and the empty stack a CREATE leaves in REVIEW_IN_PROGRESS) and says so:
// dry is then true.
func proposeChangeSet(ctx context.Context, c CloudFormation, name string, body []byte, params map[string]string, tags []cftypes.Tag,
	exists, dryRun bool, poll time.Duration, say func(string, ...any)) (cs *cloudformation.DescribeChangeSetOutput, dry bool, err error) {
	kind := cftypes.ChangeSetTypeCreate
	if exists {
		kind = cftypes.ChangeSetTypeUpdate
	}
	csName := fmt.Sprintf("outgate-%d", time.Now().Unix())
	in := &cloudformation.CreateChangeSetInput{StackName: aws.String(name), ChangeSetName: aws.String(csName), ChangeSetType: kind,
		TemplateBody: aws.String(string(body)), Capabilities: []cftypes.Capability{cftypes.CapabilityCapabilityIam}, Tags: tags}
	for _, k := range sortedKeys(params) {
		in.Parameters = append(in.Parameters, cftypes.Parameter{ParameterKey: aws.String(k), ParameterValue: aws.String(params[k])})
	}
	if _, err := c.CreateChangeSet(ctx, in); err != nil {
		return nil, false, awserr.Explain("creating a change set (cloudformation:CreateChangeSet)", err)
	}
	cs, err = waitChangeSet(ctx, c, name, csName, poll)
	if err != nil {
		return nil, false, err
	}
	if cs == nil {
		say("no changes: the stack is already up to date")
		return nil, false, nil
	}
	cs.ChangeSetName = aws.String(csName) // what ExecuteChangeSet names
	say("change set %s (%s): %d changes", csName, kind, len(cs.Changes))
	for _, ch := range cs.Changes {
		if rc := ch.ResourceChange; rc != nil {
			say("  %-8s %-40s %s", rc.Action, aws.ToString(rc.LogicalResourceId), aws.ToString(rc.ResourceType))
		}
	}
	if !dryRun {
		return cs, false, nil
	}
	c.DeleteChangeSet(ctx, &cloudformation.DeleteChangeSetInput{StackName: aws.String(name), ChangeSetName: aws.String(csName)})
	if kind == cftypes.ChangeSetTypeCreate {
		c.DeleteStack(ctx, &cloudformation.DeleteStackInput{StackName: aws.String(name)})
	}
	say("dry run: nothing was changed")
	return cs, true, nil
}

// waitChangeSet waits until the change set is ready; nil means "no changes".
func waitChangeSet(ctx context.Context, c CloudFormation, stack, name string, poll time.Duration) (*cloudformation.DescribeChangeSetOutput, error) {
	for {
		cs, err := c.DescribeChangeSet(ctx, &cloudformation.DescribeChangeSetInput{StackName: aws.String(stack), ChangeSetName: aws.String(name)})
		if err != nil {
			return nil, awserr.Explain("reading the change set (cloudformation:DescribeChangeSet)", err)
		}
		switch cs.Status {
		case cftypes.ChangeSetStatusCreateComplete:
			// The changes come a page at a time: up prints and counts them all.
			if aws.ToString(cs.NextToken) != "" {
				pages := cloudformation.NewDescribeChangeSetPaginator(c, &cloudformation.DescribeChangeSetInput{StackName: aws.String(stack),
					ChangeSetName: aws.String(name), NextToken: cs.NextToken})
				if err := awspage.Each(ctx, pages, maxResourcePages, func(out *cloudformation.DescribeChangeSetOutput) {
					cs.Changes = append(cs.Changes, out.Changes...)
				}); err != nil {
					return nil, awserr.Explain("reading the change set (cloudformation:DescribeChangeSet)", err)
				}
				cs.NextToken = nil
			}
			return cs, nil
		case cftypes.ChangeSetStatusFailed:
			// A change set with nothing to do fails too, told apart only by
			// its StatusReason: a status, not an error, which CloudFormation
			// gives no code (AWS's SAM CLI and CDK read the same words).
			// Should the words change, a re-run with nothing to do reports
			// the change set failed, and nothing was changed.
			reason := aws.ToString(cs.StatusReason)
			if strings.Contains(reason, "didn't contain changes") || strings.Contains(reason, "No updates") {
				c.DeleteChangeSet(ctx, &cloudformation.DeleteChangeSetInput{StackName: aws.String(stack), ChangeSetName: aws.String(name)})
				return nil, nil
			}
			return nil, fmt.Errorf("the change set failed: %s", reason)
		}
		if err := ctxutil.Sleep(ctx, poll); err != nil {
			return nil, err
		}
	}
}

// isNotExist reports CloudFormation's answer about a stack that does not
// exist ("Stack with id X does not exist"): the error code ValidationError,
// as DescribeStacks' API reference states ("If the stack doesn't exist, a
// ValidationError is returned"). CloudFormation has no code of its own for
// it, and the code alone decides here as in the SDK's own StackExists and
// StackDeleteComplete waiters: the name was checked first
// (stack.ValidateName), so these reads have no other invalid input.
func isNotExist(err error) bool {
	return awserr.IsCode(err, "ValidationError")
}
