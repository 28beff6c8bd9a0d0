// Package idempotency makes a retried request safe at the gateway: the first
// request with an idempotency key is recorded before it is sent, a duplicate
// gets the stored answer (or a clear refusal) and is never sent again.
//
// The rules, whatever the store:
//   - a key lives in the namespace (client, upstream, key): no client can see,
//     clear or collide with another client's record;
//   - Claim is atomic: of two concurrent claims of one key, one wins;
//   - a record is in flight from its claim until Complete, MarkUnknown or
//     Release by the claim's owner (its token);
//   - an in-flight record whose lease ran out (its gateway died, or the
//     answer took longer than the lease) reads as Unknown, never as free: the
//     request may have reached the partner, so it is never sent again;
//   - every record expires ttl after its claim; an expired record is free.
package idempotency

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"time"
)

// State is where a key stands.
type State uint8

// States. The zero value is never stored.
const (
	// InFlight: claimed, sent or about to be, no answer yet.
	InFlight State = iota + 1
	// Completed: the partner answered and the whole answer is stored.
	Completed
	// Unknown: sent, and no complete answer came back (timeout, reset, the
	// client left, the gateway crashed). Never sent again until the ttl
	// ends or an operator clears the key.
	Unknown
	// NotStored: the partner answered, the answer went to the client once,
	// but it was larger than max_stored_body, so only its status is kept. A
	// duplicate is refused (409 idempotency_answer_not_stored), never sent.
	NotStored
)

func (s State) String() string {
	switch s {
	case InFlight:
		return "in_flight"
	case Completed:
		return "completed"
	case Unknown:
		return "unknown"
	case NotStored:
		return "not_stored"
	}
	return "invalid"
}

// Key names one record. Client and Upstream come from the gateway's config
// (authenticated client, route), Key from the request header.
type Key struct {
	Client, Upstream, Key string
}

// Fingerprint identifies a request: the same key with another fingerprint
// is a client bug (422 idempotency_key_reused), not a retry.
type Fingerprint [32]byte

// NewFingerprint hashes method, path, query and the body's SHA-256, each
// length-prefixed so no two different requests share an encoding.
func NewFingerprint(method, path, query string, body []byte) Fingerprint {
	bh := sha256.Sum256(body)
	h := sha256.New()
	for _, s := range []string{method, path, query, string(bh[:])} {
		var n [8]byte
		l := uint64(len(s))
		for i := range n {
			n[i] = byte(l >> (56 - 8*i))
		}
		h.Write(n[:])
		h.Write([]byte(s))
	}
	var fp Fingerprint
	h.Sum(fp[:0])
	return fp
}

// Answer is a stored response.
type Answer struct {
	Status int         `json:"status"`
	Header http.Header `json:"header,omitempty"`
	Body   []byte      `json:"body,omitempty"`
}

// Record is a key's stored state.
type Record struct {
	State       State       `json:"state"`
	Fingerprint Fingerprint `json:"fp"`
	// Token is the claim's owner: only it may settle an in-flight record.
	Token     string    `json:"token"`
	ClaimedAt time.Time `json:"claimed"`
	// LeaseEnd: an in-flight record still in flight past it reads as Unknown.
	LeaseEnd time.Time `json:"lease"`
	Expires  time.Time `json:"expires"`
	// Answer is set for Completed; for NotStored only its Status.
	Answer *Answer `json:"answer,omitempty"`
}

// Effective returns the record as a reader must see it at now: an in-flight
// record past its lease is Unknown.
func (r Record) Effective(now time.Time) Record {
	if r.State == InFlight && !now.Before(r.LeaseEnd) {
		r.State = Unknown
	}
	return r
}

// Claim asks for a key.
type Claim struct {
	Key         Key
	Fingerprint Fingerprint
	// TTL: how long the record (and so the protection) lasts.
	TTL time.Duration
	// Lease: how long the record may stay in flight before it reads as
	// Unknown (longer than the request can take while healthy).
	Lease time.Duration
}

// Errors a Store returns.
var (
	// ErrFull: the client has max_keys live records; the request is
	// refused rather than sent unprotected.
	ErrFull = errors.New("idempotency store: too many live keys for this client")
	// ErrNotOwner: the record is no longer the caller's in-flight claim (it
	// expired, was cleared, or its lease ran out and it turned Unknown).
	ErrNotOwner = errors.New("idempotency store: the claim is no longer held")
	// ErrInFlight: Clear found the key's request in flight within its
	// lease. Clearing it would let a retry go out beside it; the operator
	// clears a key once it settled (unknown) or its lease ended.
	ErrInFlight = errors.New("idempotency store: a request with this key is in flight now; clear the key once it is settled (outcome unknown) or its lease has ended")
)

// Store keeps records. Implementations must pass storetest.Run.
type Store interface {
	// Claim records c as in flight and returns its token, or returns the
	// live record already there (token ""). Atomic per key.
	Claim(ctx context.Context, c Claim) (token string, existing *Record, err error)
	// Complete stores the answer of the claim holding token.
	Complete(ctx context.Context, k Key, token string, a Answer) error
	// NotStored records that the claim's answer was sent but too large to
	// keep; status is the partner's status.
	NotStored(ctx context.Context, k Key, token string, status int) error
	// MarkUnknown records that the claim's request may have reached the
	// partner but no complete answer came back.
	MarkUnknown(ctx context.Context, k Key, token string) error
	// Release frees the key: the request certainly never left the gateway
	// (the destination was blocked, the connection could not be opened).
	Release(ctx context.Context, k Key, token string) error
	// Get returns the live record of k (nil if none), as Effective.
	Get(ctx context.Context, k Key) (*Record, error)
	// Clear deletes the record of k (the operator's `outgate idempotency
	// clear`); false if there was none. A record in flight within its lease
	// is kept (ErrInFlight): its request may be on its way to the partner.
	Clear(ctx context.Context, k Key) (bool, error)
	Close() error
}

// NewToken returns a random claim token.
func NewToken() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
