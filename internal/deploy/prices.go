// Package deploy holds what outgate needs to put a gateway on AWS: the
// price table and cost model behind `outgate plan`, and the CloudFormation
// template behind `outgate template` and `outgate up`.
package deploy

import (
	"fmt"
	"sort"
)

// Prices are the on-demand list prices one region charges, in USD.
type Prices struct {
	Region string
	// Recorded is when the figures were copied, Source where from. Prices
	// change: `outgate plan` prints both so nobody mistakes them for a quote.
	Recorded, Source string

	LambdaX86GBSecond, LambdaArmGBSecond float64 // per GB-second
	LambdaPerMillionRequests             float64
	PublicIPv4Hour                       float64 // per address, in use or idle (Feb 2024 on)
	NATGatewayHour, NATGatewayGB         float64
	InterfaceEndpointHour                float64 // per endpoint per AZ
	InterfaceEndpointGB                  float64
	HTTPAPIPerMillion                    float64 // API Gateway HTTP API, first 300 million
	DataTransferOutGB                    float64 // to the internet, after the first 100 GB free per account
}

const recorded = "2026-11"
const source = "AWS pricing pages (Lambda, Amazon VPC, API Gateway, EC2 data transfer), on-demand, first tier"

// priceTable covers the regions outgate plans for. The Seoul NAT figure
// ($0.059/h) and the us-east-1 ones come from the field notes; the others
// were copied from the pricing pages on the date above.
var priceTable = map[string]Prices{
	"us-east-1": {Region: "us-east-1", Recorded: recorded, Source: source,
		LambdaX86GBSecond: 0.0000166667, LambdaArmGBSecond: 0.0000133334, LambdaPerMillionRequests: 0.20,
		PublicIPv4Hour: 0.005, NATGatewayHour: 0.045, NATGatewayGB: 0.045,
		InterfaceEndpointHour: 0.01, InterfaceEndpointGB: 0.01, HTTPAPIPerMillion: 1.00, DataTransferOutGB: 0.09},
	"ap-northeast-2": {Region: "ap-northeast-2", Recorded: recorded, Source: source,
		LambdaX86GBSecond: 0.0000166667, LambdaArmGBSecond: 0.0000133334, LambdaPerMillionRequests: 0.20,
		PublicIPv4Hour: 0.005, NATGatewayHour: 0.059, NATGatewayGB: 0.059,
		InterfaceEndpointHour: 0.013, InterfaceEndpointGB: 0.01, HTTPAPIPerMillion: 1.23, DataTransferOutGB: 0.126},
	"ap-northeast-1": {Region: "ap-northeast-1", Recorded: recorded, Source: source,
		LambdaX86GBSecond: 0.0000166667, LambdaArmGBSecond: 0.0000133334, LambdaPerMillionRequests: 0.20,
		PublicIPv4Hour: 0.005, NATGatewayHour: 0.062, NATGatewayGB: 0.062,
		InterfaceEndpointHour: 0.014, InterfaceEndpointGB: 0.01, HTTPAPIPerMillion: 1.29, DataTransferOutGB: 0.114},
	"eu-west-1": {Region: "eu-west-1", Recorded: recorded, Source: source,
		LambdaX86GBSecond: 0.0000166667, LambdaArmGBSecond: 0.0000133334, LambdaPerMillionRequests: 0.20,
		PublicIPv4Hour: 0.005, NATGatewayHour: 0.048, NATGatewayGB: 0.048,
		InterfaceEndpointHour: 0.011, InterfaceEndpointGB: 0.01, HTTPAPIPerMillion: 1.11, DataTransferOutGB: 0.09},
}

// PricesFor returns the table for a region, or an error naming the ones known.
func PricesFor(region string) (Prices, error) {
	p, ok := priceTable[region]
	if !ok {
		return Prices{}, fmt.Errorf("no price table for region %q (known: %v); the template itself works in any region", region, Regions())
	}
	return p, nil
}

// Regions lists the regions with a price table.
func Regions() []string {
	var r []string
	for k := range priceTable {
		r = append(r, k)
	}
	sort.Strings(r)
	return r
}
