// Package dynamo is the DynamoDB idempotency store, for several gateways
// behind one name and for the Lambda relay. One item per key; the claim is
// a conditional PutItem (no live item), every later change a conditional
// write on the claim's token, so two gateways can never both send one key.
// Expiry is checked on every read and write (expires_ns), so correctness
// never waits for DynamoDB's TTL deletion, which only reclaims space
// (expires_at, in epoch seconds, is the table's TTL attribute).
//
// Unlike the embedded store it keeps no per-client count (DynamoDB has no
// cheap one): each client's share is bounded by its request rate times the
// ttl, and the table is billed on demand.
package dynamo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/outgate/outgate/internal/idempotency"
)

// API is the part of the DynamoDB client the store uses (IAM: dynamodb:
// PutItem, GetItem, UpdateItem, DeleteItem on the table).
type API interface {
	PutItem(context.Context, *dynamodb.PutItemInput, ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	GetItem(context.Context, *dynamodb.GetItemInput, ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	UpdateItem(context.Context, *dynamodb.UpdateItemInput, ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	DeleteItem(context.Context, *dynamodb.DeleteItemInput, ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
}

// Attribute names. pk is the table's only key (a string).
const (
	AttrKey     = "pk"
	AttrTTL     = "expires_at" // the table's TTL attribute (epoch seconds)
	attrExpires = "expires_ns"
	attrState   = "st"
	attrFP      = "fp"
	attrToken   = "tok"
	attrClaimed = "claimed_ns"
	attrLease   = "lease_ns"
	attrStatus  = "status"
	attrHeader  = "hdr"
	attrBody    = "body"
)

// maxAnswerBytes keeps an item under DynamoDB's 400 KB: a larger answer is
// recorded as NotStored (its status only), as the embedded store does past
// max_stored_body.
const maxAnswerBytes = 350_000

// Store is a DynamoDB-backed idempotency.Store.
type Store struct {
	api   API
	table string
	now   func() time.Time
}

// New returns a store on an existing table (made by the stack: on-demand,
// point-in-time recovery, TTL on expires_at). now may be nil (time.Now).
func New(api API, table string, now func() time.Time) *Store {
	if now == nil {
		now = time.Now
	}
	return &Store{api: api, table: table, now: now}
}

// EncodeKey is the item key: each part length-prefixed, so no two triples
// share one.
func EncodeKey(k idempotency.Key) string {
	return fmt.Sprintf("%d:%s/%d:%s/%d:%s", len(k.Client), k.Client, len(k.Upstream), k.Upstream, len(k.Key), k.Key)
}

func ns(t time.Time) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(t.UnixNano(), 10)}
}

func keyOf(k idempotency.Key) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{AttrKey: &types.AttributeValueMemberS{Value: EncodeKey(k)}}
}

func isConditionFailed(err error) bool {
	var ccf *types.ConditionalCheckFailedException
	return errors.As(err, &ccf)
}

// claimAttempts bounds the claim's retries when the item it lost to
// disappears before it can be read (released or cleared in between).
const claimAttempts = 4

// Claim implements idempotency.Store.
func (s *Store) Claim(ctx context.Context, c idempotency.Claim) (string, *idempotency.Record, error) {
	for range claimAttempts {
		now := s.now()
		tok := idempotency.NewToken()
		exp := now.Add(c.TTL)
		item := keyOf(c.Key)
		item[attrState] = &types.AttributeValueMemberN{Value: strconv.Itoa(int(idempotency.InFlight))}
		item[attrFP] = &types.AttributeValueMemberB{Value: c.Fingerprint[:]}
		item[attrToken] = &types.AttributeValueMemberS{Value: tok}
		item[attrClaimed] = ns(now)
		item[attrLease] = ns(now.Add(c.Lease))
		item[attrExpires] = ns(exp)
		item[AttrTTL] = &types.AttributeValueMemberN{Value: strconv.FormatInt(exp.Unix()+1, 10)}
		_, err := s.api.PutItem(ctx, &dynamodb.PutItemInput{
			TableName:                 &s.table,
			Item:                      item,
			ConditionExpression:       aws.String("attribute_not_exists(#k) OR #e <= :now"),
			ExpressionAttributeNames:  map[string]string{"#k": AttrKey, "#e": attrExpires},
			ExpressionAttributeValues: map[string]types.AttributeValue{":now": ns(now)},
		})
		if err == nil {
			return tok, nil, nil
		}
		if !isConditionFailed(err) {
			return "", nil, err
		}
		r, err := s.get(ctx, c.Key)
		if err != nil {
			return "", nil, err
		}
		if r != nil && r.Token == tok {
			// Our own write: the SDK retried a PutItem whose reply was
			// lost, and the retry met the item the first attempt made.
			return tok, nil, nil
		}
		if r != nil {
			r.Token = ""
			return "", r, nil
		}
	}
	return "", nil, errors.New("idempotency store: the key kept changing under the claim")
}

// Get implements idempotency.Store.
func (s *Store) Get(ctx context.Context, k idempotency.Key) (*idempotency.Record, error) {
	r, err := s.get(ctx, k)
	if r != nil {
		r.Token = ""
	}
	return r, err
}

// get is Get with the claim's token, for Claim alone.
func (s *Store) get(ctx context.Context, k idempotency.Key) (*idempotency.Record, error) {
	out, err := s.api.GetItem(ctx, &dynamodb.GetItemInput{TableName: &s.table, Key: keyOf(k), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return nil, err
	}
	if len(out.Item) == 0 {
		return nil, nil
	}
	r, err := decode(out.Item)
	if err != nil {
		return nil, err
	}
	now := s.now()
	if !now.Before(r.Expires) {
		return nil, nil
	}
	e := r.Effective(now)
	return &e, nil
}

func decode(item map[string]types.AttributeValue) (*idempotency.Record, error) {
	num := func(name string) (int64, error) {
		v, ok := item[name].(*types.AttributeValueMemberN)
		if !ok {
			return 0, fmt.Errorf("idempotency store: item without %s", name)
		}
		return strconv.ParseInt(v.Value, 10, 64)
	}
	var r idempotency.Record
	st, err := num(attrState)
	if err != nil {
		return nil, err
	}
	r.State = idempotency.State(st)
	if b, ok := item[attrFP].(*types.AttributeValueMemberB); ok && len(b.Value) == len(r.Fingerprint) {
		copy(r.Fingerprint[:], b.Value)
	}
	if t, ok := item[attrToken].(*types.AttributeValueMemberS); ok {
		r.Token = t.Value
	}
	for _, f := range []struct {
		name string
		dst  *time.Time
	}{{attrClaimed, &r.ClaimedAt}, {attrLease, &r.LeaseEnd}, {attrExpires, &r.Expires}} {
		n, err := num(f.name)
		if err != nil {
			return nil, err
		}
		*f.dst = time.Unix(0, n)
	}
	if status, err := num(attrStatus); err == nil {
		a := &idempotency.Answer{Status: int(status)}
		if h, ok := item[attrHeader].(*types.AttributeValueMemberS); ok {
			if err := json.Unmarshal([]byte(h.Value), &a.Header); err != nil {
				return nil, fmt.Errorf("idempotency store: corrupt headers: %w", err)
			}
		}
		if b, ok := item[attrBody].(*types.AttributeValueMemberB); ok {
			a.Body = b.Value
		}
		r.Answer = a
	}
	return &r, nil
}

// settle runs a conditional update on the caller's in-flight claim.
func (s *Store) settle(ctx context.Context, k idempotency.Key, token, update string, vals map[string]types.AttributeValue) error {
	if token == "" {
		return idempotency.ErrNotOwner
	}
	vals[":tok"] = &types.AttributeValueMemberS{Value: token}
	vals[":inflight"] = &types.AttributeValueMemberN{Value: strconv.Itoa(int(idempotency.InFlight))}
	vals[":now"] = ns(s.now())
	names := map[string]string{"#t": attrToken, "#s": attrState, "#e": attrExpires}
	cond := "#t = :tok AND #s = :inflight AND #e > :now"
	var err error
	if update == "" {
		_, err = s.api.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: &s.table, Key: keyOf(k),
			ConditionExpression: &cond, ExpressionAttributeNames: names, ExpressionAttributeValues: vals})
	} else {
		for _, n := range []string{attrStatus, attrHeader, attrBody} {
			if strings.Contains(update, "#"+n+" ") {
				names["#"+n] = n
			}
		}
		_, err = s.api.UpdateItem(ctx, &dynamodb.UpdateItemInput{TableName: &s.table, Key: keyOf(k), UpdateExpression: &update,
			ConditionExpression: &cond, ExpressionAttributeNames: names, ExpressionAttributeValues: vals})
	}
	if isConditionFailed(err) {
		return idempotency.ErrNotOwner
	}
	return err
}

func stateVal(s idempotency.State) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.Itoa(int(s))}
}

// Complete implements idempotency.Store.
func (s *Store) Complete(ctx context.Context, k idempotency.Key, token string, a idempotency.Answer) error {
	h, err := json.Marshal(a.Header)
	if err != nil {
		return err
	}
	if len(h)+len(a.Body) > maxAnswerBytes {
		return s.NotStored(ctx, k, token, a.Status)
	}
	vals := map[string]types.AttributeValue{
		":st":     stateVal(idempotency.Completed),
		":status": &types.AttributeValueMemberN{Value: strconv.Itoa(a.Status)},
		":hdr":    &types.AttributeValueMemberS{Value: string(h)},
	}
	update := "SET #s = :st, #status = :status, #hdr = :hdr"
	if len(a.Body) > 0 { // DynamoDB refuses empty binary values
		vals[":body"] = &types.AttributeValueMemberB{Value: a.Body}
		update += ", #body = :body"
	}
	return s.settle(ctx, k, token, update, vals)
}

// NotStored implements idempotency.Store.
func (s *Store) NotStored(ctx context.Context, k idempotency.Key, token string, status int) error {
	return s.settle(ctx, k, token, "SET #s = :st, #status = :status", map[string]types.AttributeValue{
		":st":     stateVal(idempotency.NotStored),
		":status": &types.AttributeValueMemberN{Value: strconv.Itoa(status)},
	})
}

// MarkUnknown implements idempotency.Store.
func (s *Store) MarkUnknown(ctx context.Context, k idempotency.Key, token string) error {
	return s.settle(ctx, k, token, "SET #s = :st", map[string]types.AttributeValue{":st": stateVal(idempotency.Unknown)})
}

// Release implements idempotency.Store.
func (s *Store) Release(ctx context.Context, k idempotency.Key, token string) error {
	return s.settle(ctx, k, token, "", map[string]types.AttributeValue{})
}

// Clear implements idempotency.Store.
func (s *Store) Clear(ctx context.Context, k idempotency.Key) (bool, error) {
	now := ns(s.now())
	out, err := s.api.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: &s.table, Key: keyOf(k), ReturnValues: types.ReturnValueAllOld,
		// Never a request in flight within its lease (ErrInFlight).
		ConditionExpression:      aws.String("attribute_not_exists(#k) OR #s <> :inflight OR #l <= :now OR #e <= :now"),
		ExpressionAttributeNames: map[string]string{"#k": AttrKey, "#s": attrState, "#l": attrLease, "#e": attrExpires},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":inflight": &types.AttributeValueMemberN{Value: strconv.Itoa(int(idempotency.InFlight))},
			":now":      now,
		}})
	if isConditionFailed(err) {
		return false, idempotency.ErrInFlight
	}
	if err != nil || len(out.Attributes) == 0 {
		return false, err
	}
	r, err := decode(out.Attributes)
	if err != nil {
		return true, nil // it is gone either way
	}
	return s.now().Before(r.Expires), nil
}

// Close implements idempotency.Store.
func (s *Store) Close() error { return nil }

var _ idempotency.Store = (*Store)(nil)
