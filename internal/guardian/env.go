package guardian

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/outgate/outgate/internal/emf"
)

// Environment variables of the guardian function.
const (
	EnvDeployment     = "OUTGATE_DEPLOYMENT"
	EnvSecurityGroup  = "OUTGATE_SECURITY_GROUP_ID"
	EnvSubnets        = "OUTGATE_SUBNET_IDS"
	EnvAllocationIDs  = "OUTGATE_EIP_ALLOCATION_IDS"
	EnvAllowAllocate  = "OUTGATE_ALLOW_ALLOCATE"
	EnvRelayFunction  = "OUTGATE_RELAY_FUNCTION"
	EnvKeepaliveEvery = "OUTGATE_KEEPALIVE_EVERY"
	EnvRunEvery       = "OUTGATE_RUN_EVERY"
)

func list(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// ConfigFromEnv reads the guardian's config from its environment.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	c := Config{
		Deployment:      getenv(EnvDeployment),
		SecurityGroupID: getenv(EnvSecurityGroup),
		SubnetIDs:       list(getenv(EnvSubnets)),
		AllocationIDs:   list(getenv(EnvAllocationIDs)),
		RelayFunction:   getenv(EnvRelayFunction),
	}
	if v := getenv(EnvAllowAllocate); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return c, fmt.Errorf("%s: %q is not true or false", EnvAllowAllocate, v)
		}
		c.AllowAllocate = b
	}
	for _, d := range []struct {
		env string
		dst *time.Duration
	}{{EnvKeepaliveEvery, &c.KeepaliveEvery}, {EnvRunEvery, &c.RunEvery}} {
		if v := getenv(d.env); v != "" {
			x, err := time.ParseDuration(v)
			if err != nil || x <= 0 {
				return c, fmt.Errorf("%s: %q is not a positive duration such as 1h", d.env, v)
			}
			*d.dst = x
		}
	}
	if c.SecurityGroupID == "" || len(c.SubnetIDs) == 0 || (c.Deployment == "" && len(c.AllocationIDs) == 0) {
		return c, fmt.Errorf("%s, %s and %s (or %s) are required", EnvSecurityGroup, EnvSubnets, EnvDeployment, EnvAllocationIDs)
	}
	return c, nil
}

// Report writes the run's summary as one slog JSON line (msg "guardian
// run", the Summary's fields as its attributes, level ERROR when the run
// failed or left an ENI without its IP, WARN when something needs a human)
// and its metrics as an EMF line, dimension Deployment: EnisSeen,
// EnisWithoutIp, PoolFree, AssociationsMade, GuardianErrors (the failures of
// the run: listing ENIs or the pool, associating, tagging, the keepalive,
// the attached functions' check) and, when the attached functions were
// listed, AttachedFunctionsDrifted. An alarm on EnisWithoutIp > 0 is the "a
// call may leave from a wrong IP" alarm; one on GuardianErrors > 0 is the
// "the guardian cannot do its job" alarm; one on AttachedFunctionsDrifted > 0
// is "a deploy took a function out of the deployment". When the ENIs could
// not be listed, EnisSeen and EnisWithoutIp are left out (missing, not a
// healthy 0).
func Report(w io.Writer, s Summary) {
	slog.New(slog.NewJSONHandler(w, nil)).LogAttrs(context.Background(), levelOf(s), "guardian run", s.attrs()...)
	var ms []emf.Metric
	if !s.ENIsUnknown {
		ms = append(ms, emf.Metric{Name: "EnisSeen", Unit: "Count", Value: float64(s.ENIsSeen)},
			emf.Metric{Name: MetricENIsWithoutIP, Unit: "Count", Value: float64(s.ENIsWithoutIP)})
	}
	ms = append(ms,
		emf.Metric{Name: "PoolFree", Unit: "Count", Value: float64(s.PoolFree)},
		emf.Metric{Name: "AssociationsMade", Unit: "Count", Value: float64(s.Associations)},
		emf.Metric{Name: MetricErrors, Unit: "Count", Value: float64(len(s.Errors))},
	)
	if s.AttachedChecked {
		ms = append(ms, emf.Metric{Name: MetricAttachedDrifted, Unit: "Count", Value: float64(len(s.DriftedFunctions))})
	}
	emf.New(w).Emit(map[string]string{MetricDimension: s.Deployment}, emf.Set{Dimensions: [][]string{{MetricDimension}}, Metrics: ms})
}

// attrs are the Summary's fields under their JSON names (the invocation's
// result carries the same), the omitempty ones only when set.
// TestReportHasEverySummaryField keeps the two lists together.
func (s Summary) attrs() []slog.Attr {
	a := []slog.Attr{
		slog.String("deployment", s.Deployment),
		slog.Int("enis_seen", s.ENIsSeen),
		slog.Int("enis_pending", s.ENIsPending),
		slog.Int("enis_retiring", s.ENIsRetiring),
		slog.Int("enis_without_ip", s.ENIsWithoutIP),
	}
	if s.ENIsUnknown {
		a = append(a, slog.Bool("enis_unknown", true))
	}
	a = append(a,
		slog.Int("pool_size", s.PoolSize),
		slog.Int("pool_free", s.PoolFree),
		slog.Int("associations", s.Associations),
		slog.Int("disassociations", s.Disassociations),
		slog.Int("allocated", s.Allocated),
		slog.Int("retries", s.Retries),
	)
	if len(s.Errors) > 0 {
		a = append(a, slog.Any("errors", s.Errors))
	}
	if len(s.NeedsHuman) > 0 {
		a = append(a, slog.Any("needs_human", s.NeedsHuman))
	}
	if s.FunctionState != "" {
		a = append(a, slog.String("function_state", s.FunctionState))
	}
	if s.KeepaliveSent {
		a = append(a, slog.Bool("keepalive_sent", true))
	}
	a = append(a, slog.Any("ips", s.IPs))
	if s.AttachedChecked {
		a = append(a, slog.Bool("attached_checked", true))
	}
	if s.AttachedFunctions != 0 {
		a = append(a, slog.Int("attached_functions", s.AttachedFunctions))
	}
	if len(s.DriftedFunctions) > 0 {
		a = append(a, slog.Any("drifted_functions", s.DriftedFunctions))
	}
	return a
}

// The metrics alarms are built on (namespace emf.Namespace, "Outgate").
const (
	MetricErrors        = "GuardianErrors"
	MetricENIsWithoutIP = "EnisWithoutIp"
	// MetricAttachedDrifted counts the attached functions whose VPC config
	// no longer matches the deployment's; left out when they could not be
	// listed.
	MetricAttachedDrifted = "AttachedFunctionsDrifted"
	MetricDimension       = "Deployment" // its value is the deployment name
)

func levelOf(s Summary) slog.Level {
	switch {
	case len(s.Errors) > 0 || s.ENIsWithoutIP > 0 || s.ENIsUnknown || len(s.DriftedFunctions) > 0:
		return slog.LevelError
	case len(s.NeedsHuman) > 0:
		return slog.LevelWarn
	}
	return slog.LevelInfo
}
