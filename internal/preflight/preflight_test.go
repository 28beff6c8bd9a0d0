package preflight

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/outgate/outgate/internal/testutil"
)

// moto answers DescribeInstanceTypes and DescribeInstanceTypeOfferings from
// a snapshot of AWS's own data: t4g.nano is arm64, t3.nano x86_64, and in
// that snapshot us-east-1e does not sell t4g.nano and me-central-1 sells
// no t4g at all. The checks run against it over the real wire protocol.
func motoEC2(t *testing.T, region string) *ec2.Client {
	t.Helper()
	testutil.Moto(t)
	ac, err := awsconfig.LoadDefaultConfig(context.Background(), awsconfig.WithRegion(region))
	if err != nil {
		t.Fatal(err)
	}
	return ec2.NewFromConfig(ac)
}

func TestInstanceTypeOnMoto(t *testing.T) {
	api := motoEC2(t, "us-east-1")
	ctx := context.Background()
	if err := InstanceType(ctx, api, "t4g.nano"); err != nil {
		t.Fatalf("t4g.nano refused: %v", err)
	}
	for typ, want := range map[string]string{
		"t3.nano":   "runs x86_64, not arm64",
		"t9z.giant": "EC2 knows no such type",
		"T4G NANO":  "not an instance type name",
	} {
		err := InstanceType(ctx, api, typ)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "t4g.nano") {
			t.Errorf("%s: %v (want %q and a type to use instead)", typ, err, want)
		}
	}
}

func TestAZsOnMoto(t *testing.T) {
	ctx := context.Background()
	api := motoEC2(t, "us-east-1")
	azs, err := NewVPCAZs(ctx, api, "us-east-1", "t4g.nano", 3)
	if err != nil || !slices.Equal(azs, []string{"us-east-1a", "us-east-1b", "us-east-1c"}) {
		t.Fatalf("NewVPCAZs: %v %v", azs, err)
	}
	// us-east-1e, the fifth AZ, does not sell t4g.nano: a new VPC over
	// five AZs is refused, naming it.
	_, err = NewVPCAZs(ctx, api, "us-east-1", "t4g.nano", 5)
	if err == nil || !strings.Contains(err.Error(), "in us-east-1e") || !strings.Contains(err.Error(), "--vpc-id") {
		t.Errorf("5 AZs: %v", err)
	}
	if err := CheckAZs(ctx, api, "us-east-1", "t4g.nano", []string{"us-east-1a", "us-east-1e"}); err == nil || !strings.Contains(err.Error(), "not sold in us-east-1e") {
		t.Errorf("subnet in us-east-1e: %v", err)
	}
	if err := CheckAZs(ctx, api, "us-east-1", "t4g.nano", []string{"us-east-1a", "us-east-1f"}); err != nil {
		t.Errorf("a and f: %v", err)
	}
}

func TestRegionWithoutTypeOnMoto(t *testing.T) {
	api := motoEC2(t, "me-central-1")
	_, err := NewVPCAZs(context.Background(), api, "me-central-1", "t4g.nano", 2)
	if err == nil || !strings.Contains(err.Error(), "not sold in region me-central-1") || !strings.Contains(err.Error(), "--region") {
		t.Fatalf("me-central-1: %v", err)
	}
}

func TestAllowFrom(t *testing.T) {
	def, err := AllowFrom(nil)
	if err != nil || len(def) != 2 || def[0].String() != "0.0.0.0/0" || def[1].String() != "::/0" {
		t.Fatalf("default: %v %v", def, err)
	}
	got, err := AllowFrom([]string{"198.51.100.0/24", " 2001:db8::/32", "198.51.100.0/24"})
	if err != nil || len(got) != 2 {
		t.Fatalf("good list: %v %v", got, err)
	}
	for in, want := range map[string]string{
		"198.51.100.7/24":    "did you mean 198.51.100.0/24",
		"203.0.113.9":        "write 203.0.113.9/32",
		"2001:db8::1":        "write 2001:db8::1/128",
		"example.com/24":     "is not a CIDR block",
		"10.0.0.0/33":        "is not a CIDR block",
		"::ffff:1.2.3.0/120": "write IPv4 blocks as IPv4",
	} {
		_, err := AllowFrom([]string{in})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", in, err, want)
		}
	}
	var many []string
	for i := range 51 {
		many = append(many, netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}).String()+"/32")
	}
	if _, err := AllowFrom(many); err == nil || !strings.Contains(err.Error(), "at most 50") {
		t.Errorf("51 blocks: %v", err)
	}
}

func TestDomain(t *testing.T) {
	dns := testutil.NewDNS(t)
	r := testutil.Resolver(dns.Addr)
	ctx := context.Background()
	ip1, ip2 := netip.MustParseAddr("203.0.113.10"), netip.MustParseAddr("203.0.113.11")
	ips := []netip.Addr{ip1, ip2}

	dns.Set("gw.example.com", "203.0.113.10", "203.0.113.11")
	if w, err := Domain(ctx, r, "gw.example.com", ips); err != nil || len(w) != 0 {
		t.Fatalf("both IPs: %v %v", w, err)
	}
	// One IP only: allowed (the CA reaches an instance, the storage is
	// shared), with a warning that the other AZ serves nobody.
	dns.Set("one.example.com", "203.0.113.11")
	if w, err := Domain(ctx, r, "one.example.com", ips); err != nil || len(w) != 1 || !strings.Contains(w[0], "203.0.113.10") {
		t.Errorf("one IP: %v %v", w, err)
	}

	var pd ErrPointDNS
	// Not resolving yet (a first up): the error says what to point where.
	_, err := Domain(ctx, r, "new.example.com", ips)
	if !errors.As(err, &pd) || !strings.Contains(err.Error(), "does not resolve yet") || !strings.Contains(err.Error(), "203.0.113.10 and 203.0.113.11") {
		t.Errorf("unresolved: %v", err)
	}
	// Resolving to something else (an old host, a CDN): refused, naming it.
	dns.Set("old.example.com", "198.51.100.5", "203.0.113.10")
	_, err = Domain(ctx, r, "old.example.com", ips)
	if !errors.As(err, &pd) || !strings.Contains(err.Error(), "resolves to 198.51.100.5, 203.0.113.10") {
		t.Errorf("foreign address: %v", err)
	}
	// An AAAA record sends IPv6 callers elsewhere: the IPs are IPv4.
	dns.Set("v6.example.com", "203.0.113.10", "2001:db8::1")
	if _, err := Domain(ctx, r, "v6.example.com", ips); !errors.As(err, &pd) {
		t.Errorf("AAAA: %v", err)
	}
	for _, bad := range []string{"203.0.113.10", "localhost", "GW.Example.com", "gw.example.com.", "a b.example.com"} {
		if _, err := Domain(ctx, r, bad, ips); err == nil || errors.As(err, &pd) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
