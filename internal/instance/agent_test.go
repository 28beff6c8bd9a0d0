package instance

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/outgate/outgate/internal/claim"
	"github.com/outgate/outgate/internal/guardian"
	"github.com/outgate/outgate/internal/imds"
	"github.com/outgate/outgate/internal/keys"
	"github.com/outgate/outgate/internal/server"
	"github.com/outgate/outgate/internal/testutil"
)

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// waitFor polls cond (the agent's work shows in its log and its listeners
// a moment after a tick is taken), failing after a generous bound.
func waitFor(t *testing.T, what string, logs *testutil.SafeBuffer, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; log:\n%s", what, logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestAgentEndToEnd runs the whole agent in-process: EC2, Auto Scaling and
// SSM on moto, IMDSv2 from AWS's metadata mock, a loopback egress-check
// service whose answer the test sets, and a loopback partner. The agent
// claims the pool IP, serves with the gate closed while the check answers
// a wrong IP, opens when it answers the pool IP, reloads a changed config
// parameter (a revoked key stops working, a new one works), keeps the old
// config when the new one is invalid, and has itself replaced 5 minutes
// after it stopped being ready.
func TestAgentEndToEnd(t *testing.T) {
	testutil.Moto(t)
	ctx := context.Background()
	ac, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	ec2c, asc, ssmc := ec2.NewFromConfig(ac), autoscaling.NewFromConfig(ac), ssm.NewFromConfig(ac)
	vpc, err := ec2c.CreateVpc(ctx, &ec2.CreateVpcInput{CidrBlock: aws.String("10.0.0.0/16")})
	must(err)
	sn, err := ec2c.CreateSubnet(ctx, &ec2.CreateSubnetInput{VpcId: vpc.Vpc.VpcId, CidrBlock: aws.String("10.0.1.0/24"), AvailabilityZone: aws.String("us-east-1a")})
	must(err)
	subnet := aws.ToString(sn.Subnet.SubnetId)
	images, err := ec2c.DescribeImages(ctx, &ec2.DescribeImagesInput{})
	must(err)
	lt, err := ec2c.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{LaunchTemplateName: aws.String("pay-a"),
		LaunchTemplateData: &ec2types.RequestLaunchTemplateData{ImageId: images.Images[0].ImageId, InstanceType: ec2types.InstanceTypeT4gNano}})
	must(err)
	_, err = asc.CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{AutoScalingGroupName: aws.String("pay-a"),
		MinSize: aws.Int32(1), MaxSize: aws.Int32(1), VPCZoneIdentifier: aws.String(subnet),
		LaunchTemplate: &astypes.LaunchTemplateSpecification{LaunchTemplateId: lt.LaunchTemplate.LaunchTemplateId},
		Tags:           []astypes.Tag{{Key: aws.String(guardian.TagDeployment), Value: aws.String("pay"), PropagateAtLaunch: aws.Bool(true)}}})
	must(err)
	groups, err := asc.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{"pay-a"}})
	must(err)
	me := aws.ToString(groups.AutoScalingGroups[0].Instances[0].InstanceId)
	eip, err := ec2c.AllocateAddress(ctx, &ec2.AllocateAddressInput{Domain: ec2types.DomainTypeVpc, TagSpecifications: []ec2types.TagSpecification{{
		ResourceType: ec2types.ResourceTypeElasticIp, Tags: []ec2types.Tag{
			{Key: aws.String(guardian.TagDeployment), Value: aws.String("pay")}, {Key: aws.String(guardian.TagSubnet), Value: aws.String(subnet)}}}}})
	must(err)
	poolIP := aws.ToString(eip.PublicIp)

	const launched = "198.51.100.20" // the public IPv4 the instance launched with
	md := testutil.StartMetadataMock(t, map[string]string{"instance-id": me, "mac-subnet-id": subnet,
		"placement-availability-zone": "us-east-1a", "placement-region": "us-east-1", "public-ipv4": launched})
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", md.Endpoint)

	var requests atomic.Int32
	partner := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		io.WriteString(w, "partner\n")
	}))
	defer partner.Close()
	var answer atomic.Value
	answer.Store(launched) // the association has not reached the network yet
	check := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, answer.Load().(string)+"\n")
	}))
	defer check.Close()

	// A raw TCP partner for CONNECT: it echoes each line.
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	must(err)
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	echoHost := echo.Addr().String()

	key1, hash1 := keys.New()
	key2, hash2 := keys.New()
	cfgWith := func(hash string) string {
		return fmt.Sprintf(`listen: 0.0.0.0:8080
egress_check_url: %q
upstreams: {partner: {url: %q}}
clients:
  - name: billing
    key_sha256: %s
    upstreams: [partner]
    hosts: [%q]
    raw_tunnels: [%q]
network: {allow_cidrs: [127.0.0.0/8]}
`, check.URL, partner.URL, hash, echoHost, echoHost)
	}
	put := func(value string) {
		t.Helper()
		_, err := ssmc.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String("/outgate/pay/config"), Value: aws.String(value),
			Type: ssmtypes.ParameterTypeSecureString, Overwrite: aws.Bool(true)})
		must(err)
	}
	put("clients: [") // not a config: the gateway must wait for a usable one

	s := Settings{Deployment: "pay", Region: "us-east-1", ConfigParameter: "/outgate/pay/config", StateDir: t.TempDir(),
		Listen: freePort(t), AdminListen: freePort(t), LogGroup: "/outgate/pay/instance",
		CACertParameter: "/outgate/pay/ca/cert", CAKeyParameter: "/outgate/pay/ca/key"}
	boot := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	checks, polls := make(chan time.Time), make(chan time.Time)
	// The seam's own condition for serving (the certificate's readiness
	// in production): open unless the test closes it.
	var certErr atomic.Pointer[error]
	var noErr error
	certErr.Store(&noErr)
	logs := &testutil.SafeBuffer{}
	seam := make(chan string, 1)
	actx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- Run(actx, s, Deps{AWS: ac, LogOutput: logs, Checks: checks, Polls: polls, Now: func() time.Time { return boot },
			Server: func(_ context.Context, f imds.Facts, ip claim.Claimed, ips []netip.Addr, o *server.Options) error {
				seam <- fmt.Sprint(f.InstanceID, " ", f.AZ, " ", ip.PublicIP, " ", ips)
				o.ConfigPath = "/nonexistent"                    // the agent's own options win
				o.Gate = func() error { return *certErr.Load() } // kept, after the egress's
				return nil
			}})
	}()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("agent: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("agent did not stop")
		}
	}()

	relay := func(key string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+s.Listen+"/partner/x", nil)
		req.Header.Set("Outgate-Key", key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, resp.Header.Get("Outgate-Error")
	}
	readyz := func() int {
		resp, err := http.Get("http://" + s.AdminListen + "/readyz")
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	emfLines := func() []map[string]any {
		var out []map[string]any
		for _, l := range strings.Split(logs.String(), "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(l), &m) == nil && m["_aws"] != nil {
				// Valid EMF, and the design's metric (namespace Outgate,
				// dimensions Deployment and AZ) that the stack's alarms read.
				if v := emfViolations([]byte(l)); len(v) > 0 {
					t.Errorf("EMF line breaks the specification: %q\n%s", v, l)
				}
				if d, _ := json.Marshal(m["_aws"].(map[string]any)["CloudWatchMetrics"]); string(d) != `[{"Dimensions":[["Deployment","AZ"]],"Metrics":[{"Name":"InstanceReady","Unit":"None"},{"Name":"EgressWrongIP","Unit":"Count"}],"Namespace":"Outgate"}]` {
					t.Errorf("EMF directive %s is not the design's", d)
				}
				out = append(out, m)
			}
		}
		return out
	}

	// Boot: the IP is claimed; no gateway until the config is usable.
	waitFor(t, "the refusal of the first config", logs, func() bool { return strings.Contains(logs.String(), "no usable config yet") })
	if readyz() != 0 {
		t.Fatal("the admin listener is up without a config")
	}
	put(cfgWith(hash1))
	polls <- boot.Add(30 * time.Second)
	if got, want := <-seam, me+" us-east-1a "+poolIP+" ["+poolIP+"]"; got != want { // the deployment's one IP
		t.Fatalf("the TLS seam got %q, want %q", got, want)
	}

	// The gateway serves with the gate closed; the first check still
	// answers the launch address: not ready, but no wrong IP counted.
	waitFor(t, "the first egress verdict", logs, func() bool { return strings.Contains(logs.String(), "has not reached the network yet") })
	if m := emfLines(); len(m) != 1 || m[0]["InstanceReady"] != 0.0 || m[0]["EgressWrongIP"] != 0.0 {
		t.Fatalf("EMF lines while the association reaches the network: %v", m)
	}
	// The next answers a wrong IP.
	answer.Store("198.51.100.7")
	checks <- boot.Add(30 * time.Second)
	waitFor(t, "the wrong-IP verdict", logs, func() bool { return strings.Contains(logs.String(), "calls leave from a wrong IP") })
	addrs, err := ec2c.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{AllocationIds: []string{aws.ToString(eip.AllocationId)}})
	must(err)
	if h := aws.ToString(addrs.Addresses[0].InstanceId); h != me {
		t.Fatalf("pool IP on %q, want %s", h, me)
	}
	if st, code := relay(key1); st != 503 || code != "egress_unverified" {
		t.Fatalf("relay before the egress is proven: %d %q", st, code)
	}
	if readyz() != 503 || requests.Load() != 0 {
		t.Fatalf("readyz %d, partner saw %d requests before the egress was proven", readyz(), requests.Load())
	}
	if m := emfLines(); len(m) != 2 || m[1]["InstanceReady"] != 0.0 || m[1]["EgressWrongIP"] != 1.0 || m[1]["AZ"] != "us-east-1a" || m[1]["Deployment"] != "pay" {
		t.Fatalf("EMF lines %v", m)
	}

	// The check now answers the pool IP: ready.
	answer.Store(poolIP)
	checks <- boot.Add(time.Minute)
	waitFor(t, "readiness", logs, func() bool { return readyz() == 200 })
	if st, _ := relay(key1); st != 200 || requests.Load() != 1 {
		t.Fatalf("relay once ready: %d, partner saw %d", st, requests.Load())
	}
	if m := emfLines(); len(m) != 3 || m[2]["InstanceReady"] != 1.0 || m[2]["EgressWrongIP"] != 0.0 {
		t.Fatalf("EMF lines %v", m)
	}
	// No certificate (the seam's gate closed): /readyz and requests
	// say so although the egress is right.
	noCert := errors.New("no certificate for gw.example.com yet")
	certErr.Store(&noCert)
	if st, code := relay(key1); st != 503 || code != "egress_unverified" || readyz() != 503 {
		t.Fatalf("with the seam's gate closed: relay %d %q, readyz %d", st, code, readyz())
	}
	certErr.Store(&noErr)
	if st, _ := relay(key1); st != 200 || readyz() != 200 {
		t.Fatalf("with the seam's gate open again: relay %d, readyz %d", st, readyz())
	}

	// key1 revoked, key2 added in SSM: applied at the next poll, no restart.
	put(cfgWith(hash2))
	polls <- boot.Add(2 * time.Minute)
	waitFor(t, "the reload", logs, func() bool { return strings.Contains(logs.String(), `"msg":"config reloaded"`) })
	if st, code := relay(key1); st != 401 {
		t.Fatalf("revoked key after the poll: %d %q", st, code)
	}
	if st, _ := relay(key2); st != 200 {
		t.Fatalf("new key after the poll: %d", st)
	}

	// An invalid config is refused; the current one keeps serving.
	put("clients: [")
	polls <- boot.Add(3 * time.Minute)
	waitFor(t, "the refusal", logs, func() bool { return strings.Contains(logs.String(), "the new config is invalid") })
	if st, _ := relay(key2); st != 200 {
		t.Fatalf("after an invalid config: %d", st)
	}

	// A tunnel opened while the egress is right.
	tun, err := net.DialTimeout("tcp", s.Listen, 5*time.Second)
	must(err)
	defer tun.Close()
	tun.SetDeadline(time.Now().Add(20 * time.Second))
	fmt.Fprintf(tun, "CONNECT %s HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: Basic %s\r\n\r\n", echoHost, echoHost,
		base64.StdEncoding.EncodeToString([]byte("billing:"+key2)))
	tbr := bufio.NewReader(tun)
	if resp, err := http.ReadResponse(tbr, &http.Request{Method: "CONNECT"}); err != nil || resp.StatusCode != 200 {
		t.Fatalf("CONNECT while ready: %v %v", resp, err)
	}
	io.WriteString(tun, "before\n")
	if l, err := tbr.ReadString('\n'); err != nil || l != "before\n" {
		t.Fatalf("through the tunnel: %q %v", l, err)
	}

	// The egress goes wrong: not ready at once, the open tunnel ended
	// (its bytes would leave from the wrong IP); replaced 5 minutes later.
	answer.Store("198.51.100.7")
	checks <- boot.Add(4 * time.Minute)
	waitFor(t, "not ready", logs, func() bool { return readyz() == 503 })
	waitFor(t, "the tunnels ended", logs, func() bool { return strings.Contains(logs.String(), `"tunnels_closed":1`) })
	io.WriteString(tun, "after\n")
	if l, err := tbr.ReadString('\n'); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the tunnel opened before the egress went wrong still carries bytes: %q %v", l, err)
	}
	if st, code := relay(key2); st != 503 || code != "egress_unverified" {
		t.Fatalf("relay with a wrong egress: %d %q", st, code)
	}
	checks <- boot.Add(8 * time.Minute)
	polls <- boot.Add(8 * time.Minute) // one loop: the 8-minute check is done once this is taken
	health := func() string {
		out, err := asc.DescribeAutoScalingInstances(ctx, &autoscaling.DescribeAutoScalingInstancesInput{InstanceIds: []string{me}})
		must(err)
		return aws.ToString(out.AutoScalingInstances[0].HealthStatus)
	}
	if h := health(); !strings.EqualFold(h, "healthy") {
		t.Fatalf("health %q 4 minutes after losing readiness", h)
	}
	checks <- boot.Add(9 * time.Minute)
	waitFor(t, "the replacement request", logs, func() bool { return strings.Contains(logs.String(), "reported this instance unhealthy") })
	if h := health(); !strings.EqualFold(h, "unhealthy") {
		t.Fatalf("health %q after the report", h)
	}
}

// TestAgentRefusesAnotherRegion: settings written for another region than
// the instance's (IMDS) stop the agent before it touches any IP.
func TestAgentRefusesAnotherRegion(t *testing.T) {
	md := testutil.StartMetadataMock(t, map[string]string{"instance-id": "i-0a1b2c3d4e5f60718", "mac-subnet-id": "subnet-0123456789abcdef0",
		"placement-availability-zone": "eu-west-1a", "placement-region": "eu-west-1"})
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", md.Endpoint)
	// Any AWS call would go here and fail the test.
	aws := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("AWS called: %s %s", r.Method, r.URL)
		w.WriteHeader(500)
	}))
	defer aws.Close()
	t.Setenv("AWS_ENDPOINT_URL", aws.URL)
	t.Setenv("AWS_ACCESS_KEY_ID", "testing")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "testing")
	ac, err := awsconfig.LoadDefaultConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	s := Settings{Deployment: "pay", Region: "us-east-1", ConfigParameter: "/outgate/pay/config", StateDir: t.TempDir(),
		Listen: freePort(t), AdminListen: freePort(t), LogGroup: "/outgate/pay/instance",
		CACertParameter: "/outgate/pay/ca/cert", CAKeyParameter: "/outgate/pay/ca/key"}
	err = Run(context.Background(), s, Deps{AWS: ac, LogOutput: io.Discard})
	if err == nil || !strings.Contains(err.Error(), "the instance is in eu-west-1 but its settings say region us-east-1") {
		t.Fatalf("err = %v", err)
	}
}
