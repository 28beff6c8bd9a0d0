package dynamo

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/outgate/outgate/internal/idempotency"
	"github.com/outgate/outgate/internal/idempotency/storetest"
	"github.com/outgate/outgate/internal/testutil"
)

var tables atomic.Int64

// newTable makes a table the way the stack does (on demand, TTL on
// expires_at) in moto. moto keeps expired items (it does not run TTL
// deletion), which the store never relies on: expiry is checked on every
// read and write, and the contract's ttl tests pass on that alone.
func newTable(t *testing.T, db *dynamodb.Client) string {
	t.Helper()
	name := fmt.Sprintf("outgate-idem-%d", tables.Add(1))
	ctx := context.Background()
	_, err := db.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            &name,
		BillingMode:          types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String(AttrKey), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String(AttrKey), KeyType: types.KeyTypeHash}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{TableName: &name,
		TimeToLiveSpecification: &types.TimeToLiveSpecification{AttributeName: aws.String(AttrTTL), Enabled: aws.Bool(true)}}); err != nil {
		t.Fatal(err)
	}
	return name
}

func motoClient(t *testing.T) *dynamodb.Client {
	testutil.Moto(t)
	cfg, err := awsconfig.LoadDefaultConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return dynamodb.NewFromConfig(cfg)
}

func TestContractAgainstMoto(t *testing.T) {
	db := motoClient(t)
	// No per-client bound: DynamoDB has no cheap count (see the package comment).
	storetest.Run(t, func(t *testing.T, clk *storetest.Clock, _ int) idempotency.Store {
		return New(db, newTable(t, db), clk.Now)
	}, storetest.Caps{})
}

// Two gateways on one table: one claim wins, the other sees its record,
// and only the winner can settle it.
func TestTwoGatewaysOneTable(t *testing.T) {
	db := motoClient(t)
	table := newTable(t, db)
	clk := storetest.NewClock()
	a, b := New(db, table, clk.Now), New(db, table, clk.Now)
	k := idempotency.Key{Client: "shop", Upstream: "bank", Key: "k"}
	fp := idempotency.NewFingerprint("POST", "/", "", nil)
	ctx := context.Background()
	tok, _, err := a.Claim(ctx, idempotency.Claim{Key: k, Fingerprint: fp, TTL: time.Hour, Lease: time.Minute})
	if err != nil || tok == "" {
		t.Fatal(tok, err)
	}
	tok2, rec, err := b.Claim(ctx, idempotency.Claim{Key: k, Fingerprint: fp, TTL: time.Hour, Lease: time.Minute})
	if err != nil || tok2 != "" || rec == nil || rec.State != idempotency.InFlight {
		t.Fatalf("second gateway's claim = %q, %+v, %v", tok2, rec, err)
	}
	if err := b.Complete(ctx, k, "guess", idempotency.Answer{Status: 200}); err != idempotency.ErrNotOwner {
		t.Fatalf("a stranger's Complete = %v", err)
	}
	if err := a.Complete(ctx, k, tok, idempotency.Answer{Status: 201, Body: []byte("ok")}); err != nil {
		t.Fatal(err)
	}
	if r, err := b.Get(ctx, k); err != nil || r.State != idempotency.Completed || string(r.Answer.Body) != "ok" {
		t.Fatalf("the other gateway reads %+v, %v", r, err)
	}
}

// An answer that cannot fit in an item (400 KB) is kept as NotStored, so a
// duplicate is refused rather than the record left in flight.
func TestAnswerTooLargeForAnItem(t *testing.T) {
	db := motoClient(t)
	s := New(db, newTable(t, db), nil)
	k := idempotency.Key{Client: "shop", Upstream: "bank", Key: "big"}
	ctx := context.Background()
	tok, _, err := s.Claim(ctx, idempotency.Claim{Key: k, TTL: time.Hour, Lease: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Complete(ctx, k, tok, idempotency.Answer{Status: 200, Body: []byte(strings.Repeat("x", 380_000))}); err != nil {
		t.Fatal(err)
	}
	if r, err := s.Get(ctx, k); err != nil || r.State != idempotency.NotStored || r.Answer.Status != 200 {
		t.Fatalf("record = %+v, %v", r, err)
	}
}

// lostReply is the SDK's retry of a PutItem whose reply was lost (a reset
// after DynamoDB wrote the item): the first call writes, and the caller
// sees the second. An in-memory shim around moto, which cannot lose a
// reply on demand.
type lostReply struct {
	API
	done bool
}

func (l *lostReply) PutItem(ctx context.Context, in *dynamodb.PutItemInput, o ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	if !l.done {
		l.done = true
		if _, err := l.API.PutItem(ctx, in, o...); err != nil {
			return nil, err
		}
	}
	return l.API.PutItem(ctx, in, o...)
}

// A claim whose own write comes back as a failed condition (the SDK
// retried it) is the caller's claim, not another request's: otherwise the
// request, never sent, is told idempotency_in_flight and its key reads as
// unknown for a whole ttl.
func TestClaimSurvivesARetriedPut(t *testing.T) {
	db := motoClient(t)
	s := New(&lostReply{API: db}, newTable(t, db), nil)
	k := idempotency.Key{Client: "shop", Upstream: "bank", Key: "lost"}
	ctx := context.Background()
	tok, rec, err := s.Claim(ctx, idempotency.Claim{Key: k, Fingerprint: idempotency.NewFingerprint("POST", "/", "", nil), TTL: time.Hour, Lease: time.Minute})
	if err != nil || tok == "" || rec != nil {
		t.Fatalf("Claim = %q, %+v, %v; want the claim", tok, rec, err)
	}
	if err := s.Complete(ctx, k, tok, idempotency.Answer{Status: 201}); err != nil {
		t.Fatalf("Complete: %v", err)
	}
}
