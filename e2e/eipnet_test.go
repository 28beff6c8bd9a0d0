package e2e

// The harness of the instance-mode namespace test (instance_netns_test.go):
// an AWS region in network namespaces. moto_server plays the AWS APIs in
// an "aws" namespace, AWS's own amazon-ec2-metadata-mock plays each
// instance's IMDS, and a "router" namespace plays the VPC's internet
// gateway, whose 1:1 NAT of an Elastic IP follows what moto says the
// address is associated with.
//
// Addresses (all TEST-NET, RFC 5737):
//
//	198.51.100.0/25   subnet A (us-east-1a): the instances' private addresses,
//	                  from moto (it hands out .4 upwards); .1 is the router
//	198.51.100.128/25 subnet B (us-east-1b): no instance, only its pool IP
//	203.0.113.0/24    "the Internet": router .1, client .30, partner .40,
//	                  the egress check service .50
//	203.0.113.10      the deployment's Elastic IP for subnet A (.11: for B)
//	192.0.2.10        the AWS API endpoint (moto), behind the router
//
// Before the router has seen the Elastic IP associated with an instance in
// moto, that instance reaches the Internet from its own address, as an
// instance with an auto-assigned public IPv4 would: the partner sees a
// wrong address if anything leaves then.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/outgate/outgate/internal/testutil"
)

const (
	eipA        = "203.0.113.10" // the pool IP of subnet A, the one under test
	eipB        = "203.0.113.11" // the pool IP of subnet B (no instance here)
	eipOther    = "203.0.113.12" // another deployment's IP tagged with subnet A
	routerPub   = "203.0.113.1"
	routerSub   = "198.51.100.1"
	inetClient  = "203.0.113.30"
	inetPartner = "203.0.113.40"
	inetCheckIP = "203.0.113.50"
	awsAPI      = "192.0.2.10"
	awsPort     = "5000"
	imdsAddr    = "169.254.169.254"
)

// eipNet is the namespaces of one test and the processes it started in them.
type eipNet struct {
	t      *testing.T
	ip     string // the ip tool
	suffix string
	router string // namespace names
	aws    string
	inet   map[string]string // "client", "partner"
	n      int               // instance namespaces made so far
}

func nsName(role, suffix string) string { return "og" + role + suffix }

// newEIPNet builds the router, aws, partner and client namespaces. Every
// namespace is deleted when the test ends, whatever happened.
func newEIPNet(t *testing.T) *eipNet {
	testutil.Root(t)
	ip := testutil.Tool(t, "ip")
	testutil.Tool(t, "nft")
	e := &eipNet{t: t, ip: ip, suffix: fmt.Sprint(os.Getpid() % 100000), inet: map[string]string{}}
	e.router = e.addNS("rt")
	r := e.router
	run(t, ip, "netns", "exec", r, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	for _, br := range []struct{ name, addr string }{{"brpub", routerPub + "/24"}, {"brsub", routerSub + "/25"}} {
		run(t, ip, "-n", r, "link", "add", br.name, "type", "bridge")
		run(t, ip, "-n", r, "addr", "add", br.addr, "dev", br.name)
		run(t, ip, "-n", r, "link", "set", br.name, "up")
	}
	// The Elastic IP is the router's to answer for (ARP) on the public
	// side; the NAT table sends it on to whichever instance holds it.
	run(t, ip, "-n", r, "addr", "add", eipA+"/32", "dev", "brpub")
	// Subnet B is reachable too, so nothing here depends on it being absent.
	run(t, ip, "-n", r, "addr", "add", "198.51.100.129/25", "dev", "brsub")

	e.aws = e.addNS("aw")
	e.link(e.aws, "aws0", "", []string{awsAPI + "/24"}, "192.0.2.1")
	run(t, ip, "-n", r, "addr", "add", "192.0.2.1/24", "dev", "aws0")
	for _, h := range []struct {
		role  string
		addrs []string
	}{{"client", []string{inetClient}}, {"partner", []string{inetPartner, inetCheckIP}}} {
		ns := e.addNS(h.role[:2])
		e.inet[h.role] = ns
		var cidrs []string
		for _, a := range h.addrs {
			cidrs = append(cidrs, a+"/24")
		}
		e.link(ns, "p"+h.role[:2], "brpub", cidrs, routerPub)
	}
	return e
}

func (e *eipNet) addNS(role string) string {
	name := nsName(role, e.suffix)
	run(e.t, e.ip, "netns", "add", name)
	e.t.Cleanup(func() { exec.Command(e.ip, "netns", "del", name).Run() })
	run(e.t, e.ip, "-n", name, "link", "set", "lo", "up")
	return name
}

// link connects namespace ns to the router: eth0 in ns with addrs and a
// default route via gw; routerEnd in the router, on bridge (or bare).
func (e *eipNet) link(ns, routerEnd, bridge string, addrs []string, gw string) {
	t, ip := e.t, e.ip
	run(t, ip, "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", routerEnd, "netns", e.router)
	if bridge != "" {
		run(t, ip, "-n", e.router, "link", "set", routerEnd, "master", bridge)
	}
	run(t, ip, "-n", e.router, "link", "set", routerEnd, "up")
	for _, a := range addrs {
		run(t, ip, "-n", ns, "addr", "add", a, "dev", "eth0")
	}
	run(t, ip, "-n", ns, "link", "set", "eth0", "up")
	run(t, ip, "-n", ns, "route", "add", "default", "via", gw)
}

// addInstanceNS makes a namespace for one EC2 instance of subnet A, with
// its private address from moto and the IMDS address on its loopback.
func (e *eipNet) addInstanceNS(privateIP string) string {
	e.n++
	ns := e.addNS(fmt.Sprintf("i%d", e.n))
	e.link(ns, fmt.Sprintf("inst%d", e.n), "brsub", []string{privateIP + "/25"}, routerSub)
	run(e.t, e.ip, "-n", ns, "addr", "add", imdsAddr+"/32", "dev", "lo")
	return ns
}

// delNS deletes a namespace now (an instance whose machine is gone).
func (e *eipNet) delNS(ns string) {
	if out, err := exec.Command(e.ip, "netns", "del", ns).CombinedOutput(); err != nil {
		e.t.Errorf("deleting namespace %s: %v %s", ns, err, out)
	}
}

// start runs a command in namespace ns until the test ends; its process
// group is killed at the end. Output goes to the returned buffer; the
// channel is closed when the process has exited.
func (e *eipNet) start(ns string, env []string, args ...string) (*exec.Cmd, *testutil.SafeBuffer, <-chan struct{}) {
	e.t.Helper()
	logs := &testutil.SafeBuffer{}
	cmd := exec.Command(e.ip, append([]string{"netns", "exec", ns}, args...)...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		e.t.Fatalf("%s: %v", strings.Join(args, " "), err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	e.t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	})
	return cmd, logs, done
}

// nsDial dials from namespace ns.
func nsDial(ns string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := inNetns(ns, func() (err error) {
			var d net.Dialer
			c, err = d.DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
}

// listenIn listens on addr inside namespace ns.
func listenIn(t *testing.T, ns, addr string) net.Listener {
	t.Helper()
	var ln net.Listener
	if err := inNetns(ns, func() (err error) {
		ln, err = net.Listen("tcp", addr)
		return err
	}); err != nil {
		t.Fatalf("listen %s in %s: %v", addr, ns, err)
	}
	return ln
}

// startMoto runs moto_server in the aws namespace and returns the SDK
// config the test uses to reach it (from that namespace).
func (e *eipNet) startMoto() aws.Config {
	t := e.t
	bin := testutil.Tool(t, "moto_server")
	_, logs, exited := e.start(e.aws, append(os.Environ(), "MOTO_IAM_LOAD_MANAGED_POLICIES=false"), bin, "-H", awsAPI, "-p", awsPort)
	hc := &http.Client{Transport: &http.Transport{DialContext: nsDial(e.aws)}, Timeout: 30 * time.Second}
	endpoint := "http://" + net.JoinHostPort(awsAPI, awsPort)
	eventually(t, "moto_server answers", 60*time.Second, func() bool {
		select {
		case <-exited:
			t.Fatalf("moto_server exited:\n%s", logs.String())
		default:
		}
		resp, err := hc.Get(endpoint + "/moto-api/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return true
	})
	return aws.Config{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("testing", "testing", ""),
		HTTPClient:   hc,
		BaseEndpoint: aws.String(endpoint),
	}
}

// imdsMock runs amazon-ec2-metadata-mock, IMDSv2 only, on 169.254.169.254:80
// in an instance's namespace, answering for the moto instance: its id, AZ,
// region, MAC, subnet and private address, and role credentials that have
// not expired (the mock's defaults expired in 2020). The SDK in the
// instance takes its credentials from there, as on EC2.
func (e *eipNet) imdsMock(ns string, inst *ec2Instance) {
	t := e.t
	values := map[string]any{
		"instance-id":                   inst.ID,
		"instance-type":                 "t4g.nano",
		"local-ipv4":                    inst.PrivateIP,
		"mac":                           inst.MAC,
		"mac-subnet-id":                 inst.Subnet,
		"mac-local-ipv4s":               inst.PrivateIP,
		"mac-subnet-ipv4-cidr-block":    "198.51.100.0/25",
		"mac-vpc-id":                    inst.VPC,
		"placement-availability-zone":   inst.AZ,
		"placement-region":              "us-east-1",
		"iam-security-credentials-role": "outgate-instance",
		"iam-security-credentials": map[string]string{
			"Code": "Success", "Type": "AWS-HMAC", "AccessKeyId": "testing", "SecretAccessKey": "testing",
			"Token": "testing", "LastUpdated": time.Now().UTC().Format(time.RFC3339),
			"Expiration": time.Now().Add(6 * time.Hour).UTC().Format(time.RFC3339),
		},
	}
	cfg := map[string]any{
		"imdsv2": true,
		"server": map[string]string{"hostname": imdsAddr, "port": "80"},
		"metadata": map[string]any{
			"paths":  map[string]string{"iam-security-credentials": "/latest/meta-data/iam/security-credentials/outgate-instance"},
			"values": values,
		},
		"dynamic": map[string]any{"values": map[string]any{"instance-identity-document": map[string]any{
			"accountId": "123456789012", "availabilityZone": inst.AZ, "region": "us-east-1", "instanceId": inst.ID,
			"privateIp": inst.PrivateIP, "instanceType": "t4g.nano", "architecture": "arm64", "imageId": "ami-12c6146b",
			"version": "2017-09-30", "pendingTime": time.Now().UTC().Format(time.RFC3339),
		}}},
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "aemm.json")
	b, _ := json.Marshal(cfg)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	// HOME: the mock looks for a default config file there.
	_, logs, exited := e.start(ns, []string{"HOME=" + dir, "PATH=" + os.Getenv("PATH")}, imdsBinary(t), "-c", path)
	hc := &http.Client{Transport: &http.Transport{DialContext: nsDial(ns)}, Timeout: 5 * time.Second}
	eventually(t, "the IMDS mock answers with the instance id", 30*time.Second, func() bool {
		select {
		case <-exited:
			t.Fatalf("amazon-ec2-metadata-mock exited:\n%s", logs.String())
		default:
		}
		req, _ := http.NewRequest(http.MethodPut, "http://"+imdsAddr+"/latest/api/token", nil)
		req.Header.Set("X-aws-ec2-metadata-token-ttl-seconds", "60")
		resp, err := hc.Do(req)
		if err != nil {
			return false
		}
		tok := readAll(resp)
		req, _ = http.NewRequest(http.MethodGet, "http://"+imdsAddr+"/latest/meta-data/instance-id", nil)
		req.Header.Set("X-aws-ec2-metadata-token", tok)
		resp, err = hc.Do(req)
		return err == nil && readAll(resp) == inst.ID
	})
}

var (
	imdsOnce sync.Once
	imdsPath string
	imdsErr  error
)

// imdsBinary builds amazon-ec2-metadata-mock (a tool in go.mod) once.
func imdsBinary(t *testing.T) string {
	imdsOnce.Do(func() {
		dir, err := os.MkdirTemp("", "outgate-aemm")
		if err != nil {
			imdsErr = err
			return
		}
		imdsPath = filepath.Join(dir, "ec2-metadata-mock")
		if out, err := exec.Command("go", "build", "-o", imdsPath, "github.com/aws/amazon-ec2-metadata-mock/cmd/ec2-metadata-mock").CombinedOutput(); err != nil {
			imdsErr = fmt.Errorf("building amazon-ec2-metadata-mock: %v\n%s", err, out)
		}
	})
	if imdsErr != nil {
		t.Fatal(imdsErr)
	}
	return imdsPath
}

func readAll(resp *http.Response) string {
	defer resp.Body.Close()
	var sb strings.Builder
	buf := make([]byte, 4096)
	for sb.Len() < 1<<20 {
		n, err := resp.Body.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return sb.String()
}

// ec2Instance is what the test knows of a moto instance.
type ec2Instance struct {
	ID, PrivateIP, MAC, Subnet, VPC, AZ, State string
}

func describeInstance(t *testing.T, api *ec2.Client, id string) *ec2Instance {
	t.Helper()
	out, err := api.DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil || len(out.Reservations) != 1 || len(out.Reservations[0].Instances) != 1 {
		t.Fatalf("DescribeInstances %s: %v", id, err)
	}
	i := out.Reservations[0].Instances[0]
	inst := &ec2Instance{ID: id, PrivateIP: aws.ToString(i.PrivateIpAddress), Subnet: aws.ToString(i.SubnetId),
		VPC: aws.ToString(i.VpcId), State: string(i.State.Name)}
	if i.Placement != nil {
		inst.AZ = aws.ToString(i.Placement.AvailabilityZone)
	}
	if len(i.NetworkInterfaces) > 0 {
		inst.MAC = aws.ToString(i.NetworkInterfaces[0].MacAddress)
	}
	if inst.PrivateIP == "" || inst.MAC == "" || inst.AZ == "" {
		t.Fatalf("moto instance %s lacks an address, MAC or AZ: %+v", id, inst)
	}
	return inst
}

// eipRouter is the internet gateway's 1:1 NAT of eipA: it polls moto
// (DescribeAddresses) and, once the address is associated with an instance
// the test has let through (the test's stand-in for the seconds AWS takes
// to apply an association), NATs it to that instance's private address;
// otherwise there is no NAT and an instance leaves from its own address.
type eipRouter struct {
	t  *testing.T
	ns string
	ip string

	mu       sync.Mutex
	private  map[string]string // live instance id -> private address
	released map[string]bool
	assoc    string // instance eipA is associated with in moto, as last seen
	natTo    string // instance the NAT points at ("" for none)
	history  []string
}

func (e *eipNet) startRouter(api *ec2.Client) *eipRouter {
	r := &eipRouter{t: e.t, ns: e.router, ip: e.ip, private: map[string]string{}, released: map[string]bool{}}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	e.t.Cleanup(func() { cancel(); <-stopped })
	go func() {
		defer close(stopped)
		// Bounded: 100ms apart, for at most 20 minutes.
		for i := 0; i < 12000 && ctx.Err() == nil; i++ {
			out, err := api.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{PublicIps: []string{eipA}})
			if err == nil && len(out.Addresses) == 1 {
				r.observe(aws.ToString(out.Addresses[0].InstanceId))
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return r
}

// live tells the router an instance's private address.
func (r *eipRouter) live(id, private string) {
	r.mu.Lock()
	r.private[id] = private
	r.mu.Unlock()
}

// release lets the NAT follow an association with id.
func (r *eipRouter) release(id string) {
	r.mu.Lock()
	r.released[id] = true
	assoc := r.assoc
	r.mu.Unlock()
	r.observe(assoc)
}

// gone is an instance that no longer exists (killed, terminated): AWS
// disassociates its Elastic IP, so the NAT to it goes at once.
func (r *eipRouter) gone(id string) {
	r.mu.Lock()
	delete(r.private, id)
	assoc := r.assoc
	r.mu.Unlock()
	r.observe(assoc)
}

func (r *eipRouter) associated() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.assoc
}

func (r *eipRouter) nat() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.natTo
}

func (r *eipRouter) observe(assoc string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if assoc != r.assoc {
		r.history = append(r.history, fmt.Sprintf("%s associated with %q", time.Now().Format("15:04:05.000"), assoc))
	}
	r.assoc = assoc
	want := ""
	if _, ok := r.private[assoc]; ok && r.released[assoc] {
		want = assoc
	}
	if want == r.natTo {
		return
	}
	// One nft transaction: the old mapping goes and the new one comes
	// together (declaring the table first makes the delete safe when
	// there is none).
	rules := "table ip ogeip {}\ndelete table ip ogeip\n"
	if want != "" {
		priv := r.private[want]
		rules += fmt.Sprintf(`table ip ogeip {
	chain pre { type nat hook prerouting priority dstnat; policy accept; ip daddr %[1]s dnat to %[2]s; }
	chain post { type nat hook postrouting priority srcnat; policy accept; oifname "brpub" ip saddr %[2]s snat to %[1]s; }
}
`, eipA, priv)
	}
	cmd := exec.Command(r.ip, "netns", "exec", r.ns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		r.t.Errorf("router nft: %v\n%s\n%s", err, out, rules)
		return
	}
	r.natTo = want
	r.history = append(r.history, fmt.Sprintf("%s NAT %s -> %q", time.Now().Format("15:04:05.000"), eipA, want))
}

func (r *eipRouter) log() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.history, "\n")
}

// eventually polls cond every 50ms until it holds, failing the test after d.
func eventually(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting until %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// testCA is the partner's certificate authority.
type testCA struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	CertPEM []byte
}

func newTestCA(t *testing.T, cn string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// leaf issues a server certificate for the IP addresses ips.
func (ca *testCA) leaf(t *testing.T, ips ...string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: ips[0]},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	for _, s := range ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(s))
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	k8, _ := x509.MarshalPKCS8PrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: k8})
}
