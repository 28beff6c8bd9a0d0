package pricing

import (
	"fmt"
	"math"
	"strings"

	"github.com/outgate/outgate/internal/stack"
)

// HoursPerMonth is AWS's billing month (730 hours).
const HoursPerMonth = 730

// Usage describes the workload to price.
type Usage struct {
	RequestsPerMonth float64
	AvgDurationMs    float64
	MemoryMB         float64
	GBPerMonth       float64 // response and request bytes through the gateway
	Arch             string  // arm64 or x86_64
	FreeTier         bool
	AZs              int
	Front            string   // url or apigw
	Endpoints        []string // VPC endpoints (nat mode)
	SharedNAT        bool     // nat mode: one NAT gateway for all AZs
	// RelayConcurrency is the relay's reserved concurrency (0: no cap).
	RelayConcurrency int
	// LogBytesPerRequest is what one relay call writes to CloudWatch Logs:
	// Lambda's START/END/REPORT lines, the audit line and the metrics line.
	LogBytesPerRequest float64
	LogRetentionDays   int
	// IdempotentPerMonth are relay requests with an idempotency key, and
	// IdempotentAnswerKB their answers' average size (the DynamoDB line).
	IdempotentPerMonth float64
	IdempotentAnswerKB float64
}

// DefaultUsage is what `outgate plan` prices with no flags: the deployment
// `outgate up` makes with no flags (arm64, 256 MB, two AZs, the default
// relay cap) under a light workload.
func DefaultUsage() Usage {
	return Usage{RequestsPerMonth: 1e6, AvgDurationMs: 500, MemoryMB: stack.RelayMemoryMB, GBPerMonth: 1, Arch: "arm64", AZs: 2, Front: "url",
		RelayConcurrency: stack.DefaultRelayConcurrency, LogBytesPerRequest: 1024, LogRetentionDays: stack.DefaultLogRetentionDays,
		IdempotentAnswerKB: 1}
}

// Line is one item of a monthly bill.
type Line struct {
	Item string  `json:"item"`
	USD  float64 `json:"usd"`
	Note string  `json:"note,omitempty"`
}

// Estimate is a mode's monthly cost.
type Estimate struct {
	Mode    string  `json:"mode"`
	Lines   []Line  `json:"lines"`
	Total   float64 `json:"total_usd"`
	Summary string  `json:"summary"`
	// AtCap is the worst month the relay's reserved concurrency allows:
	// every slot busy all month, calls at Lambda's per-function rate limit.
	AtCap     []Line  `json:"at_cap,omitempty"`
	AtCapUSD  float64 `json:"at_cap_total_usd,omitempty"`
	AtCapNote string  `json:"at_cap_note"`
}

// What the stack runs besides the relay's own calls.
const (
	guardianInvocations = 43200                             // every minute
	guardianGBSeconds   = guardianInvocations * 0.2 * 0.125 // ~200 ms at 128 MB
	keepaliveCalls      = 8760                              // every 5 minutes
	guardianLogBytes    = 2048                              // per run: the summary line, the metrics line, Lambda's own lines
	secondsPerMonth     = HoursPerMonth * 3600
	// rpsPerConcurrency: Lambda limits a function's synchronous calls to
	// 10 a second per unit of concurrency (docs/aws-behaviour.md).
	rpsPerConcurrency = 10
	// relayMetrics: Requests, Denials, Errors, UpstreamLatency,
	// EgressIpExpected, and ErrorsByCode for about 5 error codes seen.
	relayMetrics    = 10
	guardianMetrics = 5 // EnisSeen, EnisWithoutIp, PoolFree, AssociationsMade, GuardianErrors
	// Alarm metrics: the 5xx-rate alarm reads 2 metrics, the others 1.
	alarmMetricsENI = 8
	alarmMetricsNAT = 5
)

// round2 rounds to cents, half up ($1.0417 is $1.04).
func round2(x float64) float64 { return math.Round(x*100) / 100 }

// Plan prices both modes for the usage.
func Plan(p Prices, u Usage) []Estimate {
	return []Estimate{planENI(p, u), planNAT(p, u)}
}

func lambdaLines(p Prices, u Usage) []Line {
	rate := p.LambdaX86GBSecond
	if u.Arch == "arm64" {
		rate = p.LambdaArmGBSecond
	}
	gbs := u.RequestsPerMonth * (u.AvgDurationMs / 1000) * (u.MemoryMB / 1024)
	reqs := u.RequestsPerMonth
	note := fmt.Sprintf("%.0f GB-s at $%.10g (%s)", gbs, rate, u.Arch)
	if u.FreeTier {
		gbs = math.Max(0, gbs-400000)
		reqs = math.Max(0, reqs-1e6)
		note += ", after the free tier (400,000 GB-s, 1M requests)"
	}
	return []Line{
		{"Lambda compute (relay)", round2(gbs * rate), note},
		{"Lambda requests (relay)", round2(reqs / 1e6 * p.LambdaPerMillionRequests), fmt.Sprintf("%.0f requests", u.RequestsPerMonth)},
	}
}

func frontLine(p Prices, u Usage) Line {
	if u.Front == "apigw" {
		reqs := u.RequestsPerMonth
		if u.FreeTier {
			reqs = math.Max(0, reqs-1e6)
		}
		return Line{"API Gateway HTTP API", round2(reqs / 1e6 * p.HTTPAPIPerMillion), fmt.Sprintf("$%.2f per million requests", p.HTTPAPIPerMillion)}
	}
	return Line{"Function URL", 0, "no charge beyond the Lambda request"}
}

func transferLine(p Prices, u Usage) Line {
	return Line{"Data transfer out", round2(u.GBPerMonth * p.DataTransferOutGB), fmt.Sprintf("%.0f GB at $%.3f (any mode)", u.GBPerMonth, p.DataTransferOutGB)}
}

func ipLine(p Prices, n int, what string) Line {
	return Line{fmt.Sprintf("Public IPv4 x%d", n), round2(float64(n) * p.PublicIPv4Hour * HoursPerMonth),
		fmt.Sprintf("$%.3f/hour each, %s", p.PublicIPv4Hour, what)}
}

func gbSecondRate(p Prices, arch string) float64 {
	if arch == "arm64" {
		return p.LambdaArmGBSecond
	}
	return p.LambdaX86GBSecond
}

// monitoringLines: the metrics the functions publish, the alarms, the
// logs (ingested, and stored for the retention), the alarm mails.
func monitoringLines(p Prices, u Usage, metrics, alarmMetrics int, guardian bool) []Line {
	logGB := (u.RequestsPerMonth + keepaliveCalls) * u.LogBytesPerRequest / 1e9
	if guardian {
		logGB += guardianInvocations * guardianLogBytes / 1e9
	}
	stored := logGB * float64(u.LogRetentionDays) / 30
	return []Line{
		{"CloudWatch custom metrics", round2(float64(metrics) * p.CustomMetricMonth), fmt.Sprintf("%d metrics at $%.2f", metrics, p.CustomMetricMonth)},
		{"CloudWatch alarms", round2(float64(alarmMetrics) * p.AlarmMetricMonth), fmt.Sprintf("%d alarm metrics at $%.2f", alarmMetrics, p.AlarmMetricMonth)},
		{"CloudWatch Logs", round2(logGB*p.LogsIngestGB + stored*p.LogsStoreGBMonth),
			fmt.Sprintf("%.2f GB ingested at $%.2f (%.0f bytes a call), up to %.2f GB kept %d days at $%.2f", logGB, p.LogsIngestGB, u.LogBytesPerRequest, stored, u.LogRetentionDays, p.LogsStoreGBMonth)},
		{"SNS alarm mails", 0, fmt.Sprintf("first 1,000 a month free, then $%.2f per 100,000", p.SNSEmailPer100k)},
	}
}

// atCap is the worst month the relay's reserved concurrency allows: every
// slot busy all month, and calls at the rate limit (a flood of calls with
// bad keys is answered in milliseconds, so it is the request count, not
// the compute, that grows). Both at once is more than can happen: a bound.
func atCap(p Prices, u Usage, e *Estimate) {
	if u.RelayConcurrency <= 0 {
		e.AtCapNote = "no relay concurrency cap (--relay-concurrency 0): a flood of calls has no ceiling on cost"
		return
	}
	c := float64(u.RelayConcurrency)
	calls := c * rpsPerConcurrency * secondsPerMonth
	gbs := c * (u.MemoryMB / 1024) * secondsPerMonth
	e.AtCap = []Line{
		{"Lambda compute (relay) at the cap", round2(gbs * gbSecondRate(p, u.Arch)), fmt.Sprintf("%d executions busy all month", u.RelayConcurrency)},
		{"Lambda requests (relay) at the cap", round2(calls / 1e6 * p.LambdaPerMillionRequests), fmt.Sprintf("%.0f calls a second", c*rpsPerConcurrency)},
		{"CloudWatch Logs at the cap", round2(calls * u.LogBytesPerRequest / 1e9 * p.LogsIngestGB), fmt.Sprintf("%.0f GB ingested", calls*u.LogBytesPerRequest/1e9)},
	}
	note := "calls beyond the cap are refused (429), and Lambda does not bill them (unverified: docs/aws-behaviour.md)"
	if u.Front == "apigw" {
		// API Gateway bills every call it receives, throttled by Lambda or not.
		apigw := Line{"API Gateway at the cap", round2(calls / 1e6 * p.HTTPAPIPerMillion), "only the calls the relay takes: API Gateway bills the refused ones too"}
		e.AtCap = append(e.AtCap, apigw)
		note = "API Gateway bills every call it receives, throttled or not: set stage throttling (docs/deploy.md) to bound it"
	}
	var t float64
	for _, l := range e.AtCap {
		t += l.USD
	}
	e.AtCapUSD = round2(t + e.Total)
	e.AtCapNote = note
}

func planENI(p Prices, u Usage) Estimate {
	e := Estimate{Mode: "eni", Summary: fmt.Sprintf("Elastic IP on the relay's Lambda ENI, kept attached by the guardian; %d static IP(s)", u.AZs)}
	e.Lines = append(e.Lines, lambdaLines(p, u)...)
	e.Lines = append(e.Lines,
		Line{"Lambda (guardian)", round2(guardianGBSeconds*gbSecondRate(p, u.Arch) + guardianInvocations/1e6*p.LambdaPerMillionRequests), "every minute, 128 MB " + u.Arch},
		ipLine(p, u.AZs, "one per AZ, on the Lambda ENIs"))
	e.Lines = append(e.Lines, monitoringLines(p, u, relayMetrics+guardianMetrics, alarmMetricsENI, true)...)
	e.Lines = append(e.Lines, frontLine(p, u), transferLine(p, u), idempotencyLine(u))
	e = total(e)
	atCap(p, u, &e)
	return e
}

func planNAT(p Prices, u Usage) Estimate {
	nats := u.AZs
	what := "one per AZ"
	if u.SharedNAT {
		nats, what = 1, "one shared by all AZs (an AZ outage cuts egress)"
	}
	e := Estimate{Mode: "nat", Summary: fmt.Sprintf("relay in private subnets behind %d NAT gateway(s) (%s); %d static IP(s)", nats, what, nats)}
	e.Lines = append(e.Lines, lambdaLines(p, u)...)
	e.Lines = append(e.Lines,
		Line{fmt.Sprintf("NAT gateway x%d", nats), round2(float64(nats) * p.NATGatewayHour * HoursPerMonth), fmt.Sprintf("$%.3f/hour each", p.NATGatewayHour)},
		Line{"NAT data processing", round2(u.GBPerMonth * p.NATGatewayGB), fmt.Sprintf("%.0f GB at $%.3f", u.GBPerMonth, p.NATGatewayGB)},
		ipLine(p, nats, "on the NAT gateways"))
	for _, ep := range u.Endpoints {
		if stack.IsGatewayEndpoint(ep) {
			e.Lines = append(e.Lines, Line{"VPC endpoint " + ep + " (gateway)", 0, "gateway endpoints are free"})
			continue
		}
		e.Lines = append(e.Lines, Line{"VPC endpoint " + ep + " (interface)", round2(float64(u.AZs) * p.InterfaceEndpointHour * HoursPerMonth),
			fmt.Sprintf("$%.3f/hour per AZ, plus $%.2f/GB it carries", p.InterfaceEndpointHour, p.InterfaceEndpointGB)})
	}
	e.Lines = append(e.Lines, monitoringLines(p, u, relayMetrics, alarmMetricsNAT, false)...)
	e.Lines = append(e.Lines, frontLine(p, u), transferLine(p, u), idempotencyLine(u))
	e = total(e)
	atCap(p, u, &e)
	return e
}

func total(e Estimate) Estimate {
	var t float64
	for _, l := range e.Lines {
		t += l.USD
	}
	e.Total = round2(t)
	return e
}

// Diagram draws a mode's architecture in a few lines of text.
func Diagram(mode string, azs int, front string) string {
	door := "Function URL"
	if front == "apigw" {
		door = "API Gateway HTTP API"
	}
	switch mode {
	case "instance":
		return strings.Join([]string{
			"client --HTTPS (proxy or relay, :443)--> instance + Elastic IP (public subnet, one per AZ x" + fmt.Sprint(azs) + ")",
			"    instance --> internet gateway --> partner API; its Auto Scaling group replaces it, on the same IP",
		}, "\n")
	case "nat":
		return strings.Join([]string{
			"client --HTTPS--> " + door + " --> relay Lambda (private subnets x" + fmt.Sprint(azs) + ")",
			"    relay --> NAT gateway + Elastic IP (public subnet) --> internet gateway --> partner API",
		}, "\n")
	}
	return strings.Join([]string{
		"client --HTTPS--> " + door + " --> relay Lambda (public subnets x" + fmt.Sprint(azs) + ", no NAT)",
		"    relay --> Lambda ENI + Elastic IP --> internet gateway --> partner API",
		"    guardian (every minute) keeps an Elastic IP on every relay ENI",
	}, "\n")
}

// DynamoDB on-demand figures, us-east-1 (aws.amazon.com/dynamodb/pricing/on-demand,
// after the November 2024 cut), used for every region: the price table does
// not record them per region.
const (
	dynamoWritePerMillion = 0.625 // write request units
	dynamoReadPerMillion  = 0.125 // read request units
	dynamoStorageGBMonth  = 0.25
	dynamoPITRGBMonth     = 0.20
)

// idempotencyLine prices the table for the keyed requests a month: each
// writes its claim (1 unit: under 1 KB) and its answer (1 unit per KB of
// item), and a duplicate reads the item; items stay for the ttl.
func idempotencyLine(u Usage) Line {
	n := u.IdempotentPerMonth
	if n <= 0 {
		return Line{"DynamoDB (idempotency keys)", 0, "no keyed requests priced (--idempotent-requests N); an empty on-demand table costs nothing"}
	}
	itemKB := math.Max(1, math.Ceil(u.IdempotentAnswerKB+0.5))
	writes := n * (1 + itemKB)
	reads := n * 0.1 * math.Ceil(itemKB/4) // a retry for one request in ten
	gb := n * (24.0 / HoursPerMonth) * itemKB / 1e6
	usd := writes/1e6*dynamoWritePerMillion + reads/1e6*dynamoReadPerMillion + gb*(dynamoStorageGBMonth+dynamoPITRGBMonth)
	return Line{"DynamoDB (idempotency keys)", round2(usd), fmt.Sprintf("%.0f keyed requests, %.0f KB answers: %.0f write units at $%.3f/M, %.2f GB kept 24h with PITR (us-east-1 figures)",
		n, u.IdempotentAnswerKB, writes, dynamoWritePerMillion, gb)}
}
