// Package lambdarelay runs the gateway core as an AWS Lambda function: it
// turns Function URL, API Gateway HTTP API (v2) and REST API (v1 proxy)
// events into requests for the relay handler, and the answers back into
// events, within Lambda's synchronous payload limit. A scheduled event is a
// keepalive that also checks the egress IP against the expected ones.
package lambdarelay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/outgate/outgate/internal/audit"
	"github.com/outgate/outgate/internal/config"
	"github.com/outgate/outgate/internal/core"
	"github.com/outgate/outgate/internal/emf"
	"github.com/outgate/outgate/internal/idempotency"
	"github.com/outgate/outgate/internal/relay"
	"github.com/outgate/outgate/internal/secrets"
)

// MaxResponsePayload is the most a response event may weigh, JSON envelope
// included: Lambda's quota for a synchronous invocation's response is 6 MB
// (https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html,
// "Invocation payload (request and response)"), which Lambda counts as
// 6 MiB = 6,291,456 bytes. The runtime API's own error message names
// 6,291,556 bytes for responses; holding to the documented figure keeps a
// 100-byte margin rather than relying on an undocumented one.
const MaxResponsePayload = 6 << 20

// Options configure a Handler.
type Options struct {
	Config   *config.Config
	Function string       // function name, the metrics' dimension
	Expected []netip.Addr // OUTGATE_EXPECTED_IPS, for the keepalive check
	Log      io.Writer    // audit and log lines (stdout on Lambda)
	Metrics  io.Writer    // EMF lines (stdout on Lambda)
	// Reload, if set, is asked for the config again at most every
	// ReloadEvery (default 1m), on an invocation; a new version replaces
	// the running config, a failure keeps it.
	Reload      func(context.Context) (*config.Config, string, error)
	Version     string // the version of Config, as Reload reports it
	ReloadEvery time.Duration
	// Secrets reach the config's ${secret:...} references (SSM and
	// Secrets Manager with the function's role).
	Secrets secrets.Sources
	// Idempotency is the store of upstreams' idempotency keys (DynamoDB:
	// OpenIdempotency); nil refuses a config that uses them.
	Idempotency idempotency.Store
}

// Handler answers Lambda invocations.
type Handler struct {
	core     atomic.Pointer[core.Core]
	relay    *relay.Handler
	reload   func(context.Context) (*config.Config, string, error)
	every    time.Duration
	mu       sync.Mutex // guards version and checked
	version  string
	checked  time.Time
	now      func() time.Time
	function string
	expected []netip.Addr
	emf      *emf.Writer
	log      *slog.Logger
	out      io.Writer // audit lines
	secrets  secrets.Sources
	idem     idempotency.Store
}

// New builds the handler. Listener settings in the config are ignored.
func New(o Options) (*Handler, error) {
	if o.Function == "" {
		o.Function = "outgate-relay"
	}
	logger := slog.New(slog.NewJSONHandler(o.Log, nil))
	if o.ReloadEvery <= 0 {
		o.ReloadEvery = time.Minute
	}
	h := &Handler{function: o.Function, expected: o.Expected, emf: emf.New(o.Metrics), log: logger, out: o.Log,
		reload: o.Reload, every: o.ReloadEvery, version: o.Version, now: time.Now, secrets: o.Secrets, idem: o.Idempotency}
	h.checked = h.now()
	c, err := h.build(o.Config)
	if err != nil {
		return nil, err
	}
	h.core.Store(c)
	h.relay = &relay.Handler{Core: h.core.Load}
	h.logWarnings(o.Config)
	return h, nil
}

// logWarnings logs what `config check` would warn about, as `serve` does.
func (h *Handler) logWarnings(cfg *config.Config) {
	for _, w := range cfg.Warnings {
		h.log.Warn("config warning", "warning", cfg.Warning(w))
	}
}

func (h *Handler) build(cfg *config.Config) (*core.Core, error) {
	return core.New(cfg, core.Deps{Log: h.log, Audit: h.out, OnFinish: h.requestMetrics, Secrets: h.secrets,
		OnSecretRefresh: h.secretRefreshed, Idempotency: h.idem})
}

// secretRefreshed emits SecretRefreshErrors (0 or 1) for each refresh of
// the partner secrets: alarm on its sum, since an error keeps the previous
// values and a rotated secret is not picked up.
func (h *Handler) secretRefreshed(err error) {
	v := 0.0
	if err != nil {
		v = 1
	}
	h.emf.Emit(map[string]string{"Function": h.function},
		emf.Set{Dimensions: [][]string{{"Function"}}, Metrics: []emf.Metric{{Name: "SecretRefreshErrors", Unit: "Count", Value: v}}})
}

// maybeReload asks for the config again when it is due. Lambda freezes the
// process between invocations, so this runs on an invocation, not a timer.
func (h *Handler) maybeReload(ctx context.Context) {
	if h.reload == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.now().Sub(h.checked) < h.every {
		return
	}
	h.checked = h.now()
	cfg, version, err := h.reload(ctx)
	if err != nil {
		h.log.Error("config reload failed; the running config stays", "error", err.Error())
		return
	}
	if version == h.version {
		return
	}
	c, err := h.build(cfg)
	if err != nil {
		h.log.Error("config reload failed; the running config stays", "error", err.Error())
		return
	}
	c.Inherit(h.core.Load())
	old := h.core.Swap(c)
	old.Close()
	h.log.Info("config reloaded", "version", version, "previous", h.version)
	h.logWarnings(cfg)
	h.version = version
}

// probe is just enough of any event to tell which kind it is.
type probe struct {
	Version        string `json:"version"`
	HTTPMethod     string `json:"httpMethod"`
	RequestContext struct {
		HTTP struct {
			Method string `json:"method"`
		} `json:"http"`
	} `json:"requestContext"`
	Source     string `json:"source"`
	DetailType string `json:"detail-type"`
	Outgate    string `json:"outgate"`
}

// Handle is the function's entry point: lambda.Start(h.Handle).
func (h *Handler) Handle(ctx context.Context, event json.RawMessage) (any, error) {
	h.maybeReload(ctx)
	var p probe
	if err := json.Unmarshal(event, &p); err != nil {
		return nil, fmt.Errorf("the event is not a JSON object: %w", err)
	}
	switch {
	case p.Outgate == "keepalive" || p.Source == "aws.events" || p.Source == "aws.scheduler" || p.DetailType == "Scheduled Event":
		return h.keepalive(ctx), nil
	case p.HTTPMethod != "":
		var e events.APIGatewayProxyRequest
		if err := json.Unmarshal(event, &e); err != nil {
			return nil, fmt.Errorf("bad API Gateway REST event: %w", err)
		}
		return h.serveV1(ctx, &e), nil
	case p.Version == "2.0" && p.RequestContext.HTTP.Method != "":
		var e events.APIGatewayV2HTTPRequest
		if err := json.Unmarshal(event, &e); err != nil {
			return nil, fmt.Errorf("bad HTTP API / Function URL event: %w", err)
		}
		return h.serveV2(ctx, &e), nil
	}
	return nil, errors.New("unsupported event: expected a Function URL, API Gateway (v1 or v2) or scheduled event, or {\"outgate\":\"keepalive\"}")
}

// KeepaliveResult is what a scheduled invoke returns (and logs).
type KeepaliveResult struct {
	EgressIP string `json:"egress_ip,omitempty"`
	Expected *bool  `json:"expected,omitempty"`
	Error    string `json:"error,omitempty"`
}

// keepalive runs on a schedule: the invoke itself keeps the function's ENI
// from being reclaimed, and the egress check proves calls still leave from
// an allowlisted IP. EgressIpExpected is 1 or 0, so an alarm on it < 1 fires
// the moment traffic leaves from anything else (or cannot leave at all).
func (h *Handler) keepalive(ctx context.Context) KeepaliveResult {
	rec := &audit.Record{}
	ip, e := relay.EgressIP(ctx, h.core.Load(), rec)
	var res KeepaliveResult
	ok := false
	if e != nil {
		res.Error = e.Code
		h.log.Error("keepalive: egress check failed", "code", e.Code, "detail", rec.Detail)
	} else {
		res.EgressIP = ip.String()
		for _, x := range h.expected {
			ok = ok || x == ip
		}
	}
	if len(h.expected) == 0 {
		h.log.Warn("keepalive: OUTGATE_EXPECTED_IPS is empty; the egress IP is not checked", "egress_ip", res.EgressIP)
		return res
	}
	res.Expected = &ok
	v := 0.0
	if ok {
		v = 1
	}
	h.emf.Emit(map[string]string{"Function": h.function},
		emf.Set{Dimensions: [][]string{{"Function"}}, Metrics: []emf.Metric{{Name: "EgressIpExpected", Unit: "None", Value: v}}})
	h.log.Info("keepalive", "egress_ip", res.EgressIP, "expected", ok)
	return res
}

// requestMetrics turns an audit record into EMF: requests, denials, errors,
// upstream latency, and errors by code.
func (h *Handler) requestMetrics(r *audit.Record) {
	denied, failed := 0.0, 0.0
	switch r.Decision {
	case audit.Deny:
		denied = 1
	case audit.Error:
		failed = 1
	}
	sets := []emf.Set{{Dimensions: [][]string{{"Function"}}, Metrics: []emf.Metric{
		{Name: "Requests", Unit: "Count", Value: 1},
		{Name: "Denials", Unit: "Count", Value: denied},
		{Name: "Errors", Unit: "Count", Value: failed},
		{Name: "UpstreamLatency", Unit: "Milliseconds", Value: audit.Millis(r.Upstream)},
	}}}
	dims := map[string]string{"Function": h.function}
	if r.Reason != "" && r.Decision != audit.Allow {
		dims["Code"] = r.Reason
		sets = append(sets, emf.Set{Dimensions: [][]string{{"Function", "Code"}}, Metrics: []emf.Metric{{Name: "ErrorsByCode", Unit: "Count", Value: 1}}})
	}
	h.emf.Emit(dims, sets...)
}
