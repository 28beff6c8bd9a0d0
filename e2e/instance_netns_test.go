package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"golang.org/x/net/http/httpproxy"

	"github.com/outgate/outgate/internal/guardian"
	"github.com/outgate/outgate/internal/instance"
	"github.com/outgate/outgate/internal/keys"
	"github.com/outgate/outgate/internal/ownca"
	"github.com/outgate/outgate/internal/testutil"
)

const nsDeployment = "ogns"

// sourceLog records every source address a server accepted a connection from.
type sourceLog struct {
	mu   sync.Mutex
	seen map[string]int
}

func (s *sourceLog) add(addr net.Addr) {
	host, _, _ := net.SplitHostPort(addr.String())
	s.mu.Lock()
	if s.seen == nil {
		s.seen = map[string]int{}
	}
	s.seen[host]++
	s.mu.Unlock()
}

func (s *sourceLog) addrs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for a, n := range s.seen {
		out = append(out, fmt.Sprintf("%s (%d connections)", a, n))
	}
	sort.Strings(out)
	return out
}

type recordingListener struct {
	net.Listener
	log *sourceLog
}

func (l recordingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.log.add(c.RemoteAddr())
	}
	return c, err
}

// instanceWorld is moto's side of the deployment: a VPC, the pool IPs, the
// Auto Scaling group of subnet A, and the SSM parameters.
type instanceWorld struct {
	ec2     *ec2.Client
	asg     *autoscaling.Client
	subnetA string
	group   string
}

func buildWorld(t *testing.T, cfg aws.Config, configYAML string) *instanceWorld {
	t.Helper()
	ctx := context.Background()
	w := &instanceWorld{ec2: ec2.NewFromConfig(cfg), asg: autoscaling.NewFromConfig(cfg), group: nsDeployment + "-a"}
	vpc, err := w.ec2.CreateVpc(ctx, &ec2.CreateVpcInput{CidrBlock: aws.String("198.51.100.0/24")})
	if err != nil {
		t.Fatalf("CreateVpc: %v", err)
	}
	subnets := map[string]string{}
	for _, s := range []struct{ cidr, az string }{{"198.51.100.0/25", "us-east-1a"}, {"198.51.100.128/25", "us-east-1b"}} {
		out, err := w.ec2.CreateSubnet(ctx, &ec2.CreateSubnetInput{VpcId: vpc.Vpc.VpcId, CidrBlock: aws.String(s.cidr), AvailabilityZone: aws.String(s.az)})
		if err != nil {
			t.Fatalf("CreateSubnet: %v", err)
		}
		subnets[s.az] = aws.ToString(out.Subnet.SubnetId)
	}
	w.subnetA = subnets["us-east-1a"]
	// The pool: one IP per subnet, and another deployment's IP that names
	// subnet A too (never to be taken). AllocateAddress with Address is
	// how a previously released address (or BYOIP) comes back; moto
	// honours it, so the pool holds the addresses the router knows.
	for _, a := range []struct{ ip, deployment, subnet string }{
		{eipA, nsDeployment, w.subnetA}, {eipB, nsDeployment, subnets["us-east-1b"]}, {eipOther, "someone-else", w.subnetA},
	} {
		if _, err := w.ec2.AllocateAddress(ctx, &ec2.AllocateAddressInput{Domain: ec2types.DomainTypeVpc, Address: aws.String(a.ip),
			TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeElasticIp, Tags: []ec2types.Tag{
				{Key: aws.String(guardian.TagDeployment), Value: aws.String(a.deployment)},
				{Key: aws.String(guardian.TagSubnet), Value: aws.String(a.subnet)}}}}}); err != nil {
			t.Fatalf("AllocateAddress %s: %v", a.ip, err)
		}
	}
	lt, err := w.ec2.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{LaunchTemplateName: aws.String(nsDeployment),
		LaunchTemplateData: &ec2types.RequestLaunchTemplateData{ImageId: aws.String("ami-12c6146b"), InstanceType: ec2types.InstanceTypeT4gNano}})
	if err != nil {
		t.Fatalf("CreateLaunchTemplate: %v", err)
	}
	if _, err := w.asg.CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{
		AutoScalingGroupName: aws.String(w.group), MinSize: aws.Int32(1), MaxSize: aws.Int32(1), DesiredCapacity: aws.Int32(1),
		VPCZoneIdentifier: aws.String(w.subnetA),
		LaunchTemplate:    &astypes.LaunchTemplateSpecification{LaunchTemplateId: lt.LaunchTemplate.LaunchTemplateId, Version: aws.String("$Latest")},
		Tags: []astypes.Tag{{Key: aws.String(guardian.TagDeployment), Value: aws.String(nsDeployment), PropagateAtLaunch: aws.Bool(true),
			ResourceId: aws.String(w.group), ResourceType: aws.String("auto-scaling-group")}},
	}); err != nil {
		t.Fatalf("CreateAutoScalingGroup: %v", err)
	}
	api := ssm.NewFromConfig(cfg)
	for _, p := range []struct {
		name, value string
		typ         ssmtypes.ParameterType
	}{
		{"/outgate/" + nsDeployment + "/config", configYAML, ssmtypes.ParameterTypeSecureString},
	} {
		if _, err := api.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String(p.name), Value: aws.String(p.value), Type: p.typ}); err != nil {
			t.Fatalf("PutParameter %s: %v", p.name, err)
		}
	}
	// The deployment's own CA, as `up` makes it without a domain.
	if _, _, err := ownca.EnsureCA(ctx, api, nsDeployment); err != nil {
		t.Fatalf("EnsureCA: %v", err)
	}
	// The stack makes the log group; the instance writes its stream.
	if _, err := cloudwatchlogs.NewFromConfig(cfg).CreateLogGroup(ctx, &cloudwatchlogs.CreateLogGroupInput{
		LogGroupName: aws.String("/outgate/" + nsDeployment + "/instance")}); err != nil {
		t.Fatalf("CreateLogGroup: %v", err)
	}
	return w
}

// groupInstance waits until the Auto Scaling group has one instance other
// than not, and returns it.
func (w *instanceWorld) groupInstance(t *testing.T, not string) *ec2Instance {
	t.Helper()
	var id string
	eventually(t, "the Auto Scaling group has an instance other than "+not, 60*time.Second, func() bool {
		out, err := w.asg.DescribeAutoScalingGroups(context.Background(), &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{w.group}})
		if err != nil || len(out.AutoScalingGroups) != 1 {
			return false
		}
		for _, i := range out.AutoScalingGroups[0].Instances {
			if aws.ToString(i.InstanceId) != not {
				id = aws.ToString(i.InstanceId)
				return true
			}
		}
		return false
	})
	inst := describeInstance(t, w.ec2, id)
	if inst.Subnet != w.subnetA || inst.AZ != "us-east-1a" {
		t.Fatalf("instance %s is in %s/%s, want subnet A %s", id, inst.Subnet, inst.AZ, w.subnetA)
	}
	return inst
}

// addressesOf lists the public IPs moto has associated with instance id.
func (w *instanceWorld) addressesOf(t *testing.T, id string) []string {
	t.Helper()
	out, err := w.ec2.DescribeAddresses(context.Background(), &ec2.DescribeAddressesInput{})
	if err != nil {
		t.Fatalf("DescribeAddresses: %v", err)
	}
	var ips []string
	for _, a := range out.Addresses {
		if aws.ToString(a.InstanceId) == id {
			ips = append(ips, aws.ToString(a.PublicIp))
		}
	}
	return ips
}

// runningInstance is one `outgate instance run` in its namespace.
type runningInstance struct {
	*ec2Instance
	ns     string
	cmd    *exec.Cmd
	logs   *testutil.SafeBuffer
	exited <-chan struct{}
}

// alive fails the test at once if the agent has exited: it runs until
// stopped, and systemd would only restart it.
func (ri *runningInstance) alive(t *testing.T) {
	t.Helper()
	select {
	case <-ri.exited:
		t.Fatalf("outgate instance run on %s exited (%v)", ri.ID, ri.cmd.ProcessState)
	default:
	}
}

// bootInstance gives a moto instance its machine: a namespace with its
// private address, its IMDS, its own state directory and settings file
// (as its user data writes them), and the built binary run as the systemd
// unit runs it. Only AWS_ENDPOINT_URL is test-specific; credentials,
// instance id, AZ and subnet come from IMDS.
func bootInstance(t *testing.T, e *eipNet, inst *ec2Instance, settings instance.Settings) *runningInstance {
	t.Helper()
	ns := e.addInstanceNS(inst.PrivateIP)
	e.imdsMock(ns, inst)
	home := t.TempDir()
	settings.StateDir = filepath.Join(home, "state")
	if err := settings.Validate(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(home, "instance.json")
	b, _ := json.Marshal(settings)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd, logs, exited := e.start(ns, []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home,
		"AWS_ENDPOINT_URL=http://" + net.JoinHostPort(awsAPI, awsPort)},
		binary(t), "instance", "run", "--settings", path)
	return &runningInstance{ec2Instance: inst, ns: ns, cmd: cmd, logs: logs, exited: exited}
}

// readyz is the instance's /readyz status (0 when it does not answer).
func (ri *runningInstance) readyz() int {
	c := &http.Client{Transport: &http.Transport{DialContext: nsDial(ri.ns), DisableKeepAlives: true}, Timeout: 5 * time.Second}
	resp, err := c.Get("http://127.0.0.1:9901/readyz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestInstanceModeAcrossNamespaces is issue 13's end-to-end test of
// instance mode: the built binary as an EC2 instance of an Auto Scaling
// group claims its subnet's Elastic IP in moto, proves its egress IP
// before it serves, serves HTTPS proxy and relay clients on :443 with a
// certificate from the deployment's own CA, is killed, and its
// replacement claims the same IP; the partner, which accepts only that IP,
// never sees another source address.
func TestInstanceModeAcrossNamespaces(t *testing.T) {
	e := newEIPNet(t)
	tmp := t.TempDir()

	// The partner: HTTPS, allowlisting the Elastic IP, recording every
	// source address it accepts a connection from.
	partnerCA := newTestCA(t, "partner CA")
	pCert, pKey := partnerCA.leaf(t, inetPartner)
	pair, err := tls.X509KeyPair(pCert, pKey)
	if err != nil {
		t.Fatal(err)
	}
	partnerSeen := &sourceLog{}
	partner := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		if host != eipA {
			http.Error(w, "source "+host+" is not allowlisted", http.StatusForbidden)
			return
		}
		fmt.Fprintf(w, "payment accepted from %s for %s", host, r.URL.Path)
	}), TLSConfig: &tls.Config{Certificates: []tls.Certificate{pair}},
		ErrorLog: log.New(io.Discard, "", 0)} // handshakes the test cuts short
	go partner.ServeTLS(recordingListener{listenIn(t, e.inet["partner"], inetPartner+":443"), partnerSeen}, "", "")
	t.Cleanup(func() { partner.Close() })
	// The egress check service (checkip.amazonaws.com's role): the
	// caller's address as plain text, one request per connection so an
	// answer always reflects the NAT of that moment.
	checkSeen := &sourceLog{}
	checkip := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		w.Header().Set("Connection", "close")
		io.WriteString(w, host+"\n")
	})}
	go checkip.Serve(recordingListener{listenIn(t, e.inet["partner"], inetCheckIP+":80"), checkSeen})
	t.Cleanup(func() { checkip.Close() })

	// The gateway config, in SSM as `up` puts it there; the instance
	// overrides its listeners.
	partnerCAFile := filepath.Join(tmp, "partner-ca.pem")
	os.WriteFile(partnerCAFile, partnerCA.CertPEM, 0o644)
	key, hash := keys.New()
	configYAML := fmt.Sprintf(`
egress_check_url: http://%[1]s/
upstreams:
  partner: {url: "https://%[2]s"}
clients:
  - name: billing
    key_sha256: %[3]s
    upstreams: [partner]
    hosts: ["%[2]s:443"]
network:
  allow_cidrs: [%[2]s/32, %[1]s/32]   # TEST-NET is blocked by default
  ca_files: [%[4]s]
`, inetCheckIP, inetPartner, hash, partnerCAFile)
	awsCfg := e.startMoto()
	world := buildWorld(t, awsCfg, configYAML)
	router := e.startRouter(world.ec2)

	// What the user data writes, less the state directory (bootInstance
	// gives each instance its own, as each machine has).
	settings := instance.Settings{
		Deployment:      nsDeployment,
		Region:          "us-east-1",
		ConfigParameter: "/outgate/" + nsDeployment + "/config",
		Listen:          ":443",
		AdminListen:     "127.0.0.1:9901",
		CACertParameter: ownca.CertParameter(nsDeployment),
		CAKeyParameter:  ownca.KeyParameter(nsDeployment),
		LogGroup:        "/outgate/" + nsDeployment + "/instance",
	}
	// What every client trusts: the partner's CA (end-to-end TLS through
	// CONNECT) and the deployment's CA (the proxy and relay listener).
	// The deployment's CA file comes from `outgate ca`, as a user gets it.
	ownCAFile := filepath.Join(tmp, "outgate-ca.pem")
	caCmd := exec.Command(e.ip, "netns", "exec", e.aws, binary(t), "ca", "--name", nsDeployment, "--out", ownCAFile)
	caCmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + tmp, "AWS_ENDPOINT_URL=http://" + net.JoinHostPort(awsAPI, awsPort),
		"AWS_REGION=us-east-1", "AWS_ACCESS_KEY_ID=testing", "AWS_SECRET_ACCESS_KEY=testing", "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null"}
	if out, err := caCmd.CombinedOutput(); err != nil {
		t.Fatalf("outgate ca: %v\n%s", err, out)
	}
	ownCAPEM, err := os.ReadFile(ownCAFile)
	if err != nil {
		t.Fatal(err)
	}
	ownCA := x509.NewCertPool()
	if !ownCA.AppendCertsFromPEM(ownCAPEM) {
		t.Fatalf("outgate ca wrote no certificate: %q", ownCAPEM)
	}
	bundle := filepath.Join(tmp, "bundle.pem")
	os.WriteFile(bundle, append(append([]byte{}, partnerCA.CertPEM...), ownCAPEM...), 0o644)
	proxyURL := fmt.Sprintf("https://billing:%s@%s:443", key, eipA)
	trust := x509.NewCertPool()
	trust.AppendCertsFromPEM(partnerCA.CertPEM)
	trust.AppendCertsFromPEM(ownCAPEM)

	// Until the egress check passes: the instance holds the IP in moto but
	// the router has not applied it yet (AWS takes seconds), so its traffic
	// would leave from its own address. /readyz is 503, and proxy and relay
	// requests, reaching the instance at its own address, are refused with
	// egress_unverified before anything leaves.
	notReady := func(ri *runningInstance) {
		t.Helper()
		eventually(t, ri.ID+" listens on :443 and refuses with egress_unverified", 60*time.Second, func() bool {
			ri.alive(t)
			code, errCode, _ := connectVia(e.inet["client"], ri.PrivateIP, ownCA, key)
			if code == http.StatusOK {
				t.Fatalf("%s opened a tunnel to the partner before its egress check passed", ri.ID)
			}
			return code == http.StatusServiceUnavailable && errCode == "egress_unverified"
		})
		if got := ri.readyz(); got != http.StatusServiceUnavailable {
			t.Errorf("%s /readyz before the egress check passed: %d, want 503", ri.ID, got)
		}
		code, errCode, err := relayVia(e.inet["client"], ri.PrivateIP, ownCA, key)
		if code != http.StatusServiceUnavailable || errCode != "egress_unverified" {
			t.Errorf("%s relay before the egress check passed: %d %q %v, want 503 egress_unverified", ri.ID, code, errCode, err)
		}
	}

	goClient := func() *http.Client {
		pf := (&httpproxy.Config{HTTPSProxy: proxyURL}).ProxyFunc()
		tr := &http.Transport{DialContext: nsDial(e.inet["client"]), TLSClientConfig: &tls.Config{RootCAs: trust},
			Proxy: func(r *http.Request) (*url.URL, error) { return pf(r.URL) }}
		return &http.Client{Transport: tr, Timeout: 20 * time.Second}
	}
	want := func(path string) string { return "payment accepted from " + eipA + " for " + path }
	allClients := func(round string) {
		t.Helper()
		env := append(os.Environ(), "HTTPS_PROXY="+proxyURL, "REQUESTS_CA_BUNDLE="+bundle, "NO_PROXY=")
		inClient := func(name string, args ...string) (string, error) {
			cmd := exec.Command(e.ip, append([]string{"netns", "exec", e.inet["client"], name}, args...)...)
			cmd.Env = env
			out, err := cmd.Output() // stdout: Node warns on stderr about IP server names
			if ee, ok := err.(*exec.ExitError); ok {
				err = fmt.Errorf("%v\n%s", err, ee.Stderr)
			}
			return string(out), err
		}
		// curl reads HTTPS_PROXY itself.
		p := "/pay/" + round + "/curl"
		if out, err := inClient(testutil.Tool(t, "curl"), "-sS", "--max-time", "20", "--cacert", partnerCAFile, "--proxy-cacert", ownCAFile, "https://"+inetPartner+p); err != nil || out != want(p) {
			t.Errorf("curl with HTTPS_PROXY: %q, %v", out, err)
		}
		// Python requests reads HTTPS_PROXY and REQUESTS_CA_BUNDLE.
		p = "/pay/" + round + "/python"
		if out, err := inClient(testutil.Tool(t, "python3"), "-c", "import requests, sys, warnings\nwarnings.simplefilter('error')\n"+
			"r = requests.get(sys.argv[1], timeout=20)\nprint(r.status_code, r.text, end='')", "https://"+inetPartner+p); err != nil || out != "200 "+want(p) {
			t.Errorf("python requests with HTTPS_PROXY: %q, %v", out, err)
		}
		// Node undici's ProxyAgent.
		if _, err := os.Stat(filepath.Join(nodeClients, "node_modules", "undici")); err != nil {
			testutil.Unavailable(t, "undici is not installed: run npm ci --prefix testdata/clients/node")
		} else {
			p = "/pay/" + round + "/node"
			if out, err := inClient(testutil.Tool(t, "node"), filepath.Join(nodeClients, "fetch.mjs"), "https://"+inetPartner+p, proxyURL, bundle); err != nil || out != "200 "+want(p) {
				t.Errorf("node undici ProxyAgent: %q, %v", out, err)
			}
		}
		// Go, as HTTPS_PROXY configures it.
		p = "/pay/" + round + "/go"
		if resp, body := get(t, goClient(), "https://"+inetPartner+p, ""); resp.StatusCode != 200 || body != want(p) {
			t.Errorf("Go with HTTPS_PROXY: %d %q", resp.StatusCode, body)
		}
		// The relay, on the same listener (straight to it, not through
		// the proxy HTTPS_PROXY names).
		p = "/pay/" + round + "/relay"
		if out, err := inClient(testutil.Tool(t, "curl"), "-sS", "--noproxy", "*", "--max-time", "20", "--cacert", ownCAFile, "-H", "Outgate-Key: "+key,
			"https://"+eipA+"/partner"+p); err != nil || out != want(p) {
			t.Errorf("relay: %q, %v", out, err)
		}
	}
	untilServed := func(ri *runningInstance) time.Time {
		t.Helper()
		c := goClient()
		defer c.CloseIdleConnections()
		eventually(t, ri.ID+" serves through "+eipA, 3*time.Minute, func() bool {
			ri.alive(t)
			resp, err := c.Get("https://" + inetPartner + "/pay/first")
			if err != nil {
				return false
			}
			return resp.StatusCode == 200 && readAll(resp) == want("/pay/first")
		})
		return time.Now()
	}
	defer func() {
		if t.Failed() {
			t.Logf("router:\n%s", router.log())
			t.Logf("egress check sources: %v", checkSeen.addrs())
			t.Logf("partner sources: %v", partnerSeen.addrs())
		}
	}()

	// The first instance.
	first := bootInstance(t, e, world.groupInstance(t, ""), settings)
	router.live(first.ID, first.PrivateIP)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("first instance %s log:\n%s", first.ID, tail(first.logs.String(), 8000))
		}
	})
	eventually(t, first.ID+" claims "+eipA, 2*time.Minute, func() bool { first.alive(t); return router.associated() == first.ID })
	notReady(first)
	router.release(first.ID)
	untilServed(first)
	if got := first.readyz(); got != 200 {
		t.Errorf("/readyz once serving: %d", got)
	}
	allClients("first")

	// Kill it: the machine is gone at once (SIGKILL, no drain), the router
	// drops the NAT as AWS disassociates the IP, and the Auto Scaling group
	// terminates it and launches a replacement in the same subnet. (moto
	// leaves the IP associated with the terminated instance, so the
	// replacement takes it by the claim rule's stopped-or-terminated
	// branch; on AWS the IP is free by then, the rule's first branch.)
	killed := time.Now()
	syscall.Kill(-first.cmd.Process.Pid, syscall.SIGKILL)
	router.gone(first.ID)
	e.delNS(first.ns)
	if _, err := world.asg.TerminateInstanceInAutoScalingGroup(context.Background(), &autoscaling.TerminateInstanceInAutoScalingGroupInput{
		InstanceId: aws.String(first.ID), ShouldDecrementDesiredCapacity: aws.Bool(false)}); err != nil {
		t.Fatalf("TerminateInstanceInAutoScalingGroup: %v", err)
	}
	if resp, err := goClient().Get("https://" + inetPartner + "/pay/while-down"); err == nil {
		if body := readAll(resp); body == want("/pay/while-down") {
			t.Fatalf("served through %s with no instance", eipA)
		}
	}

	second := bootInstance(t, e, world.groupInstance(t, first.ID), settings)
	router.live(second.ID, second.PrivateIP)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("replacement %s log:\n%s", second.ID, tail(second.logs.String(), 8000))
		}
	})
	eventually(t, "the replacement "+second.ID+" claims "+eipA, 2*time.Minute, func() bool { second.alive(t); return router.associated() == second.ID })
	claimed := time.Now()
	if got := world.addressesOf(t, second.ID); len(got) != 1 || got[0] != eipA {
		t.Errorf("the replacement holds %v, want only %s", got, eipA)
	}
	holdStart := time.Now()
	notReady(second)
	held := time.Since(holdStart)
	router.release(second.ID)
	served := untilServed(second)
	if got := second.readyz(); got != 200 {
		t.Errorf("the replacement's /readyz once serving: %d", got)
	}
	allClients("replacement")

	for _, other := range []string{eipB, eipOther} {
		out, err := world.ec2.DescribeAddresses(context.Background(), &ec2.DescribeAddressesInput{PublicIps: []string{other}})
		if err != nil || len(out.Addresses) != 1 {
			t.Fatalf("DescribeAddresses %s: %v", other, err)
		}
		if a := out.Addresses[0]; aws.ToString(a.InstanceId) != "" || aws.ToString(a.AssociationId) != "" {
			t.Errorf("%s (not this subnet's, or not this deployment's) is associated with %q (%q)", other, aws.ToString(a.InstanceId), aws.ToString(a.AssociationId))
		}
	}
	if got := partnerSeen.addrs(); len(got) != 1 || !strings.HasPrefix(got[0], eipA+" ") {
		t.Errorf("the partner saw %v; want only %s", got, eipA)
	}
	t.Logf("kill to claim by the replacement: %v; kill to its first request served: %v (of which %v the test held the NAT back to check the refusals)",
		claimed.Sub(killed).Round(time.Millisecond), served.Sub(killed).Round(time.Millisecond), held.Round(time.Millisecond))
	t.Logf("egress check sources: %v", checkSeen.addrs())
}

// nodeClients holds the undici version the Node check uses; .ci/run installs it.
const nodeClients = "../testdata/clients/node"

// tlsTo dials the instance at its own address (not yet the Elastic IP),
// verifying its certificate as the Elastic IP's.
func tlsTo(addr string, ca *x509.CertPool) (*tls.Conn, error) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return tls.DialWithDialer(d, "tcp", net.JoinHostPort(addr, "443"), &tls.Config{RootCAs: ca, ServerName: eipA})
}

// connectVia sends CONNECT to the partner through the instance at addr
// (from namespace ns) and
// returns the status and Outgate-Error of the answer.
func connectVia(ns, addr string, ca *x509.CertPool, key string) (int, string, error) {
	return roundTripVia(ns, addr, ca, fmt.Sprintf("CONNECT %[1]s:443 HTTP/1.1\r\nHost: %[1]s:443\r\nProxy-Authorization: Basic %[2]s\r\n\r\n", inetPartner, basic("billing", key)))
}

// relayVia sends a relay request through the instance at addr.
func relayVia(ns, addr string, ca *x509.CertPool, key string) (int, string, error) {
	return roundTripVia(ns, addr, ca, fmt.Sprintf("GET /partner/pay/early HTTP/1.1\r\nHost: %s\r\nOutgate-Key: %s\r\nConnection: close\r\n\r\n", eipA, key))
}

func roundTripVia(ns, addr string, ca *x509.CertPool, req string) (int, string, error) {
	var conn *tls.Conn
	err := inNetns(ns, func() (err error) {
		conn, err = tlsTo(addr, ca)
		return err
	})
	if err != nil {
		return 0, "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, req); err != nil {
		return 0, "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0, "", err
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Outgate-Error"), nil
}
