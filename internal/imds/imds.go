// Package imds reads what an instance of a deployment needs to know about
// itself from the EC2 instance metadata service: its id, AZ, region and the
// subnet of its primary network interface (which names its pool IP).
//
// It is the AWS SDK's IMDS client (feature/ec2/imds) with the IMDSv1
// fallback turned off: the SDK already does the IMDSv2 token dance (a PUT
// for a session token with a TTL, the token on every GET, a new token when
// one expires or is refused with 401), retries with backoff, and honours
// AWS_EC2_METADATA_SERVICE_ENDPOINT; a hand-written client would repeat
// that. Never falling back to IMDSv1 matters: the stack requires IMDSv2, so
// a v1 answer could only come from something that is not the instance's
// metadata service.
package imds

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"regexp"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
)

// Facts are the instance's own facts.
type Facts struct {
	InstanceID string
	AZ         string
	Region     string
	MAC        string // primary network interface
	SubnetID   string // the primary interface's subnet
}

// Client reads metadata over IMDSv2 only.
type Client struct{ c *imds.Client }

// New makes a client from the SDK config (its config sources carry the
// endpoint settings, AWS_EC2_METADATA_SERVICE_ENDPOINT included).
func New(cfg aws.Config) *Client {
	return &Client{c: imds.NewFromConfig(cfg, func(o *imds.Options) {
		o.EnableFallback = aws.FalseTernary
	})}
}

// maxValue bounds one metadata answer: every value read here is short.
const maxValue = 4096

// Each value is checked for its shape, so a wrong endpoint's HTML error
// page never becomes an instance id or a subnet in an API call.
var (
	reInstance = regexp.MustCompile(`^i-[0-9a-f]{8,32}$`)
	// Regions of every partition the SDK knows (its partitions.json
	// regionRegex: us-east-1, us-gov-west-1, us-isob-east-1,
	// eu-isoe-west-1, eusc-de-east-1...), and their zones, local zones too
	// (us-west-2-lax-1a).
	reAZ     = regexp.MustCompile(`^[a-z]{2,4}(-[a-z0-9]+)+[a-z]$`)
	reRegion = regexp.MustCompile(`^[a-z]{2,4}(-[a-z]+)+-\d+$`)
	reMAC    = regexp.MustCompile(`^[0-9a-f]{2}(:[0-9a-f]{2}){5}$`)
	reSubnet = regexp.MustCompile(`^subnet-[0-9a-f]{8,32}$`)
)

// Get reads one metadata path (relative to /latest/meta-data/).
func (c *Client) Get(ctx context.Context, path string) (string, error) {
	out, err := c.c.GetMetadata(ctx, &imds.GetMetadataInput{Path: path})
	if err != nil {
		return "", fmt.Errorf("instance metadata %s: %w", path, err)
	}
	defer out.Content.Close()
	b, err := io.ReadAll(io.LimitReader(out.Content, maxValue+1))
	if err != nil {
		return "", fmt.Errorf("instance metadata %s: %w", path, err)
	}
	if len(b) > maxValue {
		return "", fmt.Errorf("instance metadata %s: answer longer than %d bytes", path, maxValue)
	}
	return strings.TrimSpace(string(b)), nil
}

// Facts reads the instance id, AZ, region, primary MAC and its subnet.
func (c *Client) Facts(ctx context.Context) (Facts, error) {
	var f Facts
	var errs []error
	read := func(dst *string, path string, re *regexp.Regexp) {
		v, err := c.Get(ctx, path)
		if err != nil {
			errs = append(errs, err)
			return
		}
		if !re.MatchString(v) {
			errs = append(errs, fmt.Errorf("instance metadata %s: %q is not a valid value", path, clip(v)))
			return
		}
		*dst = v
	}
	read(&f.InstanceID, "instance-id", reInstance)
	if len(errs) > 0 {
		// The first answer failed: the service is unreachable or refuses
		// us; the other reads would only repeat that.
		return Facts{}, errs[0]
	}
	read(&f.AZ, "placement/availability-zone", reAZ)
	read(&f.Region, "placement/region", reRegion)
	read(&f.MAC, "mac", reMAC)
	if f.MAC != "" {
		read(&f.SubnetID, "network/interfaces/macs/"+f.MAC+"/subnet-id", reSubnet)
	}
	if len(errs) > 0 {
		return Facts{}, errors.Join(errs...)
	}
	return f, nil
}

// PublicIPv4 is the instance's public IPv4 address now (public-ipv4: the
// auto-assigned one at launch, or the Elastic IP once one is associated).
// An instance without one gets an error (the service answers 404).
func (c *Client) PublicIPv4(ctx context.Context) (netip.Addr, error) {
	v, err := c.Get(ctx, "public-ipv4")
	if err != nil {
		return netip.Addr{}, err
	}
	ip, err := netip.ParseAddr(v)
	if err != nil || !ip.Is4() {
		return netip.Addr{}, fmt.Errorf("instance metadata public-ipv4: %q is not an IPv4 address", clip(v))
	}
	return ip, nil
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
