package stack

import (
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
	// IdempotencyTable is the table's logical id.
	IdempotencyTable = "IdempotencyTable"
	// EnvIdempotencyTable is lambdarelay.EnvIdempotencyTable (the stack
	// does not import the relay).
	EnvIdempotencyTable = "OUTGATE_IDEMPOTENCY_TABLE"
	// Attribute names of internal/idempotency/dynamo.
	idempotencyKeyAttr = "pk"
	idempotencyTTLAttr = "expires_at"
)

// idempotency adds the table (on demand, point-in-time recovery, TTL on
// expires_at, encrypted at rest with DynamoDB's default key) and returns the
// relay role's policy for exactly that table and exactly the calls the
// store makes (internal/idempotency/dynamo.API).
func (b *builder) idempotency() iam.Role_Policy {
	b.add(IdempotencyTable, &dynamodb.Table{
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
		"Resource": cf.GetAtt(IdempotencyTable, "Arn")})}
}
