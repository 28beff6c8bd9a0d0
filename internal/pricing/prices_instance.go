package pricing

import (
	"fmt"
	"slices"
	"strings"
)

// InstancePrices are instance mode's own figures for one region, in USD:
// what the other modes do not buy. The public IPv4, data transfer and
// CloudWatch figures are the region's Prices.
type InstancePrices struct {
	Region   string
	Recorded string
	Source   string
	// Note says which figures are not verified or not the region's own.
	Note string
	// T4gNanoHour is Linux on-demand per instance-hour (billed per second,
	// 60 s minimum). The t4g sizes double from nano to 2xlarge, at the same
	// rate per vCPU, in every region (ec2/pricing/on-demand).
	T4gNanoHour float64
	// GP3GBMonth is EBS gp3 storage per GB-month (3,000 IOPS and 125 MB/s
	// included: the root volume needs no more).
	GP3GBMonth float64
	// T4gSurplusVCPUHour is what an unlimited-mode t4g pays per vCPU-hour
	// above its baseline (5% for nano), averaged over 24 hours.
	T4gSurplusVCPUHour float64
}

const instanceSource = "aws.amazon.com/ec2/pricing/on-demand (Linux, t4g), aws.amazon.com/ebs/pricing (gp3), " +
	"aws.amazon.com/ec2/pricing/on-demand \"T4g unlimited mode\" (surplus credits)"

// instancePriceTable holds only figures copied from the pricing pages:
// us-east-1's (recorded 2026-11). Other regions' could not be read from
// where this was built, so plan shows us-east-1's for them and says so,
// rather than figures nobody checked.
var instancePriceTable = map[string]InstancePrices{
	"us-east-1": {Region: "us-east-1", Recorded: recorded, Source: instanceSource,
		T4gNanoHour: 0.0042, GP3GBMonth: 0.08, T4gSurplusVCPUHour: 0.04},
}

// InstancePricesFor returns a region's instance-mode figures: its own, or
// us-east-1's with a note saying so, for the regions PricesFor knows.
func InstancePricesFor(region string) (InstancePrices, error) {
	if p, ok := instancePriceTable[region]; ok {
		return p, nil
	}
	if _, err := PricesFor(region); err != nil {
		return InstancePrices{}, err
	}
	p := instancePriceTable["us-east-1"]
	p.Region = region
	p.Note = "no t4g or gp3 figures recorded for " + region + ": these are us-east-1's (the pages' figures); " + region + "'s own are on aws.amazon.com/ec2/pricing/on-demand and aws.amazon.com/ebs/pricing"
	return p, nil
}

// t4gSizes are the t4g sizes in order: each costs twice the one before,
// and has this many vCPUs.
var t4gSizes = []struct {
	name  string
	vcpus int
}{{"nano", 2}, {"micro", 2}, {"small", 2}, {"medium", 2}, {"large", 2}, {"xlarge", 4}, {"2xlarge", 8}}

// InstanceHour is the on-demand price of one hour of typ; ok is false for a
// type outside the t4g family, whose price plan does not know.
func (p InstancePrices) InstanceHour(typ string) (usd float64, vcpus int, ok bool) {
	size, found := strings.CutPrefix(typ, "t4g.")
	if !found {
		return 0, 0, false
	}
	i := slices.IndexFunc(t4gSizes, func(s struct {
		name  string
		vcpus int
	}) bool {
		return s.name == size
	})
	if i < 0 {
		return 0, 0, false
	}
	return p.T4gNanoHour * float64(int(1)<<i), t4gSizes[i].vcpus, true
}

func (p InstancePrices) describe() string {
	return fmt.Sprintf("t4g.nano $%.4f/hour, gp3 $%.4f/GB-month (%s, recorded %s)", p.T4gNanoHour, p.GP3GBMonth, p.Region, p.Recorded)
}
