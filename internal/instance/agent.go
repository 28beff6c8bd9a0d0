package instance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/outgate/outgate/internal/claim"
	"github.com/outgate/outgate/internal/config"
	"github.com/outgate/outgate/internal/emf"
	"github.com/outgate/outgate/internal/imds"
	"github.com/outgate/outgate/internal/secrets"
	"github.com/outgate/outgate/internal/server"
)

// Deps are what the command gives the agent, and the seams other parts of
// instance mode plug into.
type Deps struct {
	// AWS is the SDK config (default chain: the instance role); its
	// region is Settings.Region. AWS_ENDPOINT_URL and
	// AWS_EC2_METADATA_SERVICE_ENDPOINT are the SDK's own.
	AWS aws.Config
	// LogOutput receives the agent's and the gateway's log and audit
	// lines and the EMF metric lines (default stderr; the CloudWatch Logs
	// shipper of internal/cwlogs in production).
	LogOutput io.Writer
	// Server, if set, completes the gateway's options once the IP is
	// claimed and the config read, before the gateway starts: the seam
	// where the instance's TLS config (server.Options.TLS: ACME for
	// Settings.Domain, or a leaf for the deployment's IPs from its own CA)
	// is plugged in. An error stops the agent (systemd starts it again).
	// The agent's own options (config path, gate, override, reload, log)
	// are set after it and win, except that a Gate it sets is kept as a
	// further condition after the egress's (the certificate: /readyz is
	// not 200 while no handshake can succeed).
	// ips are the deployment's IPs, read once for both the seam (the own
	// CA's certificate names them) and the agent (Options.Reach).
	Server func(ctx context.Context, f imds.Facts, ip claim.Claimed, ips []netip.Addr, o *server.Options) error
	// Checks and Polls tick the egress check and the config poll (nil:
	// every minute, and every ConfigPollSeconds). A tick's time is the
	// "now" the replace rule judges by.
	Checks <-chan time.Time
	Polls  <-chan time.Time
	// Now is the boot time's clock (default time.Now).
	Now func() time.Time
}

// ConfigFile is the config as last read from SSM, under StateDir.
const ConfigFile = "outgate.yaml"

type agent struct {
	s     Settings
	d     Deps
	out   *lines // the one output every line goes through
	log   *slog.Logger
	emf   *emf.Writer
	facts imds.Facts
	ec2   claim.EC2
	as    claim.AutoScaling
	ssm   SSM
	path  string
	// gate is the reason the gateway may not serve (nil: open).
	gate   atomic.Pointer[error]
	health *claim.Health
	// current is the config's text as last applied.
	current []byte
	// reported: SetInstanceHealth Unhealthy was sent (once).
	reported bool
	// verdict judges the egress; one across checks, so it remembers the
	// deployment's IPs through an EC2 API blip.
	verdict *claim.Egress
	// moved says the instance's public IPv4 (its metadata) is not the
	// claimed IP now; nil: never asked.
	moved func(context.Context) bool
	// endTunnels closes the gateway's open CONNECT tunnels
	// (server.Running.EndTunnels).
	endTunnels func() int
	// launched is the public IPv4 the instance had before its claim
	// (invalid when it had none or IMDS did not say): see claim.Egress.
	launched netip.Addr
}

// Run boots the instance (IMDS, claim, config), serves with the gate
// closed, opens it once the egress IP is one of the deployment's, and
// keeps checking the egress and polling the config until ctx ends.
func Run(ctx context.Context, s Settings, d Deps) error {
	if err := s.Validate(); err != nil {
		return err
	}
	if d.LogOutput == nil {
		d.LogOutput = os.Stderr
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	d.AWS.Region = s.Region
	out := &lines{out: d.LogOutput}
	a := &agent{s: s, d: d, out: out,
		log:    slog.New(slog.NewJSONHandler(out.writer(), nil)).With("component", "instance"),
		emf:    emf.New(out.writer()),
		ec2:    ec2.NewFromConfig(d.AWS),
		as:     autoscaling.NewFromConfig(d.AWS),
		ssm:    ssm.NewFromConfig(d.AWS),
		path:   filepath.Join(s.StateDir, ConfigFile),
		health: claim.NewHealth(d.Now()),
	}
	a.close(errors.New("the egress IP has not been checked since boot"))

	md := imds.New(d.AWS)
	facts, err := md.Facts(ctx)
	if err != nil {
		return err
	}
	if facts.Region != s.Region {
		return fmt.Errorf("the instance is in %s but its settings say region %s: the user data was written for another region", facts.Region, s.Region)
	}
	a.facts = facts
	a.log.Info("instance booting", "instance_id", facts.InstanceID, "az", facts.AZ, "subnet", facts.SubnetID, "deployment", s.Deployment)

	// The address from before the claim, read before the claim replaces
	// it: the first egress checks may still see it (claim.Egress.Launched).
	if a.launched, err = md.PublicIPv4(ctx); err != nil {
		a.log.Info("no public IPv4 address before the claim", "detail", err.Error())
	}

	// The claim gets the boot grace: an instance that cannot claim its IP
	// by then cannot serve, and the group replaces it.
	cl := &claim.Claimer{EC2: a.ec2, Deployment: s.Deployment, InstanceID: facts.InstanceID, SubnetID: facts.SubnetID, Log: a.log}
	cctx, cancel := context.WithTimeout(ctx, a.health.BootGrace)
	got, err := cl.Claim(cctx)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			a.replace(ctx, err.Error())
		}
		return err
	}
	a.log.Info("serving from the pool IP once the egress check agrees", "public_ip", got.PublicIP)
	// While serving, the metadata's public-ipv4 is read at every fast
	// tick: once it is not the claimed IP (the association was undone or
	// moved), the egress is checked at once instead of up to a minute
	// later, and the check closes the gate.
	claimed, _ := netip.ParseAddr(got.PublicIP)
	a.moved = func(ctx context.Context) bool {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		ip, err := md.PublicIPv4(ctx)
		return ctx.Err() == nil && (err != nil || ip != claimed)
	}

	if err := a.firstConfig(ctx); err != nil {
		return err
	}
	return a.serve(ctx, got)
}

func (a *agent) close(reason error) { a.gate.Store(&reason) }
func (a *agent) gateErr() error     { return *a.gate.Load() }

// override sets the listeners from the settings, whatever the config says
// (it is the relay's config too, where listeners and their certificate
// files mean nothing): relay and proxy share Settings.Listen, and its TLS
// comes from server.Options.TLS (Deps.Server), never from files.
func (a *agent) override(cfg *config.Config) {
	cfg.Listen = a.s.Listen
	cfg.ProxyListen = a.s.Listen
	cfg.TLS, cfg.ProxyTLS = config.TLS{}, config.TLS{}
	cfg.AdminListen = a.s.AdminListen
}

// fetch reads the config parameter.
func (a *agent) fetch(ctx context.Context) ([]byte, error) {
	out, err := a.ssm.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(a.s.ConfigParameter), WithDecryption: aws.Bool(true)})
	if err != nil {
		return nil, fmt.Errorf("reading the config parameter %s: %w", a.s.ConfigParameter, err)
	}
	if out.Parameter == nil {
		return nil, fmt.Errorf("reading the config parameter %s: no value", a.s.ConfigParameter)
	}
	return []byte(aws.ToString(out.Parameter.Value)), nil
}

// check validates a config text as the gateway will read it (with the
// listeners overridden); secrets are resolved by the gateway itself, which
// refuses a reload whose secrets cannot be read.
func (a *agent) check(data []byte) error {
	_, err := config.ParseWith(data, a.path, a.override)
	return err
}

// write replaces the config file atomically (0600: it holds key hashes).
func (a *agent) write(data []byte) error {
	if err := os.MkdirAll(a.s.StateDir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(a.s.StateDir, ".outgate-*.yaml")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), a.path)
}

// firstConfig waits for a valid config: until there is one the gateway
// cannot start, and an instance that never gets one is replaced after the
// boot grace like any other that cannot serve.
func (a *agent) firstConfig(ctx context.Context) error {
	for {
		data, err := a.fetch(ctx)
		if err == nil {
			err = a.check(data)
		}
		if err == nil {
			if err := a.write(data); err != nil {
				return fmt.Errorf("writing the config to %s: %w", a.path, err)
			}
			a.current = data
			return nil
		}
		a.log.Error("no usable config yet; the gateway does not start until there is one", "parameter", a.s.ConfigParameter, "error", err.Error())
		select {
		case <-ctx.Done():
			return ctx.Err()
		case now := <-a.polls():
			if a.health.Observe(now, false) {
				a.replace(ctx, "no usable config since boot")
			}
		}
	}
}

func tick(d time.Duration) <-chan time.Time { return time.NewTicker(d).C }

func (a *agent) polls() <-chan time.Time {
	if a.d.Polls == nil {
		every := time.Duration(a.s.ConfigPollSeconds) * time.Second
		if every <= 0 {
			every = time.Minute
		}
		a.d.Polls = tick(every)
	}
	return a.d.Polls
}

// Egress check intervals: every minute on a serving instance, and every
// few seconds while the gate is closed, since an Elastic IP association
// reaches the network some seconds after AssociateAddress answers (AWS
// states no bound) and a booting or replaced instance should serve as soon
// as it does, not a minute later.
const (
	checkServing = time.Minute
	checkWaiting = 5 * time.Second
)

func (a *agent) checks(ctx context.Context) <-chan time.Time {
	if a.d.Checks == nil {
		a.d.Checks = a.paced(ctx, tick(checkWaiting))
	}
	return a.d.Checks
}

// paced passes on a tick of the fast ticker while the gate is closed, and
// one a minute while it is open, unless the metadata says the public IP
// has changed (moved), which makes the tick a check at once.
func (a *agent) paced(ctx context.Context, fast <-chan time.Time) <-chan time.Time {
	out := make(chan time.Time)
	go func() {
		var last time.Time
		for {
			var now time.Time
			select {
			case <-ctx.Done():
				return
			case now = <-fast:
			}
			if a.gateErr() == nil && now.Sub(last) < checkServing && (a.moved == nil || !a.moved(ctx)) {
				continue
			}
			last = now
			select {
			case <-ctx.Done():
				return
			case out <- now:
			}
		}
	}()
	return out
}

// serve runs the gateway with the gate and the agent's loops beside it.
func (a *agent) serve(ctx context.Context, ip claim.Claimed) error {
	reload := make(chan struct{}, 1)
	started := make(chan server.Running, 1)
	deployment, err := claim.DeploymentIPs(ctx, a.ec2, a.s.Deployment)
	if err != nil {
		return err
	}
	ips := make([]netip.Addr, 0, len(deployment))
	for ip := range deployment {
		ips = append(ips, ip)
	}
	slices.SortFunc(ips, func(a, b netip.Addr) int { return a.Compare(b) })
	var o server.Options
	if a.d.Server != nil {
		if err := a.d.Server(ctx, a.facts, ip, ips, &o); err != nil {
			return fmt.Errorf("preparing the gateway: %w", err)
		}
	}
	gate := a.gateErr
	if more := o.Gate; more != nil {
		gate = func() error {
			if err := a.gateErr(); err != nil {
				return err
			}
			return more()
		}
	}
	o2 := server.Options{
		ConfigPath: a.path,
		LogOutput:  a.out.writer(),
		Reload:     reload,
		Secrets:    secrets.AWS(func(context.Context) (aws.Config, error) { return a.d.AWS, nil }),
		Gate:       gate,
		IPv4Only:   true, // the deployment's IPs are IPv4
		Override:   a.override,
		Started:    func(r server.Running) { started <- r },
	}
	o.ConfigPath, o.LogOutput, o.Reload, o.Secrets, o.Gate, o.Override, o.Started, o.IPv4Only =
		o2.ConfigPath, o2.LogOutput, o2.Reload, o2.Secrets, o2.Gate, o2.Override, o2.Started, o2.IPv4Only
	reach, err := reach(ips)
	if err != nil {
		return err
	}
	o.Reach = reach
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- server.Run(sctx, o) }()
	var r server.Running
	select {
	case r = <-started:
	case err := <-done:
		return err
	}
	a.verdict = &claim.Egress{EC2: a.ec2, Deployment: a.s.Deployment, EgressIP: r.EgressIP, Launched: a.launched}
	a.endTunnels = r.EndTunnels
	a.egress(ctx, a.d.Now())
	for {
		select {
		case <-ctx.Done():
			return <-done
		case err := <-done:
			return err
		case now := <-a.checks(ctx):
			a.egress(ctx, now)
		case <-a.polls():
			if a.poll(ctx) {
				select {
				case reload <- struct{}{}:
				default:
				}
			}
		}
	}
}

// reach is where this machine's listener on s.Listen (":443") is reached:
// its interface addresses and the deployment's IPs (an instance reaches
// its own Elastic IP through the internet gateway, back into itself). The
// gateway refuses those on the listener's port so no request loops, and
// lets partners on port 443 everywhere else through.
func reach(deployment []netip.Addr) ([]netip.Addr, error) {
	ifaddrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("listing this machine's addresses: %w", err)
	}
	var out []netip.Addr
	for _, ia := range ifaddrs {
		if n, ok := ia.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok && !ip.Unmap().IsUnspecified() {
				out = append(out, ip.Unmap())
			}
		}
	}
	return append(out, deployment...), nil
}

// egress runs one check: the gate follows the verdict at once, the
// metrics are written, and an instance unready for too long is replaced.
func (a *agent) egress(ctx context.Context, now time.Time) {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	v := a.verdict.Check(cctx)
	was := a.gateErr() == nil
	if v.Ready {
		var open error
		a.gate.Store(&open)
	} else {
		a.close(errors.New(v.Reason))
	}
	switch {
	case v.Ready && !was:
		a.log.Info("egress verified; serving", "egress_ip", v.EgressIP.String())
	case !v.Ready && v.Wrong:
		// A tunnel opened before is a request the gate can no longer
		// refuse: end it, or its bytes go on leaving from this address.
		// (Only for a wrong IP: a check that merely failed says nothing
		// about where the tunnels' bytes leave from.)
		ended := 0
		if a.endTunnels != nil {
			ended = a.endTunnels()
		}
		a.log.Error("calls leave from a wrong IP; refusing every request", "egress_ip", v.EgressIP.String(), "reason", v.Reason, "tunnels_closed", ended)
	case !v.Ready:
		a.log.Warn("egress not verified; refusing every request", "reason", v.Reason)
	}
	ready, wrong := 0.0, 0.0
	if v.Ready {
		ready = 1
	}
	if v.Wrong {
		wrong = 1
	}
	a.emf.Emit(map[string]string{"Deployment": a.s.Deployment, "AZ": a.facts.AZ}, emf.Set{
		Dimensions: [][]string{{"Deployment", "AZ"}},
		Metrics:    []emf.Metric{{Name: "InstanceReady", Unit: "None", Value: ready}, {Name: "EgressWrongIP", Unit: "Count", Value: wrong}},
	})
	if a.health.Observe(now, v.Ready) {
		a.replace(ctx, v.Reason)
	}
}

// poll reads the config parameter and writes a changed, valid one for the
// gateway to reload; an invalid one is logged and the old one kept.
func (a *agent) poll(ctx context.Context) (changed bool) {
	data, err := a.fetch(ctx)
	if err != nil {
		a.log.Warn("config poll failed; the current config keeps serving", "error", err.Error())
		return false
	}
	if bytes.Equal(data, a.current) {
		return false
	}
	if err := a.check(data); err != nil {
		a.log.Error("the new config is invalid; the current one keeps serving", "parameter", a.s.ConfigParameter, "error", err.Error())
		a.current = data // logged once, not every minute
		return false
	}
	if err := a.write(data); err != nil {
		a.log.Error("writing the new config failed; the current one keeps serving", "error", err.Error())
		return false
	}
	a.current = data
	a.log.Info("config parameter changed; reloading", "parameter", a.s.ConfigParameter)
	return true
}

// replace asks the Auto Scaling group to replace this instance (once).
func (a *agent) replace(ctx context.Context, reason string) {
	if a.reported {
		return
	}
	if err := claim.ReportUnhealthy(ctx, a.as, a.facts.InstanceID); err != nil {
		a.log.Error("could not report this instance unhealthy", "error", err.Error())
		return
	}
	a.reported = true
	a.log.Error("reported this instance unhealthy to its Auto Scaling group, which replaces it", "reason", reason)
}
