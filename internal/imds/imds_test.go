package imds

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"

	"github.com/outgate/outgate/internal/testutil"
)

func client(t *testing.T, endpoint string) *Client {
	t.Helper()
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", endpoint)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "")
	t.Setenv("AWS_REGION", "us-east-1")
	cfg, err := awsconfig.LoadDefaultConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return New(cfg)
}

var values = map[string]string{
	"instance-id":                 "i-0a1b2c3d4e5f60718",
	"placement-availability-zone": "ap-northeast-2c",
	"placement-region":            "ap-northeast-2",
	"mac-subnet-id":               "subnet-0123456789abcdef0",
}

// TestFactsFromMetadataMock reads the facts from AWS's metadata mock in
// IMDSv2-only mode, which answers a request without a session token with
// 401: the facts arrive only through the token dance.
func TestFactsFromMetadataMock(t *testing.T) {
	m := testutil.StartMetadataMock(t, values)
	resp, err := http.Get(m.Endpoint + "/latest/meta-data/instance-id")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("the mock answers an IMDSv1 request with %d; the test needs it IMDSv2-only", resp.StatusCode)
	}
	f, err := client(t, m.Endpoint).Facts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := Facts{InstanceID: values["instance-id"], AZ: "ap-northeast-2c", Region: "ap-northeast-2",
		MAC: testutil.MetadataMAC, SubnetID: values["mac-subnet-id"]}
	if f != want {
		t.Fatalf("facts = %+v, want %+v", f, want)
	}
}

// TestTokenRefusedGetsANewOne: a token the service no longer accepts (it
// expired, or the service restarted) is answered 401; the client asks for a
// new token and the read succeeds, instead of failing until a restart.
func TestTokenRefusedGetsANewOne(t *testing.T) {
	m := testutil.StartMetadataMock(t, values)
	c := client(t, m.Endpoint)
	ctx := context.Background()
	if _, err := c.Facts(ctx); err != nil {
		t.Fatal(err)
	}
	m.Restart() // forgets every token it issued
	f, err := c.Facts(ctx)
	if err != nil {
		t.Fatalf("after the token was refused: %v", err)
	}
	if f.InstanceID != values["instance-id"] {
		t.Fatalf("instance id %q", f.InstanceID)
	}
}

// TestNoIMDSv1Fallback: a metadata endpoint that refuses the token request
// but would answer token-less (IMDSv1) GETs gets no GET at all: the client
// fails instead of trusting an IMDSv1 answer. (A loopback server, since the
// mock always issues tokens.)
func TestNoIMDSv1Fallback(t *testing.T) {
	var gets atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		gets.Add(1)
		w.Write([]byte("i-0123456789abcdef0"))
	}))
	defer srv.Close()
	_, err := client(t, srv.URL).Facts(context.Background())
	if err == nil {
		t.Fatal("facts read without an IMDSv2 token")
	}
	if n := gets.Load(); n != 0 {
		t.Fatalf("%d token-less GETs sent", n)
	}
}

// TestValuesOfTheWrongShapeRefused: an answer that is not an instance id or
// subnet (an HTML page from something that is not IMDS) never becomes one.
func TestValuesOfTheWrongShapeRefused(t *testing.T) {
	bad := map[string]string{}
	for k, v := range values {
		bad[k] = v
	}
	bad["mac-subnet-id"] = "<html>subnet</html>"
	m := testutil.StartMetadataMock(t, bad)
	_, err := client(t, m.Endpoint).Facts(context.Background())
	if err == nil || !strings.Contains(err.Error(), "subnet-id") {
		t.Fatalf("err = %v, want a refusal of the subnet id", err)
	}
}

// TestPublicIPv4: the address the instance has now, read over IMDSv2 from
// the mock; a value that is not an IPv4 address is refused.
func TestPublicIPv4(t *testing.T) {
	v := map[string]string{"public-ipv4": "198.51.100.20"}
	for k, x := range values {
		v[k] = x
	}
	m := testutil.StartMetadataMock(t, v)
	c := client(t, m.Endpoint)
	ip, err := c.PublicIPv4(context.Background())
	if err != nil || ip != netip.MustParseAddr("198.51.100.20") {
		t.Fatalf("public-ipv4 = %v, %v", ip, err)
	}
	m.Stop()
	v["public-ipv4"] = "<html>not found</html>"
	m = testutil.StartMetadataMock(t, v)
	if ip, err := client(t, m.Endpoint).PublicIPv4(context.Background()); err == nil || !strings.Contains(err.Error(), "not an IPv4 address") {
		t.Fatalf("a page for an address: %v, %v", ip, err)
	}
}

// TestShapesOfEveryPartition: the region and zone names of every AWS
// partition pass (the SDK's partitions.json regionRegex lists them: aws,
// aws-cn, aws-us-gov, the iso partitions and aws-eusc, whose
// eusc-de-east-1 has a four-letter prefix); anything else is refused.
func TestShapesOfEveryPartition(t *testing.T) {
	for _, r := range []string{"us-east-1", "ap-southeast-5", "cn-northwest-1", "us-gov-west-1", "us-iso-east-1", "us-isob-east-1", "us-isof-south-1", "eu-isoe-west-1", "eusc-de-east-1", "mx-central-1"} {
		if !reRegion.MatchString(r) {
			t.Errorf("region %q refused", r)
		}
		if az := r + "a"; !reAZ.MatchString(az) {
			t.Errorf("zone %q refused", az)
		}
	}
	if !reAZ.MatchString("us-west-2-lax-1a") {
		t.Error("a local zone refused")
	}
	for _, bad := range []string{"", "us-east-1 ", "<html>", "us_east_1", "useast1", "us-east-", "us-east-1a\nx"} {
		if reRegion.MatchString(bad) || reAZ.MatchString(bad) {
			t.Errorf("%q accepted", bad)
		}
	}
}
