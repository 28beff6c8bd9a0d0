package pricing

import (
	"strings"
	"testing"
)

func lineMap(e Estimate) map[string]Line {
	m := map[string]Line{}
	for _, l := range e.Lines {
		m[l.Item] = l
	}
	return m
}

// TestPlanInstanceLines checks instance mode's bill by hand against the
// us-east-1 list prices: t4g.nano $0.0042/hour x 730 h x 2 = $6.13; an 8 GB
// gp3 root at $0.08/GB-month x 2 = $1.28; two public IPv4 addresses at
// $0.005/hour = $7.30 (ec2/pricing/on-demand, ebs/pricing, vpc/pricing).
func TestPlanInstanceLines(t *testing.T) {
	p, _ := PricesFor("us-east-1")
	ip, err := InstancePricesFor("us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	u := DefaultUsage()
	e := PlanInstance(p, ip, u, "t4g.nano")
	l := lineMap(e)
	if l["EC2 t4g.nano x2"].USD != 6.13 || l["EBS gp3 root x2"].USD != 1.28 || l["Public IPv4 x2"].USD != 7.30 {
		t.Errorf("lines: %+v", e.Lines)
	}
	if l["CloudWatch custom metrics"].USD != 1.20 || l["CloudWatch alarms"].USD != 0.40 { // 4 x $0.30, 4 x $0.10
		t.Errorf("monitoring: %+v", e.Lines)
	}
	if e.Mode != "instance" || e.Total <= 15 || e.Total >= 20 {
		t.Errorf("total %v", e.Total)
	}
	// A bigger t4g doubles per size; t4g.micro is $0.0084/hour.
	if got := lineMap(PlanInstance(p, ip, u, "t4g.micro"))["EC2 t4g.micro x2"].USD; got != 12.26 {
		t.Errorf("t4g.micro: %v", got)
	}
	if h, vcpu, ok := ip.InstanceHour("t4g.2xlarge"); !ok || h != 0.2688 || vcpu != 8 {
		t.Errorf("t4g.2xlarge: %v %v %v", h, vcpu, ok)
	}
	// A type plan has no price for is shown, and said to be left out.
	other := PlanInstance(p, ip, u, "c7g.medium")
	if l := lineMap(other)["EC2 c7g.medium x2"]; l.USD != 0 || !strings.Contains(l.Note, "NOT in the total") {
		t.Errorf("c7g.medium: %+v", l)
	}
}

func TestInstancePricesRegions(t *testing.T) {
	// Only figures copied from the pricing pages are recorded: a region
	// without its own gets us-east-1's, and the line says so.
	for r, p := range instancePriceTable {
		if p.Note != "" || p.Source == "" {
			t.Errorf("%s: a recorded figure must be sourced and carry no caveat: %+v", r, p)
		}
	}
	seoul, err := InstancePricesFor("ap-northeast-2")
	if err != nil || seoul.T4gNanoHour != 0.0042 || !strings.Contains(seoul.Note, "us-east-1's") {
		t.Errorf("ap-northeast-2: %+v %v", seoul, err)
	}
	ohio, err := InstancePricesFor("us-east-2")
	if err != nil || ohio.T4gNanoHour != 0.0042 || !strings.Contains(ohio.Note, "us-east-1's") {
		t.Errorf("us-east-2: %+v %v", ohio, err)
	}
	if _, err := InstancePricesFor("mars-north-1"); err == nil {
		t.Error("unknown region accepted")
	}
	// Every region priced for the other modes is priced for this one.
	for _, r := range Regions() {
		if _, err := InstancePricesFor(r); err != nil {
			t.Errorf("%s: %v", r, err)
		}
	}
}

// Instance mode costs a fixed amount a month; eni mode grows with the
// calls. The break-even is where they cross, and it is where plan says.
func TestInstanceBreakEven(t *testing.T) {
	p, _ := PricesFor("us-east-1")
	ip, _ := InstancePricesFor("us-east-1")
	u := DefaultUsage()
	n := InstanceBreakEven(p, ip, u, "t4g.nano")
	if n <= 0 {
		t.Fatalf("no break-even: %v", n)
	}
	at := func(calls float64) (inst, eni float64) {
		v := u
		v.RequestsPerMonth = calls
		return PlanInstance(p, ip, v, "t4g.nano").Total, planENI(p, v).Total
	}
	if i, e := at(n * 0.9); i <= e {
		t.Errorf("below the break-even (%.0f) instance is cheaper: %v <= %v", n*0.9, i, e)
	}
	if i, e := at(n * 1.1); i >= e {
		t.Errorf("above the break-even (%.0f) instance is dearer: %v >= %v", n*1.1, i, e)
	}
}
