package deploy

import (
	"fmt"
	"math"
	"strings"
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
}

// Guardian's own usage: every minute, ~200 ms at 128 MB.
const (
	guardianInvocations = 43200
	guardianGBSeconds   = guardianInvocations * 0.2 * 0.125
)

// Gateway endpoints cost nothing; everything else is an interface endpoint.
var gatewayEndpoints = map[string]bool{"s3": true, "dynamodb": true}

// round2 rounds to cents, half up (the way the field notes quote $1.04).
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

func planENI(p Prices, u Usage) Estimate {
	e := Estimate{Mode: "eni", Summary: fmt.Sprintf("Elastic IP on the relay's Lambda ENI, kept attached by the guardian; %d static IP(s)", u.AZs)}
	e.Lines = append(e.Lines, lambdaLines(p, u)...)
	gRate := p.LambdaArmGBSecond
	e.Lines = append(e.Lines,
		Line{"Lambda (guardian)", round2(guardianGBSeconds*gRate + guardianInvocations/1e6*p.LambdaPerMillionRequests), "every minute, 128 MB arm64"},
		ipLine(p, u.AZs, "one per AZ, on the Lambda ENIs"),
		frontLine(p, u), transferLine(p, u))
	return total(e)
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
		if gatewayEndpoints[ep] {
			e.Lines = append(e.Lines, Line{"VPC endpoint " + ep + " (gateway)", 0, "gateway endpoints are free"})
			continue
		}
		e.Lines = append(e.Lines, Line{"VPC endpoint " + ep + " (interface)", round2(float64(u.AZs) * p.InterfaceEndpointHour * HoursPerMonth),
			fmt.Sprintf("$%.3f/hour per AZ, plus $%.2f/GB it carries", p.InterfaceEndpointHour, p.InterfaceEndpointGB)})
	}
	e.Lines = append(e.Lines, frontLine(p, u), transferLine(p, u))
	return total(e)
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
