package pricing

import (
	"github.com/outgate/outgate/internal/stack"

	"fmt"
	"math"
)

// What an instance-mode deployment runs besides the calls it carries.
const (
	// instanceMetricsPerAZ: InstanceReady and EgressWrongIP, by Deployment
	// and AZ (the instance's EMF lines).
	instanceMetricsPerAZ = 2
	// instanceAlarmsPerAZ: no ready instance in the AZ; a wrong egress IP.
	instanceAlarmsPerAZ = 2
	// agentLogBytesPerMinute: the egress check's log line and its EMF line,
	// once a minute per instance, plus the config poll.
	agentLogBytesPerMinute = 1024
)

// PlanInstance prices instance mode: per AZ one arm64 instance of typ
// with its gp3 root volume and its static IP, the metrics, alarms and logs
// of the instances, and the data they send out.
func PlanInstance(p Prices, ip InstancePrices, u Usage, typ string) Estimate {
	e := Estimate{Mode: "instance", Summary: fmt.Sprintf("%d x %s (one per AZ, Auto Scaling group of 1, replaced on failure), HTTPS proxy and relay on :443; %d static IP(s)", u.AZs, typ, u.AZs)}
	n := float64(u.AZs)
	if hour, vcpus, ok := ip.InstanceHour(typ); ok {
		e.Lines = append(e.Lines, Line{fmt.Sprintf("EC2 %s x%d", typ, u.AZs), round2(n * hour * HoursPerMonth),
			fmt.Sprintf("$%.4f/hour each, Linux on-demand; above the baseline CPU (24 h average) unlimited mode adds $%.2f per vCPU-hour (%d vCPUs)", hour, ip.T4gSurplusVCPUHour, vcpus)})
	} else {
		e.Lines = append(e.Lines, Line{fmt.Sprintf("EC2 %s x%d", typ, u.AZs), 0,
			"no price recorded for " + typ + " (plan knows the t4g family): NOT in the total; see aws.amazon.com/ec2/pricing/on-demand"})
	}
	if ip.Note != "" { // unverified or borrowed figures say so where they are used
		e.Lines[len(e.Lines)-1].Note += " [" + ip.Note + "]"
	}
	e.Lines = append(e.Lines,
		Line{fmt.Sprintf("EBS gp3 root x%d", u.AZs), round2(n * stack.RootVolumeGB * ip.GP3GBMonth), fmt.Sprintf("%d GB each at $%.4f/GB-month", stack.RootVolumeGB, ip.GP3GBMonth)},
		ipLine(p, u.AZs, "one per AZ, on the instances (the address an instance has for its first seconds, before it claims its IP, is billed too, by the second)"))
	metrics := instanceMetricsPerAZ * u.AZs
	alarms := instanceAlarmsPerAZ * u.AZs
	logGB := u.RequestsPerMonth*u.LogBytesPerRequest/1e9 + n*agentLogBytesPerMinute*60*HoursPerMonth/1e9
	stored := logGB * float64(u.LogRetentionDays) / 30
	e.Lines = append(e.Lines,
		Line{"CloudWatch custom metrics", round2(float64(metrics) * p.CustomMetricMonth), fmt.Sprintf("%d metrics at $%.2f (InstanceReady and EgressWrongIP per AZ)", metrics, p.CustomMetricMonth)},
		Line{"CloudWatch alarms", round2(float64(alarms) * p.AlarmMetricMonth), fmt.Sprintf("%d alarm metrics at $%.2f", alarms, p.AlarmMetricMonth)},
		Line{"CloudWatch Logs", round2(logGB*p.LogsIngestGB + stored*p.LogsStoreGBMonth),
			fmt.Sprintf("%.2f GB ingested at $%.2f (%.0f bytes a call, and the instances' checks), up to %.2f GB kept %d days at $%.2f", logGB, p.LogsIngestGB, u.LogBytesPerRequest, stored, u.LogRetentionDays, p.LogsStoreGBMonth)},
		Line{"SNS alarm mails", 0, fmt.Sprintf("first 1,000 a month free, then $%.2f per 100,000", p.SNSEmailPer100k)},
		Line{"Data transfer out", round2(u.GBPerMonth * p.DataTransferOutGB),
			fmt.Sprintf("%.0f GB at $%.3f: requests to partners and answers to callers both leave the instance", u.GBPerMonth, p.DataTransferOutGB)},
		Line{"S3 (binary, certificates)", 0, "a few MB in the staging bucket: under $0.01"},
	)
	e = total(e)
	e.AtCapNote = "no per-call charge: a flood of calls costs CPU credits and data transfer, not requests; the instance's CPU bounds it"
	if ip.Note != "" {
		e.AtCapNote += "; " + ip.Note
	}
	return e
}

// InstanceBreakEven is the number of relay calls a month above which
// instance mode costs less than eni mode for the same usage, or 0 when it
// never does within 10^10 calls. Plan prints it so nobody has to do this
// arithmetic to choose.
func InstanceBreakEven(p Prices, ip InstancePrices, u Usage, typ string) float64 {
	lo, hi := 0.0, 1e10
	cost := func(calls float64, inst bool) float64 {
		v := u
		v.RequestsPerMonth = calls
		if inst {
			return PlanInstance(p, ip, v, typ).Total
		}
		return planENI(p, v).Total
	}
	if cost(hi, true) >= cost(hi, false) {
		return 0
	}
	if cost(lo, true) < cost(lo, false) {
		return lo
	}
	for range 60 {
		mid := (lo + hi) / 2
		if cost(mid, true) < cost(mid, false) {
			hi = mid
		} else {
			lo = mid
		}
	}
	return math.Round(hi/1000) * 1000
}
