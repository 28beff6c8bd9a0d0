// Package pricing is the price table and cost model behind `outgate plan`:
// what a deployment of internal/stack costs a month in each mode, from AWS's
// recorded list prices, with no AWS call.
package pricing

import (
	"fmt"
	"slices"
	"sort"
)

// Prices are the on-demand list prices one region charges, in USD.
type Prices struct {
	Region string
	// Recorded is when the figures were copied, Source where from. Prices
	// change: `outgate plan` prints both so nobody mistakes them for a quote.
	Recorded, Source string
	// Note says which figures are not the region's own (printed by plan).
	Note string

	LambdaX86GBSecond, LambdaArmGBSecond float64 // per GB-second
	LambdaPerMillionRequests             float64
	PublicIPv4Hour                       float64 // per address, in use or idle (Feb 2024 on)
	NATGatewayHour, NATGatewayGB         float64
	InterfaceEndpointHour                float64 // per endpoint per AZ
	InterfaceEndpointGB                  float64
	HTTPAPIPerMillion                    float64 // API Gateway HTTP API, first 300 million
	DataTransferOutGB                    float64 // to the internet, after the first 100 GB free per account

	CustomMetricMonth float64 // CloudWatch, per metric a month, first 10,000
	AlarmMetricMonth  float64 // CloudWatch, per standard-resolution alarm metric a month
	LogsIngestGB      float64 // CloudWatch Logs, standard class, per GB ingested
	LogsStoreGBMonth  float64 // CloudWatch Logs, per GB-month stored (compressed)
	SNSEmailPer100k   float64 // SNS email notifications, after the first 1,000 a month
}

const recorded = "2026-11"

// The pages each figure comes from.
const source = "aws.amazon.com/lambda/pricing, aws.amazon.com/vpc/pricing (public IPv4, NAT gateway), aws.amazon.com/privatelink/pricing, " +
	"aws.amazon.com/api-gateway/pricing, aws.amazon.com/ec2/pricing/on-demand (data transfer), aws.amazon.com/cloudwatch/pricing, aws.amazon.com/sns/pricing; on-demand, first tier"

// usEast1 are the us-east-1 figures: the reference every other region is
// compared with on the pricing pages.
var usEast1 = Prices{Region: "us-east-1", Recorded: recorded, Source: source,
	LambdaX86GBSecond: 0.0000166667, LambdaArmGBSecond: 0.0000133334, LambdaPerMillionRequests: 0.20,
	PublicIPv4Hour: 0.005, NATGatewayHour: 0.045, NATGatewayGB: 0.045,
	InterfaceEndpointHour: 0.01, InterfaceEndpointGB: 0.01, HTTPAPIPerMillion: 1.00, DataTransferOutGB: 0.09,
	CustomMetricMonth: 0.30, AlarmMetricMonth: 0.10, LogsIngestGB: 0.50, LogsStoreGBMonth: 0.03, SNSEmailPer100k: 2.00}

// withCloudWatchFromUSEast1 fills the CloudWatch and SNS figures of a
// region whose own were not recorded.
func withCloudWatchFromUSEast1(p Prices) Prices {
	p.CustomMetricMonth, p.AlarmMetricMonth, p.LogsIngestGB, p.LogsStoreGBMonth, p.SNSEmailPer100k =
		usEast1.CustomMetricMonth, usEast1.AlarmMetricMonth, usEast1.LogsIngestGB, usEast1.LogsStoreGBMonth, usEast1.SNSEmailPer100k
	p.Note = "CloudWatch and SNS figures are us-east-1's (this region's were not recorded; they are usually the same or up to about 50% higher)"
	return p
}

// priceTable holds the regions whose Lambda, VPC, API Gateway and data
// transfer figures were copied from the pages above on the date above.
var priceTable = map[string]Prices{
	"us-east-1": usEast1,
	"ap-northeast-2": withCloudWatchFromUSEast1(Prices{Region: "ap-northeast-2", Recorded: recorded, Source: source,
		LambdaX86GBSecond: 0.0000166667, LambdaArmGBSecond: 0.0000133334, LambdaPerMillionRequests: 0.20,
		PublicIPv4Hour: 0.005, NATGatewayHour: 0.059, NATGatewayGB: 0.059,
		InterfaceEndpointHour: 0.013, InterfaceEndpointGB: 0.01, HTTPAPIPerMillion: 1.23, DataTransferOutGB: 0.126}),
	"ap-northeast-1": withCloudWatchFromUSEast1(Prices{Region: "ap-northeast-1", Recorded: recorded, Source: source,
		LambdaX86GBSecond: 0.0000166667, LambdaArmGBSecond: 0.0000133334, LambdaPerMillionRequests: 0.20,
		PublicIPv4Hour: 0.005, NATGatewayHour: 0.062, NATGatewayGB: 0.062,
		InterfaceEndpointHour: 0.014, InterfaceEndpointGB: 0.01, HTTPAPIPerMillion: 1.29, DataTransferOutGB: 0.114}),
	"eu-west-1": withCloudWatchFromUSEast1(Prices{Region: "eu-west-1", Recorded: recorded, Source: source,
		LambdaX86GBSecond: 0.0000166667, LambdaArmGBSecond: 0.0000133334, LambdaPerMillionRequests: 0.20,
		PublicIPv4Hour: 0.005, NATGatewayHour: 0.048, NATGatewayGB: 0.048,
		InterfaceEndpointHour: 0.011, InterfaceEndpointGB: 0.01, HTTPAPIPerMillion: 1.11, DataTransferOutGB: 0.09}),
}

// commercialRegions are the other commercial regions where Lambda and
// public IPv4 addresses are sold. Their figures were not recorded: plan
// shows us-east-1's, marked as such, rather than refusing.
var commercialRegions = []string{
	"us-east-2", "us-west-1", "us-west-2", "ca-central-1", "ca-west-1", "mx-central-1", "sa-east-1",
	"eu-central-1", "eu-central-2", "eu-west-2", "eu-west-3", "eu-north-1", "eu-south-1", "eu-south-2",
	"il-central-1", "me-south-1", "me-central-1", "af-south-1",
	"ap-east-1", "ap-east-2", "ap-south-1", "ap-south-2", "ap-northeast-3",
	"ap-southeast-1", "ap-southeast-2", "ap-southeast-3", "ap-southeast-4", "ap-southeast-5", "ap-southeast-6", "ap-southeast-7",
}

// PricesFor returns the figures for a region: its own, or us-east-1's
// with a note saying so; an error names the regions known.
func PricesFor(region string) (Prices, error) {
	if p, ok := priceTable[region]; ok {
		return p, nil
	}
	if slices.Contains(commercialRegions, region) {
		p := usEast1
		p.Region = region
		p.Note = "no figures recorded for " + region + ": these are us-east-1's, and most regions charge the same or more (NAT gateways and data transfer up to about 50% more); check the pricing pages"
		return p, nil
	}
	return Prices{}, fmt.Errorf("no prices for region %q: plan knows the commercial regions %v; the template itself works in any region", region, Regions())
}

// Regions lists the regions plan prices.
func Regions() []string {
	r := slices.Clone(commercialRegions)
	for k := range priceTable {
		r = append(r, k)
	}
	sort.Strings(r)
	return r
}
