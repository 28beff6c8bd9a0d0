package deploy

import (
	"fmt"
	"math"

	cf "github.com/awslabs/goformation/v7/cloudformation"
	"github.com/awslabs/goformation/v7/cloudformation/dynamodb"
	"github.com/awslabs/goformation/v7/cloudformation/iam"
	"github.com/awslabs/goformation/v7/cloudformation/tags"
)

// The relay's idempotency keys (docs/safe-retries.md) live in a DynamoDB
// table of the stack. It is made whether or not the config uses keys: an
// on-demand table with no items costs nothing, and a config that turns
// idempotency on later (outgate keys, a new SSM version) then just works.
const (
	idempotencyTable = "IdempotencyTable"
	// EnvIdempotencyTable is lambdarelay.EnvIdempotencyTable (deploy does
	// not import the relay).
	envIdempotencyTable = "OUTGATE_IDEMPOTENCY_TABLE"
	// Attribute names of internal/idempotency/dynamo.
	idempotencyKeyAttr = "pk"
	idempotencyTTLAttr = "expires_at"
)

// idempotency adds the table (on demand, point-in-time recovery, TTL on
// expires_at, encrypted at rest with DynamoDB's default key) and returns the
// relay role's policy for exactly that table and exactly the calls the
// store makes (internal/idempotency/dynamo.API).
func (b *builder) idempotency() iam.Role_Policy {
	b.add(idempotencyTable, &dynamodb.Table{
		BillingMode:          cf.String("PAY_PER_REQUEST"),
		AttributeDefinitions: []dynamodb.Table_AttributeDefinition{{AttributeName: idempotencyKeyAttr, AttributeType: "S"}},
		KeySchema:            []dynamodb.Table_KeySchema{{AttributeName: idempotencyKeyAttr, KeyType: "HASH"}},
		PointInTimeRecoverySpecification: &dynamodb.Table_PointInTimeRecoverySpecification{
			PointInTimeRecoveryEnabled: cf.Bool(true)},
		TimeToLiveSpecification: &dynamodb.Table_TimeToLiveSpecification{AttributeName: cf.String(idempotencyTTLAttr), Enabled: true},
		Tags:                    []tags.Tag{deploymentTag()},
	})
	return iam.Role_Policy{PolicyName: "idempotency-keys", PolicyDocument: policy(map[string]any{
		"Effect":   "Allow",
		"Action":   []string{"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"},
		"Resource": cf.GetAtt(idempotencyTable, "Arn")})}
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
