package pricing

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/outgate/outgate/internal/stack"
)

// TestPlanWorkloadLine checks the cost model against AWS's list prices by
// hand: 1M requests x 500 ms x 128 MB on x86_64 without the free tier is
// 62,500 GB-s at $0.0000166667 = $1.04 of compute and $0.20 of requests
// (aws.amazon.com/lambda/pricing); one public IPv4 address is $0.005 x 730 h
// = $3.65 a month (aws.amazon.com/vpc/pricing).
func TestPlanWorkloadLine(t *testing.T) {
	p, err := PricesFor("ap-northeast-2")
	if err != nil {
		t.Fatal(err)
	}
	u := DefaultUsage()
	u.MemoryMB, u.Arch, u.AZs = 128, "x86_64", 1
	est := Plan(p, u)
	lines := map[string]float64{}
	for _, l := range est[0].Lines {
		lines[l.Item] = l.USD
	}
	if lines["Lambda compute (relay)"] != 1.04 || lines["Lambda requests (relay)"] != 0.20 || lines["Public IPv4 x1"] != 3.65 {
		t.Errorf("eni lines: %+v", est[0].Lines)
	}
	nat := map[string]float64{}
	for _, l := range est[1].Lines {
		nat[l.Item] = l.USD
	}
	if nat["NAT gateway x1"] != 43.07 { // $0.059 x 730 h
		t.Errorf("nat lines: %+v", est[1].Lines)
	}
	if est[0].Total >= est[1].Total {
		t.Errorf("eni (%v) should be cheaper than nat (%v)", est[0].Total, est[1].Total)
	}
	u = DefaultUsage()
	u.AZs, u.Front, u.FreeTier, u.Endpoints = 3, "apigw", true, []string{"s3", "sqs"}
	free := Plan(p, u)
	for _, l := range free[0].Lines {
		if (l.Item == "Lambda compute (relay)" || l.Item == "Lambda requests (relay)" || l.Item == "API Gateway HTTP API") && l.USD != 0 {
			t.Errorf("free tier: %s = %v", l.Item, l.USD)
		}
		if l.Item == "Public IPv4 x3" && l.USD != 10.95 {
			t.Errorf("three IPs: %v", l.USD)
		}
	}
	var sqs, s3 float64 = -1, -1
	for _, l := range free[1].Lines {
		switch l.Item {
		case "VPC endpoint sqs (interface)":
			sqs = l.USD
		case "VPC endpoint s3 (gateway)":
			s3 = l.USD
		}
	}
	if s3 != 0 || sqs != 28.47 { // 3 AZs x $0.013 x 730 h
		t.Errorf("endpoints: s3 %v sqs %v", s3, sqs)
	}
}

// TestPlanMatchesUp: with no options plan prices what up deploys with no
// options: the template's architecture, the relay's memory and cap, two
// AZs (up's default for new deployments), the log retention.
func TestPlanMatchesUp(t *testing.T) {
	u := DefaultUsage()
	o := stack.TemplateOptions{}
	if err := o.Normalize(); err != nil {
		t.Fatal(err)
	}
	s, err := stack.Template(o)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := stack.Render(s, "json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct{ Resources map[string]map[string]any }
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	res := doc.Resources
	relay := res["Relay"]["Properties"].(map[string]any)
	if fmt.Sprint(relay["Architectures"]) != "["+u.Arch+"]" || relay["MemorySize"] != u.MemoryMB {
		t.Errorf("plan prices %s %v MB, up deploys %v %v MB", u.Arch, u.MemoryMB, relay["Architectures"], relay["MemorySize"])
	}
	if u.RelayConcurrency != o.RelayConcurrency || u.LogRetentionDays != o.LogRetentionDays || u.AZs != 2 {
		t.Errorf("plan defaults %+v, template %+v", u, o)
	}
}

// TestPlanCountsMonitoringAndTheCap: the eni floor includes the CloudWatch
// metrics, alarms and logs the stack makes (at us-east-1 prices,
// aws.amazon.com/cloudwatch/pricing: $0.30 a metric, $0.10 an alarm
// metric, $0.50 a GB ingested), and the estimate states the worst month
// the relay's cap allows.
func TestPlanCountsMonitoringAndTheCap(t *testing.T) {
	p, _ := PricesFor("us-east-1")
	u := DefaultUsage()
	u.RequestsPerMonth = 0
	eni := Plan(p, u)[0]
	got := map[string]float64{}
	for _, l := range eni.Lines {
		got[l.Item] = l.USD
	}
	// 15 metrics x $0.30, 8 alarm metrics x $0.10.
	if got["CloudWatch custom metrics"] != 4.50 || got["CloudWatch alarms"] != 0.80 || got["CloudWatch Logs"] <= 0 {
		t.Errorf("monitoring lines: %+v", eni.Lines)
	}
	if eni.Total < 2*3.65+4.50+0.80 {
		t.Errorf("eni floor %v leaves out part of the bill", eni.Total)
	}
	// At the cap of 10: 10 x 0.25 GB x 2,628,000 s x $0.0000133334 = $87.60
	// compute; 100 calls/s x 2,628,000 s = 262.8M calls = $52.56.
	at := map[string]float64{}
	for _, l := range eni.AtCap {
		at[l.Item] = l.USD
	}
	if at["Lambda compute (relay) at the cap"] != 87.60 || at["Lambda requests (relay) at the cap"] != 52.56 || eni.AtCapUSD <= eni.Total+140 {
		t.Errorf("at the cap: %+v total %v", eni.AtCap, eni.AtCapUSD)
	}
	u.RelayConcurrency = 0
	if e := Plan(p, u)[0]; e.AtCap != nil || !strings.Contains(e.AtCapNote, "no ceiling") {
		t.Errorf("no cap: %+v", e)
	}
	u = DefaultUsage()
	u.Front = "apigw"
	if e := Plan(p, u)[0]; !strings.Contains(e.AtCapNote, "API Gateway bills every call") {
		t.Errorf("apigw: %q", e.AtCapNote)
	}
}

// TestPlanRegions: every commercial region is priced; regions without
// recorded figures say whose they are; anything else is refused with the
// list.
func TestPlanRegions(t *testing.T) {
	for _, r := range Regions() {
		p, err := PricesFor(r)
		if err != nil || p.Recorded == "" || p.Source == "" || p.Region != r || p.CustomMetricMonth == 0 || p.LambdaArmGBSecond == 0 {
			t.Errorf("%s: %+v %v", r, p, err)
		}
		if _, own := priceTable[r]; !own && !strings.Contains(p.Note, "us-east-1") {
			t.Errorf("%s borrows us-east-1's figures without saying so", r)
		}
	}
	if p, err := PricesFor("eu-central-1"); err != nil || !strings.Contains(p.Note, "us-east-1") {
		t.Errorf("eu-central-1: %v %q", err, p.Note)
	}
	if _, err := PricesFor("mars-north-1"); err == nil || !strings.Contains(err.Error(), "eu-central-1") {
		t.Errorf("unknown region: %v", err)
	}
	if len(Regions()) != 34 {
		t.Errorf("%d regions", len(Regions()))
	}
}

// TestNoPointersOutsideTheRepository: docs and the deploy code stand
// alone; nothing cites notes a reader of the repository does not have.
func TestNoPointersOutsideTheRepository(t *testing.T) {
	var files []string
	for _, glob := range []string{"../../docs/*.md", "../../README.md", "*.go", "../stack/*.go", "../deploy/*.go", "../cli/*.go"} {
		m, _ := filepath.Glob(glob)
		files = append(files, m...)
	}
	if len(files) < 10 {
		t.Fatalf("found only %v", files)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "plan_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		low := strings.ToLower(string(b))
		for _, bad := range []string{"shared/", "aws-facts", "guardian.md", "field notes", "field-notes"} {
			if strings.Contains(low, bad) {
				t.Errorf("%s mentions %q", f, bad)
			}
		}
	}
	var b, _ = os.ReadFile("../../docs/lambda.md")
	if strings.Contains(string(b), "in progress") {
		t.Error("docs/lambda.md still says up is in progress")
	}
}

// The idempotency table costs nothing when no request has a key, and a
// stated volume is priced from DynamoDB's on-demand figures.
func TestPlanIdempotencyTable(t *testing.T) {
	p, _ := PricesFor("us-east-1")
	u := DefaultUsage()
	line := func(u Usage) Line {
		for _, l := range Plan(p, u)[0].Lines {
			if l.Item == "DynamoDB (idempotency keys)" {
				return l
			}
		}
		t.Fatal("no DynamoDB line")
		return Line{}
	}
	if l := line(u); l.USD != 0 {
		t.Errorf("no keyed requests: %+v", l)
	}
	u.IdempotentPerMonth, u.IdempotentAnswerKB = 1e6, 1
	// 1M claims + 1M answers of 2 KB items = 3M write units ($1.875), 100k
	// reads ($0.0125), 1M x 24/730 x 2 KB = 0.066 GB at $0.45 ($0.03).
	if l := line(u); l.USD != 1.92 {
		t.Errorf("1M keyed requests: %+v, want $1.92", l)
	}
}
