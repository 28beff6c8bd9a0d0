package deploy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/outgate/outgate/internal/awserr"
	"github.com/outgate/outgate/internal/config"
	"github.com/outgate/outgate/internal/ctxutil"
	"github.com/outgate/outgate/internal/deployedconfig"
	"github.com/outgate/outgate/internal/fleet"
	"github.com/outgate/outgate/internal/guardian"
	"github.com/outgate/outgate/internal/ownca"
	"github.com/outgate/outgate/internal/preflight"
	"github.com/outgate/outgate/internal/stack"
)

// Binary is the outgate executable the instances run (linux/arm64).
type Binary struct{ Data []byte }

// SHA256 is the hex digest the instance's user data checks.
func (b Binary) SHA256() string {
	s := sha256.Sum256(b.Data)
	return hex.EncodeToString(s[:])
}

// Key is where the binary goes in the staging bucket: content-addressed,
// like the function zips, so a new binary is a new key (and a new launch
// template version, which replaces the instances one AZ at a time).
func (b Binary) Key(deployment string) string {
	return fmt.Sprintf("%s/outgate-linux-arm64-%s", deployment, b.SHA256()[:16])
}

// BuildBinary builds the outgate CLI for linux/arm64 (the instances run
// `outgate instance run`). A release build carries it (dist/); from a
// checkout the Go toolchain builds it.
func BuildBinary(ctx context.Context) (Binary, error) {
	if b, err := dist.ReadFile("dist/outgate-linux-arm64"); err == nil {
		return Binary{b}, nil
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		return Binary{}, errors.New("this outgate binary carries no linux/arm64 build for the instances and there is no Go toolchain to build one: use a release build, or run from a checkout with Go installed")
	}
	dir, err := os.MkdirTemp("", "outgate-build")
	if err != nil {
		return Binary{}, err
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "outgate")
	cmd := exec.CommandContext(ctx, gobin, "build", "-trimpath", "-ldflags=-s -w -buildid=", "-o", out, "github.com/outgate/outgate/cmd/outgate")
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=arm64", "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return Binary{}, fmt.Errorf("building outgate for linux/arm64 (run outgate from a checkout of its source): %v\n%s", err, b)
	}
	data, err := os.ReadFile(out)
	return Binary{data}, err
}

// isInstance reports whether a deployed stack is in instance mode.
func isInstance(st *Deployed) bool { return st != nil && st.Resources["InstanceGroup0"] != "" }

// instanceGroups are the stack's groups, AZ by AZ.
func instanceGroups(st *Deployed) []string {
	var gs []string
	for i := 0; ; i++ {
		g := st.Resources[fmt.Sprintf("InstanceGroup%d", i)]
		if g == "" {
			return gs
		}
		gs = append(gs, g)
	}
}

// SecurityGroups reads a security group's rules.
type SecurityGroups interface {
	DescribeSecurityGroups(ctx context.Context, in *ec2.DescribeSecurityGroupsInput, opts ...func(*ec2.Options)) (*ec2.DescribeSecurityGroupsOutput, error)
}

// allowFromOf reads the blocks the instances' security group admits on
// 443: a re-run without --allow-from keeps them rather than widen access
// to the default (anywhere).
func allowFromOf(ctx context.Context, api SecurityGroups, sg string) ([]string, error) {
	if sg == "" || api == nil {
		return nil, nil
	}
	out, err := api.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{GroupIds: []string{sg}})
	if err != nil {
		return nil, awserr.Explain("reading the instances' security group (ec2:DescribeSecurityGroups)", err)
	}
	var blocks []string
	for _, g := range out.SecurityGroups {
		for _, p := range g.IpPermissions {
			if aws.ToInt32(p.FromPort) != 443 {
				continue
			}
			for _, r := range p.IpRanges {
				blocks = append(blocks, aws.ToString(r.CidrIp))
			}
			for _, r := range p.Ipv6Ranges {
				blocks = append(blocks, aws.ToString(r.CidrIpv6))
			}
		}
	}
	return blocks, nil
}

// readInstanceShape reads a running instance-mode deployment back from
// its resources: the AZs (one group each), their subnets (existing VPC),
// the instance type and domain (stack parameters, which are strings).
func readInstanceShape(ctx context.Context, c Clients, st *Deployed) (stack.TemplateOptions, []string, error) {
	o := stack.TemplateOptions{Mode: "instance"}
	groups := instanceGroups(st)
	o.AZs = len(groups)
	o.Instance.Type = st.Parameters[stack.ParamInstanceType]
	o.Instance.Domain = st.Parameters[stack.ParamDomain]
	o.Instance.ACMEEmail = st.Parameters[stack.ParamACMEEmail]
	if ca := st.Parameters[stack.ParamACMECA]; ca != "" && ca != letsEncrypt {
		o.Instance.ACMECA = ca
	}
	if st.Resources["Vpc"] == "" {
		out, err := c.AutoScaling.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: groups})
		if err != nil {
			return o, nil, awserr.Explain("reading the Auto Scaling groups (autoscaling:DescribeAutoScalingGroups)", err)
		}
		byName := map[string]string{}
		for _, g := range out.AutoScalingGroups {
			byName[aws.ToString(g.AutoScalingGroupName)] = aws.ToString(g.VPCZoneIdentifier)
		}
		for _, g := range groups {
			o.SubnetIDs = append(o.SubnetIDs, byName[g])
		}
		subs, err := c.EC2.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{SubnetIds: o.SubnetIDs})
		if err != nil {
			return o, nil, awserr.Explain("reading the subnets (ec2:DescribeSubnets)", err)
		}
		if len(subs.Subnets) > 0 {
			o.VPCID = aws.ToString(subs.Subnets[0].VpcId)
		}
	}
	return o, groups, nil
}

const letsEncrypt = "https://acme-v02.api.letsencrypt.org/directory"

// upInstance deploys or updates an instance-mode deployment. Every
// refusal (the type, the region's AZs, the VPC, the domain's DNS) comes
// before anything is created; with --domain on a first run, the IPs are
// allocated first and up stops until the name points at them.
func upInstance(ctx context.Context, c Clients, o UpOptions, account string, prev *Deployed, say func(string, ...any)) (_ *UpResult, retErr error) {
	if prev != nil && !isInstance(prev) {
		// eni or nat -> instance: the same VPC, subnets and AZs (the
		// instances go in the public subnets, which the switch keeps), and
		// the IPs handed over just before the change set runs.
		shape, err := ReadShape(ctx, c, prev)
		if err != nil {
			return nil, err
		}
		t := o.Template
		if !o.Set[FlagAZs] {
			t.AZs = shape.Template.AZs
		}
		if !o.Set[FlagVPC] && !o.Set[FlagSubnets] {
			t.VPCID, t.SubnetIDs = shape.Template.VPCID, shape.Template.SubnetIDs
		}
		// The relay's options do not apply to instances.
		t.Front, t.Arch, t.MemoryMB, t.Endpoints, t.SharedNAT = "url", "arm64", 0, nil, false
		ch := []Change{{What: "mode", From: shape.Template.Mode, To: "instance", Disruptive: true,
			Why: "the IPs move from the " + map[bool]string{true: "relay's ENIs", false: "NAT gateways"}[shape.Template.Mode == "eni"] + " to the instances, and callers use the instances (proxy and relay on :443) instead of the relay URL"}}
		if !o.DryRun && !o.Yes && (o.Confirm == nil || !o.Confirm(ch)) {
			return nil, ErrNeedsYes{Changes: ch}
		}
		fns, err := AttachedFunctions(ctx, c.Lambda, shape.SG, shape.Relay, prev.Resources["Guardian"])
		if err != nil {
			return nil, err
		}
		if len(fns) > 0 {
			return nil, fmt.Errorf("%w, and instance mode has no relay subnets for them: %s; nothing was changed", ErrAttached{Deployment: o.Name, Functions: fns}, detachHint(fns))
		}
		o.Template = t
	} else if prev != nil {
		shape, _, err := readInstanceShape(ctx, c, prev)
		if err != nil {
			return nil, err
		}
		t := o.Template
		if !o.Set[FlagAZs] {
			t.AZs = shape.AZs
		}
		if !o.Set[FlagVPC] && !o.Set[FlagSubnets] {
			t.VPCID, t.SubnetIDs = shape.VPCID, shape.SubnetIDs
		}
		if !o.Set[FlagInstanceType] {
			t.Instance.Type = shape.Instance.Type
		}
		if !o.Set[FlagDomain] {
			t.Instance.Domain, t.Instance.ACMECA, t.Instance.ACMEEmail = shape.Instance.Domain, shape.Instance.ACMECA, shape.Instance.ACMEEmail
		}
		if !o.Set[FlagAllowFrom] {
			if t.Instance.AllowFrom, err = allowFromOf(ctx, c.SecurityGroups, prev.Resources["InstanceSecurityGroup"]); err != nil {
				return nil, err
			}
		}
		if t.AZs != shape.AZs || t.VPCID != shape.VPCID || !slices.Equal(t.SubnetIDs, shape.SubnetIDs) {
			ch := []Change{{What: "AZs and subnets", From: fmt.Sprint(shape.AZs, shape.SubnetIDs), To: fmt.Sprint(t.AZs, t.SubnetIDs), Disruptive: true,
				Why: "instances move to other subnets, and IPs are added or dropped"}}
			if !o.DryRun && !o.Yes && (o.Confirm == nil || !o.Confirm(ch)) {
				return nil, ErrNeedsYes{Changes: ch}
			}
		}
		o.Template = t
	}
	if prev != nil {
		// Who the alarms page is kept as in every mode.
		if err := keepAlarmRouting(ctx, c.CloudFormation, o.Name, &o.Template, o.Set); err != nil {
			return nil, err
		}
	}
	cfg, err := config.Parse(o.ConfigYAML, "the config")
	if err != nil {
		return nil, err
	}
	o.Template.Secrets = cfg.SecretRefs()
	if err := o.Template.Normalize(); err != nil {
		return nil, ErrOptions{err}
	}
	if o.SpareIPs > 0 || len(o.PrivateCIDRs) > 0 {
		return nil, ErrOptions{errors.New("--spare-ips and --private-cidrs do not apply to --mode instance")}
	}
	t := o.Template
	say("account %s, region %s, deployment %s (mode instance, %d AZ, %s)", account, c.Region, o.Name, t.AZs, t.Instance.Type)

	// Refusals before anything is created.
	if err := preflight.InstanceType(ctx, c.Preflight, t.Instance.Type); err != nil {
		return nil, ErrOptions{err}
	}
	var subnetAZs []string
	if t.VPCID != "" {
		v, err := inspectVPC(ctx, c.EC2, t.VPCID, t.SubnetIDs)
		if err != nil {
			return nil, err
		}
		subnetAZs = v.AZs
		if err := preflight.CheckAZs(ctx, c.Preflight, c.Region, t.Instance.Type, subnetAZs); err != nil {
			return nil, ErrOptions{err}
		}
	} else if _, err := preflight.NewVPCAZs(ctx, c.Preflight, c.Region, t.Instance.Type, t.AZs); err != nil {
		return nil, ErrOptions{err}
	}
	if err := deployedconfig.CheckRevoked(ctx, c.SSM, o.Name, o.ConfigYAML); err != nil {
		return nil, err
	}
	body, err := stack.TemplateBody(t)
	if err != nil {
		return nil, err
	}
	build := o.Binary
	if build == nil {
		build = BuildBinary
	}
	bin, err := build(ctx)
	if err != nil {
		return nil, err
	}

	var ips []IP
	if o.DryRun {
		ips, err = ListIPs(ctx, c.EC2, o.Name)
	} else {
		var created []IP
		ips, created, err = EnsureIPs(ctx, c.EC2, o.Name, t.AZs, o.AdoptEIPs)
		for _, ip := range created {
			say("allocated Elastic IP %s (%s): new, so no partner has it yet", ip.PublicIP, ip.AllocationID)
		}
	}
	if err != nil {
		return nil, err
	}
	if !o.DryRun && len(ips) < t.AZs {
		return nil, fmt.Errorf("deployment %s has %d IPs, needs %d", o.Name, len(ips), t.AZs)
	}
	if t.Instance.Domain != "" {
		var addrs []netip.Addr
		for _, ip := range ips {
			if a, err := netip.ParseAddr(ip.PublicIP); err == nil {
				addrs = append(addrs, a)
			}
		}
		r := o.Resolver
		if r == nil {
			r = net.DefaultResolver
		}
		warnings, err := preflight.Domain(ctx, r, t.Instance.Domain, addrs)
		if err != nil {
			return &UpResult{Stack: o.Name, Status: "WAITING_FOR_DNS", IPs: ips}, err
		}
		for _, w := range warnings {
			say("warning: %s", w)
		}
	} else if !o.DryRun {
		// Without a domain the instances serve a certificate from the
		// deployment's own CA, made once here (ownca never overwrites one).
		_, created, err := ownca.EnsureCA(ctx, c.SSM, o.Name)
		if err != nil {
			return nil, err
		}
		if created {
			say("created the deployment's own CA: `outgate ca --name %s --out ca.pem` writes the certificate callers trust", o.Name)
		}
	}

	bucket := fmt.Sprintf("outgate-%s-%s", account, c.Region)
	if !o.DryRun {
		if err := stageBucket(ctx, c.S3, bucket, c.Region); err != nil {
			return nil, err
		}
		if _, err := c.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(bin.Key(o.Name)), Body: strings.NewReader(string(bin.Data))}); err != nil {
			return nil, awserr.Explain("uploading the instances' binary (s3:PutObject)", err)
		}
		say("staged the instances' binary in s3://%s/%s (sha256 %s)", bucket, bin.Key(o.Name), bin.SHA256())
		if _, err := c.SSM.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String(deployedconfig.Parameter(o.Name)), Value: aws.String(string(o.ConfigYAML)),
			Type: ssmtypes.ParameterTypeSecureString, Overwrite: aws.Bool(true), Description: aws.String("outgate gateway config (only key hashes)")}); err != nil {
			return nil, awserr.Explain("storing the config (ssm:PutParameter)", err)
		}
	}
	ips = ips[:min(len(ips), t.AZs)]
	if t.VPCID != "" && !o.DryRun {
		// The subnets exist already: tag the IPs now, so an instance finds
		// its IP as soon as it boots (a new VPC's are tagged after the stack).
		if ips, err = tagIPSubnets(ctx, c.EC2, o.Name, ips, t.SubnetIDs); err != nil {
			return nil, err
		}
	}
	var allocs []string
	for _, ip := range ips {
		allocs = append(allocs, ip.AllocationID)
	}
	params := map[string]string{stack.ParamCodeBucket: bucket, stack.ParamBinaryKey: bin.Key(o.Name), stack.ParamBinarySHA256: bin.SHA256(),
		stack.ParamConfig: deployedconfig.Parameter(o.Name), stack.ParamEIPs: strings.Join(allocs, ",")}
	if t.VPCID != "" {
		params[stack.ParamPublicAZs] = strings.Join(subnetAZs, ",")
	}
	params[stack.ParamCreateInstanceLogs] = "true"
	if !o.DryRun && (prev == nil || prev.Resources["InstanceLogGroup"] == "") {
		keep, err := keptInstanceLogs(ctx, c.Logs, o.Name, t.LogRetentionDays, say)
		if err != nil {
			return nil, err
		}
		if keep {
			params[stack.ParamCreateInstanceLogs] = "false"
		}
	}
	alarmNotice(t, say)
	exists := prev != nil
	cs, dry, err := proposeChangeSet(ctx, c.CloudFormation, o.Name, body, params, stack.Tags(o.Name, t), exists, o.DryRun, o.Poll, say)
	if err != nil {
		return nil, err
	}
	res := &UpResult{Stack: o.Name, IPs: ips}
	if dry {
		res.Status = "DRY_RUN"
		return res, nil
	}
	if cs == nil {
		res.NoChange = true
	} else {
		if exists && !isInstance(prev) {
			// Only now, with the change set ready: a guardian would put the
			// IPs back on the relay's ENIs, from which no instance may take
			// them, so it stops and the IPs come off the ENIs. (NAT
			// gateways free theirs when CloudFormation deletes them, and the
			// instances claim them then.)
			paused, err := handOverIPs(ctx, c, o, prev, say)
			defer func() {
				if retErr != nil {
					resumeGuardian(context.WithoutCancel(ctx), c, o.Name, paused, say)
				}
			}()
			if err != nil {
				return nil, err
			}
		}
		if _, err := c.CloudFormation.ExecuteChangeSet(ctx, &cloudformation.ExecuteChangeSetInput{StackName: aws.String(o.Name), ChangeSetName: cs.ChangeSetName}); err != nil {
			return nil, awserr.Explain("executing the change set (cloudformation:ExecuteChangeSet)", err)
		}
		if err := WaitStack(ctx, c.CloudFormation, o.Name, len(cs.Changes), o.Poll, o.Out); err != nil {
			return nil, err
		}
	}
	st, err := DescribeDeployed(ctx, c.CloudFormation, o.Name)
	if err != nil {
		return nil, err
	}
	res.Status = st.Status
	subnets := t.SubnetIDs
	if t.VPCID == "" {
		for i := 0; i < t.AZs; i++ {
			subnets = append(subnets, st.Resources[fmt.Sprintf("PublicSubnet%d", i)])
		}
	}
	if ips, err = tagIPSubnets(ctx, c.EC2, o.Name, ips, subnets); err != nil {
		return nil, err
	}
	res.IPs = ips
	res.Host = t.Instance.Domain
	if res.Host == "" && len(ips) > 0 {
		res.Host = ips[0].PublicIP
	}
	res.Attached = waitInstances(ctx, c, o, st, say)
	return res, nil
}

// tagIPSubnets gives each IP the subnet it serves (outgate:subnet): the
// instance in a subnet claims the IP tagged with it. An IP already tagged
// with one of the subnets keeps it (partners see no move); the others are
// given the subnets left, in order.
func tagIPSubnets(ctx context.Context, api EC2, name string, ips []IP, subnets []string) ([]IP, error) {
	owner := map[string]int{} // subnet -> the index of the IP that keeps it
	for i, ip := range ips {
		if _, dup := owner[ip.Subnet]; slices.Contains(subnets, ip.Subnet) && !dup {
			owner[ip.Subnet] = i
		}
	}
	var free []string
	for _, s := range subnets {
		if _, ok := owner[s]; !ok {
			free = append(free, s)
		}
	}
	for i := range ips {
		if j, ok := owner[ips[i].Subnet]; ok && j == i {
			continue
		}
		if len(free) == 0 {
			break
		}
		ips[i].Subnet, free = free[0], free[1:]
		if _, err := api.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{ips[i].AllocationID},
			Tags: []ec2types.Tag{{Key: aws.String(guardian.TagSubnet), Value: aws.String(ips[i].Subnet)}}}); err != nil {
			return nil, awserr.Explain("tagging "+ips[i].PublicIP+" for its subnet (ec2:CreateTags)", err)
		}
	}
	return ips, nil
}

// waitInstances waits (up to o.Wait) until each AZ's instance holds its
// IP, and says what it sees.
func waitInstances(ctx context.Context, c Clients, o UpOptions, st *Deployed, say func(string, ...any)) bool {
	if o.Wait <= 0 {
		return false
	}
	fc := fleet.Clients{AutoScaling: c.AutoScaling, EC2: c.Fleet, CloudWatch: c.CloudWatch}
	deadline := time.Now().Add(o.Wait)
	for {
		gs, err := fleet.Read(ctx, fc, o.Name, instanceGroups(st))
		held := err == nil && len(gs) > 0
		for _, g := range gs {
			if len(g.Instances) == 0 || g.Instances[0].IP == "" || g.Instances[0].IP != g.PoolIP {
				held = false
			}
		}
		if held {
			say("every AZ's instance holds its IP")
			return true
		}
		if time.Now().After(deadline) {
			say("the instances do not all hold their IPs yet (a new instance takes a few minutes to boot, claim its IP and verify it): `outgate status --name %s`", o.Name)
			return false
		}
		if ctxutil.Sleep(ctx, o.Poll) != nil {
			return false
		}
	}
}

// InstanceAccess is what verify needs to call an instance-mode deployment
// as its users do.
type InstanceAccess struct {
	Domain   string // "" with the deployment's own CA
	CAPEM    []byte // the own CA's certificate (no domain)
	CheckURL string // the deployed config's egress_check_url
}

// ReadInstanceAccess reads the domain (a stack parameter), the own CA's
// certificate (SSM /outgate/NAME/ca/cert) and the deployed config's
// egress_check_url.
func ReadInstanceAccess(ctx context.Context, c Clients, name string) (*InstanceAccess, error) {
	st, err := DescribeDeployed(ctx, c.CloudFormation, name)
	if err != nil {
		return nil, err
	}
	if !isInstance(st) {
		return nil, fmt.Errorf("deployment %s is not in instance mode", name)
	}
	a := &InstanceAccess{Domain: st.Parameters[stack.ParamDomain], CheckURL: config.DefaultEgressCheckURL}
	if a.Domain == "" {
		out, err := c.SSM.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/outgate/" + name + "/ca/cert")})
		if err != nil {
			return nil, awserr.Explain("reading the deployment's CA certificate (ssm:GetParameter)", err)
		}
		a.CAPEM = []byte(aws.ToString(out.Parameter.Value))
	}
	out, err := c.SSM.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(deployedconfig.Parameter(name)), WithDecryption: aws.Bool(true)})
	if err != nil {
		return nil, awserr.Explain("reading the deployed config (ssm:GetParameter)", err)
	}
	if cfg, err := config.Parse([]byte(aws.ToString(out.Parameter.Value)), deployedconfig.Parameter(name)); err == nil && cfg.EgressCheckURL != "" {
		a.CheckURL = cfg.EgressCheckURL
	}
	return a, nil
}

// instanceReleaseWait bounds how long a switch away from instance mode
// waits for the groups' instances to terminate.
var instanceReleaseWait = 10 * time.Minute

// releaseInstances empties an instance-mode deployment's groups before a
// switch to eni or nat runs, so its IPs leave the instances explicitly
// (a NAT gateway cannot take an IP an instance holds, and the guardian
// takes none that is in use).
func releaseInstances(ctx context.Context, c Clients, o UpOptions, groups []string, say func(string, ...any)) error {
	say("switching instance -> %s: stopping the instances and freeing the IPs; egress pauses until the new holders have them", o.Template.Mode)
	fc := fleet.Clients{AutoScaling: c.AutoScaling, EC2: c.Fleet, CloudWatch: c.CloudWatch}
	if err := fleet.Release(ctx, fc, o.Name, groups, instanceReleaseWait, o.Poll); err != nil {
		return err
	}
	say("  the instances are gone and the IPs free")
	return nil
}

// restoreInstances undoes releaseInstances after a failed switch: each
// group gets its one instance back, which claims its IP again.
func restoreInstances(ctx context.Context, c Clients, name string, groups []string, say func(string, ...any)) {
	fc := fleet.Clients{AutoScaling: c.AutoScaling, EC2: c.Fleet, CloudWatch: c.CloudWatch}
	if err := fleet.Restore(ctx, fc, groups); err != nil {
		say("the switch failed and the instances could not be restored (%v): set each group of %s back to 1 instance (aws autoscaling update-auto-scaling-group --min-size 1 --max-size 1 --desired-capacity 1)", err, name)
		return
	}
	say("the switch failed: each AZ's group launches its instance again, which claims the IP back")
}

// keptInstanceLogs reports whether the instances' log group exists outside
// the stack (kept when an earlier stack of this name was deleted, or by a
// switch to another mode): the stack then uses it, with the retention
// asked for, since creating it again would fail.
func keptInstanceLogs(ctx context.Context, api Logs, name string, days int, say func(string, ...any)) (bool, error) {
	group := stack.InstanceLogGroup(name)
	out, err := api.DescribeLogGroups(ctx, &cloudwatchlogs.DescribeLogGroupsInput{LogGroupNamePrefix: aws.String(group), Limit: aws.Int32(5)})
	if err != nil {
		return false, awserr.Explain("looking for the instances' log group (logs:DescribeLogGroups)", err)
	}
	for _, g := range out.LogGroups {
		if aws.ToString(g.LogGroupName) != group {
			continue
		}
		if _, err := api.PutRetentionPolicy(ctx, &cloudwatchlogs.PutRetentionPolicyInput{LogGroupName: aws.String(group), RetentionInDays: aws.Int32(int32(days))}); err != nil {
			return false, awserr.Explain("setting the retention of "+group+" (logs:PutRetentionPolicy)", err)
		}
		say("log group %s exists (kept from an earlier deployment): logging there, kept %d days", group, days)
		return true, nil
	}
	return false, nil
}
