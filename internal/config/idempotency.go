package config

import (
	"fmt"
	"net/textproto"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/outgate/outgate/internal/hop"
	"github.com/outgate/outgate/internal/idempotency"
)

// Idempotency is upstreams.NAME.idempotency: requests with a key header are
// recorded before they are sent and never sent twice (docs/safe-retries.md).
type Idempotency struct {
	Header        string   `yaml:"header"`
	Methods       []string `yaml:"methods"`
	TTL           string   `yaml:"ttl"`
	Required      bool     `yaml:"required"`
	MaxStoredBody string   `yaml:"max_stored_body"`

	Policy *idempotency.Policy `yaml:"-"`
}

// IdempotencyStore is the top-level idempotency_store: where the records of
// every upstream's idempotency live.
type IdempotencyStore struct {
	// Path of the embedded (bbolt) store; default beside the config file.
	Path string `yaml:"path"`
	// DynamoDBTable selects the DynamoDB store instead (several gateways, the Lambda relay).
	DynamoDBTable string `yaml:"dynamodb_table"`
	// MaxKeysPerClient bounds one client's live keys (default 100000).
	MaxKeysPerClient *int `yaml:"max_keys_per_client"`
	// MaxStoredBytesPerClient bounds the bytes of one client's stored
	// answers (embedded store; default 1GiB).
	MaxStoredBytesPerClient string `yaml:"max_stored_bytes_per_client"`

	// Resolved (yaml:"-") after validation.
	MaxKeys  int   `yaml:"-"`
	MaxBytes int64 `yaml:"-"`
}

// Idempotency defaults and bounds.
const (
	DefaultIdempotencyHeader = "Idempotency-Key"
	DefaultIdempotencyTTL    = 24 * time.Hour
	MaxIdempotencyTTL        = 30 * 24 * time.Hour
	MinIdempotencyTTL        = time.Hour
	DefaultMaxStoredBody     = 256 << 10
	MaxMaxStoredBody         = 6 << 20
	DefaultMaxKeysPerClient  = 100_000
	DefaultMaxStoredBytes    = 1 << 30
	// DefaultIdempotencyFile is the embedded store's file name beside the config.
	DefaultIdempotencyFile = "outgate-idempotency.db"
)

var (
	idempotentMethods = []string{"POST", "PUT", "PATCH", "DELETE"}
	dynamoTableName   = regexp.MustCompile(`^[A-Za-z0-9_.-]{3,255}$`)
)

// UsesIdempotency reports whether any upstream turns idempotency on.
func (c *Config) UsesIdempotency() bool {
	for _, u := range c.Upstreams {
		if u.Idempotency != nil {
			return true
		}
	}
	return false
}

func (v *validator) idempotency(path string, up *Upstream) {
	ic := up.Idempotency
	if ic == nil {
		return
	}
	path += ".idempotency"
	p := &idempotency.Policy{Header: DefaultIdempotencyHeader, TTL: DefaultIdempotencyTTL, MaxStoredBody: DefaultMaxStoredBody, Required: ic.Required}
	if ic.Header != "" {
		h := textproto.CanonicalMIMEHeaderKey(ic.Header)
		switch {
		case !headerName.MatchString(ic.Header) || strings.Contains(ic.Header, "_"):
			v.errf(path+".header", "%q is not a header name (letters, digits and '-')", ic.Header)
		case strings.HasPrefix(h, "Outgate-") || hop.ClientHeader(h) || isHopByHop(h):
			v.errf(path+".header", "%q is a header outgate removes before forwarding; name the header the client sends its key in, e.g. Idempotency-Key", ic.Header)
		}
		p.Header = h
	}
	if ic.Methods == nil {
		p.Methods = idempotentMethods
	} else if len(ic.Methods) == 0 {
		v.errf(path+".methods", "is empty: leave it out for %s, or remove idempotency", strings.Join(idempotentMethods, ", "))
	}
	for i, m := range ic.Methods {
		mp := fmt.Sprintf("%s.methods[%d]", path, i)
		switch {
		case !slices.Contains(idempotentMethods, m):
			v.errf(mp, "%q: idempotency keys cover %s (upper case); safe methods need none", m, strings.Join(idempotentMethods, ", "))
		case slices.Contains(p.Methods, m):
			v.errf(mp, "%q is listed twice", m)
		default:
			p.Methods = append(p.Methods, m)
		}
	}
	v.duration(path+".ttl", ic.TTL, &p.TTL)
	switch {
	case p.TTL > MaxIdempotencyTTL:
		v.errf(path+".ttl", "%s is more than the 720h (30 days) a key can be kept", p.TTL)
	case p.TTL < MinIdempotencyTTL:
		// A key that expired while its request was still in flight would
		// let a retry go out beside it.
		v.errf(path+".ttl", "%s is less than 1h: a key must outlive its request and the retries after it", p.TTL)
	case up.HeaderTimeout > 0 && p.TTL < up.HeaderTimeout+time.Hour:
		v.errf(path+".ttl", "%s does not outlive this upstream's timeout (%s) by an hour: a key must outlive its request and the retries after it", p.TTL, up.HeaderTimeout)
	}
	v.size(path+".max_stored_body", ic.MaxStoredBody, &p.MaxStoredBody)
	if p.MaxStoredBody > MaxMaxStoredBody {
		v.errf(path+".max_stored_body", "at most 6MiB (an answer is held in memory while it streams)")
	}
	ic.Policy = p
}

func isHopByHop(h string) bool {
	switch h {
	case "Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade", "Host", "Content-Length":
		return true
	}
	return false
}

// idempotencyTimeouts checks each ttl against limits.response_header_timeout
// (after limits are resolved): the relay waits that long for an upstream
// without a timeout of its own, and the proxy for every origin, so a claim
// can stay in flight that long plus five minutes (core's lease). A record
// that expired inside its lease would let a retry go out beside its
// request; the key must outlive the lease by half an hour at least.
func (v *validator) idempotencyTimeouts() {
	lease := v.c.Limits.Resolved.ResponseHeaderTimeout + 5*time.Minute
	names := make([]string, 0, len(v.c.Upstreams))
	for n := range v.c.Upstreams {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		ic := v.c.Upstreams[n].Idempotency
		if ic == nil || ic.Policy == nil || ic.Policy.TTL < MinIdempotencyTTL {
			continue
		}
		if ttl := ic.Policy.TTL; ttl < lease+30*time.Minute {
			v.errf("upstreams."+n+".idempotency.ttl", "%s does not outlive limits.response_header_timeout (%s) by 35 minutes: the relay waits that long for an upstream without a timeout, and the proxy for every origin, then 5 minutes for the answer; a key must outlive its request and the retries after it", ttl, v.c.Limits.Resolved.ResponseHeaderTimeout)
		}
	}
}

func (v *validator) idempotencyStore() {
	v.idempotencyTimeouts()
	s := &v.c.IdempotencyStore
	if s.Path != "" && s.DynamoDBTable != "" {
		v.errf("idempotency_store", "path (embedded store) and dynamodb_table are exclusive: choose one")
	}
	if s.DynamoDBTable != "" && !dynamoTableName.MatchString(s.DynamoDBTable) {
		v.errf("idempotency_store.dynamodb_table", "%q must be 3-255 of A-Z a-z 0-9 _ . -", s.DynamoDBTable)
	}
	if s.DynamoDBTable == "" {
		if s.Path == "" {
			s.Path = DefaultIdempotencyFile
		}
		if !filepath.IsAbs(s.Path) {
			s.Path = filepath.Join(v.dir, s.Path)
		}
	}
	s.MaxBytes = DefaultMaxStoredBytes
	v.size("idempotency_store.max_stored_bytes_per_client", s.MaxStoredBytesPerClient, &s.MaxBytes)
	s.MaxKeys = DefaultMaxKeysPerClient
	if m := s.MaxKeysPerClient; m != nil {
		if *m < 1 || *m > 100_000_000 {
			v.errf("idempotency_store.max_keys_per_client", "must be from 1 to 100000000")
		}
		s.MaxKeys = *m
	}
}
