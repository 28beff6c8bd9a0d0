package deploy

import "testing"

// TestPlanFieldNotes checks the figures the field notes quote: 1M requests x
// 500 ms x 128 MB on x86_64 without the free tier is $1.04 of compute and
// $0.20 of requests; one Elastic IP is $3.65 a month.
func TestPlanFieldNotes(t *testing.T) {
	p, err := PricesFor("ap-northeast-2")
	if err != nil {
		t.Fatal(err)
	}
	u := Usage{RequestsPerMonth: 1e6, AvgDurationMs: 500, MemoryMB: 128, Arch: "x86_64", AZs: 1, Front: "url"}
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
	if nat["NAT gateway x1"] != 43.07 { // $0.059 x 730 h, the field notes' "about $43"
		t.Errorf("nat lines: %+v", est[1].Lines)
	}
	if est[0].Total >= est[1].Total {
		t.Errorf("eni (%v) should be cheaper than nat (%v)", est[0].Total, est[1].Total)
	}
	free := Plan(p, Usage{RequestsPerMonth: 1e6, AvgDurationMs: 500, MemoryMB: 128, Arch: "x86_64", AZs: 3, Front: "apigw", FreeTier: true, Endpoints: []string{"s3", "sqs"}})
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
	if _, err := PricesFor("mars-north-1"); err == nil {
		t.Error("unknown region accepted")
	}
	for _, r := range []string{"us-east-1", "ap-northeast-2", "ap-northeast-1", "eu-west-1"} {
		if p, err := PricesFor(r); err != nil || p.Recorded == "" || p.Source == "" {
			t.Errorf("%s: %v", r, err)
		}
	}
}
